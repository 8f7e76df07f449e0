"""The report's judgement: the roles of its models, each model's headline numbers, the summary score and
targets (when the caller gave none), one verdict per method, and the headline table that shows them.

A smoke run (``--quick``) is measured, not judged: its verdicts read :data:`NOT_JUDGED`. Used by
:mod:`graphdel.evaluation.report` (which imports :data:`NOT_JUDGED` from here) and its figures
(:mod:`graphdel.evaluation.report_plots`).
"""

from __future__ import annotations

from typing import Any, Mapping

from graphdel.evaluation.membership import leak_flag
from graphdel.evaluation.report_format import finite_number, fmt, signed
from graphdel.evaluation.summary import flatten

__all__ = ["NOT_JUDGED", "SPREAD_ROLE", "GAP_ROLES", "model_roles", "spread_retrains", "own_level_gap",
           "headline", "method_verdict", "headline_rows"]

#: What the verdict of a method of a smoke run reads.
NOT_JUDGED = "not judged"
#: The role of a further Retrain of the same request (``forget --method retrain --set seed=S``): shown with
#: its gaps to the reference Retrain (how far apart exact unlearnings land), neither judged nor ranked.
SPREAD_ROLE = "spread"
#: The roles whose rows show their gaps (to Retrain on the forget side, to the original on test).
GAP_ROLES = ("method", SPREAD_ROLE)


def model_roles(models: Mapping[str, Any]) -> tuple[str | None, str | None, list[str]]:
    """``(original, reference, methods)``: the names of the first model of role ``original`` and of role
    ``reference`` (Retrain), or None, and of every ``method`` (a further Retrain, role
    :data:`SPREAD_ROLE`, is none of them: :func:`spread_retrains`).

    Raises:
        ValueError: an entry that is not a dict, or whose role is none of the three.
    """
    original = reference = None
    methods = []
    for name, entry in models.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"results['models'][{name!r}] must be a dict, got {type(entry).__name__}")
        role = entry.get("role")
        if role == "original":
            original = original or name
        elif role == "reference":
            reference = reference or name
        elif role == "method":
            methods.append(name)
        elif role != SPREAD_ROLE:
            raise ValueError(f"results['models'][{name!r}]['role'] must be 'original', 'reference', "
                             f"'method' or '{SPREAD_ROLE}', got {role!r}")
    return original, reference, methods


def spread_retrains(models: Mapping[str, Any]) -> list[str]:
    """The names of the further Retrains (role :data:`SPREAD_ROLE`), in order."""
    return [name for name, entry in models.items() if entry.get("role") == SPREAD_ROLE]


#: Where an entry holds the Df-vs-Dr AUC read by the matching head's probability (models with a head).
MATCH_AUC_KEY = "distinguishability.matching.mean"
#: Where an entry holds the AUC of Df against the calibration pairs (0.5: Df scores as never-seen pairs).
CALIBRATION_AUC_KEY = "distinguishability.vs_calibration.mean"
#: Where an entry says how many retained mirrors of the calibration triples were hidden for that AUC (a KG
#: request closed over its mirrors).
CALIBRATION_MIRRORS_KEY = "distinguishability.vs_calibration.mirrors_hidden"


def own_level_gap(flat: Mapping[str, Any], keys: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``(gap, standard error)``: a model's Df MRR minus its own calibration pairs' MRR (never trained on by
    any model of the request; read at ``keys["forget_mrr"]`` with the split named ``calibration``), from the
    flattened entry ``flat``; 0 means its deleted pairs score as pairs it never saw. The error is that of a
    difference of two independent means, ``sqrt(se_Df^2 + se_cal^2)``, from each MRR's ``_se`` key (None
    where either lacks one); the gap None where either MRR is missing. Why: it is read without Retrain, on the Df target's own scale; a Retrain's deleted pairs sit
    near 0 on it, while a Retrain's never-seen level itself may lie a training run's spread from the
    original's (docs/experiments/2026-12-07-image-margin-without-retrain.md)."""
    df_key = keys["forget_mrr"]
    cal_key = df_key.replace("splits.forget.", "splits.calibration.", 1)
    df, cal = finite_number(flat.get(df_key)), finite_number(flat.get(cal_key))
    if df is None or cal is None:
        return None, None
    se = [finite_number(flat.get(f"{k}_se")) for k in (df_key, cal_key)]
    return df - cal, (None if None in se else (se[0] ** 2 + se[1] ** 2) ** 0.5)


def headline(entry: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, float | None]:
    """The headline numbers of a model entry (Df and test MRR, Df-vs-Dr AUC by the judged signal and by the
    matching head, attack AUC, wall time), read at the dotted ``keys`` (the matching one at
    ``keys["df_dr_auc_match"]``, default :data:`MATCH_AUC_KEY`), Df against the calibration pairs
    (:data:`CALIBRATION_AUC_KEY`) and the calibration mirrors hidden for it (:data:`CALIBRATION_MIRRORS_KEY`),
    Df's MRR above the calibration pairs' with its standard error (:func:`own_level_gap`); None where
    missing or not finite."""
    flat = flatten(entry)
    own_gap, own_gap_se = own_level_gap(flat, keys)
    return {
        "forget_mrr": finite_number(flat.get(keys["forget_mrr"])),
        "test_mrr": finite_number(flat.get(keys["test_mrr"])),
        "df_dr_auc": finite_number(flat.get(keys["df_dr_auc"])),
        "df_dr_auc_match": finite_number(flat.get(keys.get("df_dr_auc_match", MATCH_AUC_KEY))),
        "df_cal_auc": finite_number(flat.get(keys.get("df_cal_auc", CALIBRATION_AUC_KEY))),
        "df_cal_mirrors": finite_number(flat.get(CALIBRATION_MIRRORS_KEY)),
        "attack_auc": finite_number(flat.get(keys["attack_auc"])),
        "wall_time": finite_number(flat.get(keys["wall_time"])),
        "own_gap": own_gap,
        "own_gap_se": own_gap_se,
    }


# ---------------------------------------------------------------------------------------------- verdicts

def method_verdict(name: str, models, original, reference, keys, summary, smoke: bool = False
                   ) -> dict[str, Any]:
    """Structured verdict of one method: parts (ok: bool | None, text) and an overall status.

    With ``smoke`` (a ``--quick`` run) nothing is judged: the parts are the bare measurements (ok ``None``)
    and the status is ``"not judged"``. The parts, in order: forgetting (Df MRR against Retrain), the
    membership attack (when measured), retention (test MRR against the original) and time."""
    entry = models[name]
    h = headline(entry, keys)
    ref = headline(models[reference], keys) if reference else {}
    orig = headline(models[original], keys) if original else {}
    thr = (summary.get("thresholds") or {}).get(name) or {}
    parts: list[tuple[bool | None, str]] = [_forgetting_part(thr.get("forget_mrr_vs_retrain") or {}, h, ref,
                                                             reference, smoke)]
    if h["attack_auc"] is not None:
        parts.append(_attack_part(h, ref, smoke))
    parts.append(_retention_part(thr.get("test_mrr_drop") or {}, h, orig, original, smoke))
    parts.append(_time_part(thr.get("time_vs_retrain") or {}, smoke))

    oks = [ok for ok, _ in parts]
    if smoke:
        status = NOT_JUDGED
    else:
        status = "FAIL" if False in oks else ("PASS" if None not in oks else "INCOMPLETE")
    score = ((summary.get("scores") or {}).get("methods") or {}).get(name, {})
    return {"name": name, "method": entry.get("method", ""), "status": status, "parts": parts,
            "score": score.get("score"), "rank": score.get("rank")}


def _forgetting_part(t: Mapping[str, Any], h: Mapping[str, Any], ref: Mapping[str, Any], reference,
                     smoke: bool) -> tuple[bool | None, str]:
    """The verdict's forgetting part: the method's Df MRR (``h``) against Retrain's (``ref``), judged by the
    ``forget_mrr_vs_retrain`` target ``t``."""
    if reference is None:
        return None, "forgetting not judged: no Retrain reference"
    if t.get("value") is None:
        return None, "forgetting not judged: Df MRR missing"
    if smoke:
        return None, f"Df MRR {fmt(h['forget_mrr'])} vs Retrain {fmt(ref['forget_mrr'])} ({signed(t['value'])})"
    gap, m, r = t["value"], h["forget_mrr"], ref["forget_mrr"]
    detail = f"Df MRR {fmt(m)} vs Retrain {fmt(r)} ({signed(gap)}, tolerance ±{t['limit']:g})"
    if t["passed"]:
        return True, f"forgot like Retrain: {detail}"
    if gap > 0:
        return False, f"still remembers Df: {detail}"
    return False, f"over-forgot Df: {detail}"


def _attack_part(h: Mapping[str, Any], ref: Mapping[str, Any], smoke: bool) -> tuple[bool | None, str]:
    """The verdict's membership-attack part: the method's attack AUC against Retrain's (or 0.5)."""
    r_auc = ref.get("attack_auc")
    against = f"Retrain {fmt(r_auc)}" if r_auc is not None else "0.5 (no Retrain value)"
    if smoke:
        return None, f"membership attack: AUC {fmt(h['attack_auc'])} vs {against}"
    flag = leak_flag(h["attack_auc"], reference_auc=r_auc)
    return flag == "ok", f"membership attack: AUC {fmt(h['attack_auc'])} vs {against} → {flag}"


def _retention_part(t: Mapping[str, Any], h: Mapping[str, Any], orig: Mapping[str, Any], original,
                    smoke: bool) -> tuple[bool | None, str]:
    """The verdict's retention part: the method's test MRR (``h``) against the original's (``orig``), judged
    by the ``test_mrr_drop`` target ``t``."""
    if original is None:
        return None, "retention not judged: no original model"
    if t.get("value") is None:
        return None, "retention not judged: test MRR missing"
    detail = (f"test MRR {fmt(h['test_mrr'])} vs original {fmt(orig['test_mrr'])} "
              f"({signed(-t['value'])})")
    if smoke:
        return None, detail
    return bool(t["passed"]), ("kept the rest: " if t["passed"] else "lost on test: ") + detail


def _time_part(t: Mapping[str, Any], smoke: bool) -> tuple[bool | None, str]:
    """The verdict's time part, judged by the ``time_vs_retrain`` target ``t``."""
    if t.get("value") is None:
        return None, "time not judged"
    pct = 100 * t["value"]
    if smoke:
        return None, f"time: {pct:.1f}% of Retrain's"
    return bool(t["passed"]), (f"{'fast' if t['passed'] else 'slow'}: {pct:.1f}% of Retrain's "
                               f"time (target ≤ {100 * t['limit']:g}%)")


# ---------------------------------------------------------------------------------- headline table

def headline_rows(models, order, original, reference, keys, summary, verdicts: Mapping[str, str]
                  ) -> tuple[list[str], list[list[str]]]:
    """``(head, rows)`` of the headline table: each model's headline numbers in ``order``, a method's with
    its gap to Retrain (Df side) or to the original (test), its time as a share of Retrain's, its summary
    score and its verdict (``verdicts``: name -> status). A column of the Df-vs-Dr AUC read by the matching
    head's probability follows the judged one when any model has it (the column is informative only where
    the head learnt: it is not judged), and one of Df against the calibration pairs when any model has it
    (0.5: the deleted pairs score as never-seen ones of the same model; not judged, read without Retrain),
    then Df's MRR above the calibration pairs' with its standard error when any model has both MRRs and no
    calibration mirrors were hidden (:func:`own_level_gap`; 0: as never seen, in the Df target's own score;
    not judged either)."""
    ref = headline(models[reference], keys) if reference else {}
    orig = headline(models[original], keys) if original else {}
    heads = {name: headline(models[name], keys) for name in order}
    with_match = any(h["df_dr_auc_match"] is not None for h in heads.values())
    with_cal = any(h["df_cal_auc"] is not None for h in heads.values())
    # a closed KG request: the calibration pairs were scored without their retained mirrors, as Df is
    mirrors = max((int(h["df_cal_mirrors"] or 0) for h in heads.values()), default=0)
    cal_head = "Df-vs-calibration AUC (0.5: as never seen" + (f"; {mirrors} calibration mirrors hidden)"
                                                              if mirrors else ")")
    # not on a closed KG request: the calibration MRR counts triples whose mirrors stay in training, the
    # deleted ones lost theirs, so the two would differ by inference alone (the AUC above hides the mirrors)
    with_own = not mirrors and any(h["own_gap"] is not None for h in heads.values())
    head = ["model", "role", "Df MRR (Δ vs Retrain)", "test MRR (Δ vs original)", "Df-vs-Dr AUC (Δ vs Retrain)",
            *(["Df-vs-Dr AUC, matching head (Δ vs Retrain)"] if with_match else []),
            *([cal_head] if with_cal else []),
            *(["Df − calibration MRR (0: as never seen)"] if with_own else []),
            "attack AUC (Δ vs Retrain)", "time / Retrain", "score", "verdict"]
    scores = (summary.get("scores") or {}).get("methods") or {}
    rows = []

    def cell(v, base):
        if v is None:
            return "–"
        if base is None:
            return fmt(v)
        return f"{fmt(v)} ({signed(v - base)})"

    def own_cell(gap, se):
        if gap is None:
            return "–"
        return signed(gap) + ("" if se is None else f" ± {fmt(se)}")

    for name in order:
        h = heads[name]
        is_method = models[name].get("role") == "method"
        # a further Retrain (role spread): its gaps, but no score and no verdict
        with_gaps = models[name].get("role") in GAP_ROLES
        ratio = None
        if h["wall_time"] is not None and ref.get("wall_time"):
            ratio = h["wall_time"] / ref["wall_time"]
        rows.append([
            name, models[name].get("role", ""),
            cell(h["forget_mrr"], ref.get("forget_mrr") if with_gaps else None),
            cell(h["test_mrr"], orig.get("test_mrr") if with_gaps else None),
            cell(h["df_dr_auc"], ref.get("df_dr_auc") if with_gaps else None),
            *([cell(h["df_dr_auc_match"], ref.get("df_dr_auc_match") if with_gaps else None)]
              if with_match else []),
            *([cell(h["df_cal_auc"], None)] if with_cal else []),
            *([own_cell(h["own_gap"], h["own_gap_se"])] if with_own else []),
            cell(h["attack_auc"], ref.get("attack_auc") if with_gaps else None),
            "–" if ratio is None else f"{100 * ratio:.1f}%",
            fmt((scores.get(name) or {}).get("score")) if is_method else "",
            verdicts.get(name, "") if is_method else "",
        ])
    return head, rows
