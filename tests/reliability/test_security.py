"""Security: no pickle or eval, weights from safetensors only, outputs confined to the chosen folder,
user strings escaped in HTML, and certificates whose hashes cover weights, config and request."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import graphdel
import graphdel as gd
from graphdel import api
from graphdel.data.molecule_graphs import _hash_smiles
from graphdel.data.molecules import cache_dir, featurize_smiles
from graphdel.errors import ConfigError, IntegrityError, RunError
from graphdel.evaluation.certificate import verify_certificate
from graphdel.evaluation.report import write_report
from graphdel.evaluation.suite import evaluate_runs, write_audit
from graphdel.runs import Run
from graphdel.unlearning import get_method, parse_overrides

from tests.conftest import TINY_MOLECULES
from tests.reliability.conftest import TINY_RECIPE, write_tiny_csv

PACKAGE = Path(graphdel.__file__).resolve().parent

# ------------------------------------------------------------------------------------ source scanning

#: Modules that deserialise arbitrary Python objects.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
#: Builtins that run text as code.
CODE_BUILTINS = {"eval", "exec", "compile"}


def _dotted(node: ast.AST) -> str:
    """``torch.load`` for ``Attribute(Name('torch'), 'load')``; ``''`` for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unsafe_calls(source: str, filename: str = "<string>") -> list[str]:
    """Every unsafe deserialisation or code execution in ``source``, as ``file:line: what``.

    Flags: importing a pickle-like module; ``eval``/``exec``/``compile``; ``torch.load`` without
    ``weights_only=True`` (or imported bare); ``numpy.load(..., allow_pickle=True)``; ``yaml.load`` and
    ``yaml.unsafe_load``.
    """
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"{where}: from {node.module} import")
            if node.module == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where}: from torch import load")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if isinstance(node.func, ast.Name) and node.func.id in CODE_BUILTINS:
                found.append(f"{where}: {node.func.id}()")
            elif name == "torch.load" and not _keyword_is(node, "weights_only", True):
                found.append(f"{where}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and _keyword_is(node, "allow_pickle", True):
                found.append(f"{where}: {name}(allow_pickle=True)")
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                found.append(f"{where}: {name}")
    return found


def test_scanner_catches_every_pattern():
    """The scanner below is not vacuous: each unsafe pattern is found, the safe forms are not."""
    bad = "\n".join(["import pickle", "import dill as d", "from joblib import load", "eval('1')", "exec('x=1')",
                     "compile('1', 'f', 'eval')", "torch.load(p)", "torch.load(p, weights_only=False)",
                     "from torch import load", "np.load(p, allow_pickle=True)", "yaml.load(s)"])
    assert len(unsafe_calls(bad)) == 11
    good = "\n".join(["torch.load(p, weights_only=True)", "model.eval()", "re.compile('x')", "np.load(p)",
                      "yaml.safe_load(s)", "json.loads(s)", "x.exec_module(m)"])
    assert unsafe_calls(good) == []


def test_package_has_no_pickle_eval_or_unsafe_torch_load():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30  # the whole package is scanned
    found = [v for f in files for v in unsafe_calls(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE)))]
    assert found == []


# ------------------------------------------------------------------------------- pickle payloads refused

class _Payload:
    """Unpickling this creates a folder: proof that the bytes were executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("as_torch", [False, True], ids=["raw-pickle", "torch-save"])
def test_a_pickled_weights_file_is_refused_and_never_executed(tiny_run, tmp_path, as_torch):
    shutil.copytree(tiny_run.path, tmp_path / "run")
    marker = tmp_path / "pwned"
    weights = tmp_path / "run" / "model.safetensors"
    if as_torch:
        torch.save({"w": _Payload(str(marker))}, weights)
    else:
        weights.write_bytes(pickle.dumps(_Payload(str(marker))))
    # the integrity record refuses the swapped file first; the safetensors reader is the guard behind it
    with pytest.raises(IntegrityError, match=r"model\.safetensors changed since the run was written"):
        Run.load(tmp_path / "run")
    with pytest.raises(RunError, match=r"cannot read weights .*model\.safetensors"):
        Run.load(tmp_path / "run", accept_modified=True).model
    assert not marker.exists()


def test_a_pickle_in_the_feature_cache_is_never_executed(tmp_path):
    smiles = ["CCO", "c1ccccc1"]
    marker = tmp_path / "pwned"
    path = cache_dir() / "molecules" / f"{_hash_smiles(smiles)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": _Payload(str(marker))}, path)
    graphs = featurize_smiles(smiles)  # refused by weights_only=True, so rebuilt from the SMILES
    assert not marker.exists()
    assert graphs.node_ptr.tolist() == [0, 3, 9]
    assert torch.load(path, weights_only=True)["node_ptr"].tolist() == [0, 3, 9]  # the cache was rewritten


def test_a_pickle_in_the_text_cache_is_never_executed(tmp_path):
    from graphdel.encoders.text import TextEncoderConfig, encode_frozen, frozen_cache_key

    texts, config = ["Aspirin is an acetate ester.", "Water."], TextEncoderConfig(fusion_tokens=8)
    marker = tmp_path / "pwned"
    entry = cache_dir() / "text" / frozen_cache_key(texts, config)[:24]
    entry.mkdir(parents=True)
    for name in ("hidden", "mask", "pooled"):  # object arrays: numpy would unpickle them if allowed
        np.save(entry / f"{name}.npy", np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    features = encode_frozen(texts, config, progress=False, device="cpu")  # refused, so encoded again
    assert not marker.exists()
    assert features.hidden.shape == (2, 8, 384) and features.mask.sum(1).tolist() == [8, 4]
    assert np.load(entry / "hidden.npy", allow_pickle=False).dtype == np.float16  # the entry was rewritten


def test_config_values_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').mkdir({str(marker)!r})"
    for key in ("lr", "distance", "terms.md"):
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            parse_overrides(get_method("multidelete").Config, [f"{key}={code}"])
    assert not marker.exists()


# ------------------------------------------------------------------------- outputs stay in their folder

def _entry(role: str, method: str, forget: float) -> dict:
    split = lambda m: {"g2t": {"mrr": m, "hits@1": m, "hits@10": 1.0}, "t2g": {"mrr": m, "hits@1": m, "hits@10": 1.0},  # noqa: E731
                       "pool64": {"g2t_mrr": m, "t2g_mrr": m, "g2t_acc": m, "t2g_acc": m}, "n": 4}
    return {"role": role, "method": method, "wall_time_s": 1.0,
            "splits": {"forget": split(forget), "retain": split(0.9), "test": split(0.6)},
            "distinguishability": {"mean": 0.6}, "membership": {"attack_auc": 0.6}}


EVIL_NAMES = ["../../escaped", "/tmp/absolute", "..", "a/../../b", "<script>alert(1)</script>"]


def test_report_file_names_never_leave_the_folder(tmp_path):
    out = tmp_path / "deep" / "report"
    models = {"original": _entry("original", "train", 0.9), "retrain": _entry("reference", "retrain", 0.7)}
    models.update({name: _entry("method", name, 0.7) for name in EVIL_NAMES})
    rng = np.random.default_rng(0)
    plots = {"similarities": {n: {"forget": rng.random(5), "retain": rng.random(5), "test": rng.random(5)}
                              for n in models},
             "embeddings": {EVIL_NAMES[0]: (rng.random((10, 2)), np.arange(10) < 3)}}
    before = {p for p in tmp_path.rglob("*")}
    written = write_report(out, {"title": "t", "models": models}, plots)
    assert len([k for k in written if k.startswith("plots/similarity_")]) == len(models)
    for rel, path in written.items():
        assert path.resolve().is_relative_to(out.resolve()), rel
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.resolve().is_relative_to(out.resolve()) or p in out.parents for p in created)


@pytest.fixture(scope="module")
def evil_runs(tmp_path_factory):
    """A tiny corpus whose ids and captions carry markup and path pieces, a run on it, and two unlearned
    runs (one in a folder whose name carries markup) of a request that deletes exactly the evil pairs."""
    root = tmp_path_factory.mktemp("evil")
    rows = [("../../etc/evil", TINY_MOLECULES[0][1], "<script>alert(1)</script> Aspirin is an ester.", "train"),
            ("<img src=x onerror=alert(2)>", TINY_MOLECULES[1][1], "Caffeine </td><script>alert(3)</script>.",
             "train"),
            *TINY_MOLECULES[2:]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        src = write_tiny_csv(root / "evil.csv", rows)
        original = gd.train(f"csv:{src}", TINY_RECIPE, out=root / "orig", quick=True, progress=False)
        prepared = api.load_run_data(original, progress=False)
        trained = [prepared.corpus.pair_ids[r] for r in prepared.trained_rows()]
        request = api.make_request(original, ids=trained[:2], by="pair", prepared=prepared)
        retrain = api.forget(original, request, method="retrain", out=root / "retrain", progress=False,
                             prepared=prepared)
        method = api.forget(original, request, method="neggrad", overrides=["epochs=1"],
                            out=root / "neg <i>grad", progress=False, prepared=prepared)
        audit = evaluate_runs([retrain.path, method.path], progress=False, log=lambda s: None)
    return root, request, audit, method


def test_evil_ids_and_captions_are_escaped_and_confined(evil_runs, tmp_path):
    root, request, audit, _ = evil_runs
    assert any("<" in p for p in request.pair_ids)  # the request does delete markup-carrying pairs
    out = tmp_path / "report"
    before = {p for p in root.parent.rglob("*")}
    written = write_audit(out, audit)
    created = {p for p in root.parent.rglob("*")} - before
    assert created and all(p == out or p.is_relative_to(out) for p in created)  # nothing outside --out
    for rel, path in written.items():
        assert path.resolve().is_relative_to(out.resolve()), rel
    assert sorted(p.name for p in (out / "certificates").iterdir()) == ["neg_i_grad.json", "retrain.json"]
    page = (out / "report.html").read_text()
    for raw in ("<script", "<img_src=x", "<i>grad", "</td><script"):  # (plots are <img src="data:...">)
        assert raw not in page.lower()
    assert "&lt;img_src=x_onerror=alert(2)&gt;" in page  # the id of a deleted pair (the CSV writer put _ for spaces)
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page  # its caption
    markdown = (out / "report.md").read_text()
    assert "<script" not in markdown and "<img_src=x" not in markdown


# ---------------------------------------------------------------------- certificates cover every input

def _flip_weight_byte(path: Path) -> None:
    """Flip the high byte (sign and exponent) of the float32 in the middle of the weights: a low mantissa
    byte would change a weight by too little for the parameter-change norm to notice."""
    raw = bytearray(path.read_bytes())
    header = struct.unpack("<Q", raw[:8])[0]
    start = 8 + header
    raw[start + (len(raw) - start) // 2 // 4 * 4 + 3] ^= 0xFF
    path.write_bytes(bytes(raw))


def _edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("tamper,failed", [
    (lambda d: None, set()),
    (lambda d: _flip_weight_byte(d / "model.safetensors"), {"unlearned_weights_sha256",
                                                            "procedure.param_change_norm"}),
    (lambda d: _edit_json(d / "config.json", lambda c: c["method_config"].update(lr=1.0)),
     {"config_sha256", "method_config"}),
    (lambda d: _edit_json(d / "config.json", lambda c: c["data"].update(content_hash="0" * 64)),
     {"config_sha256", "data.content_hash"}),
    (lambda d: _edit_json(d / "request.json", lambda r: r["pairs"].pop()), {"request", "request_sha256"}),
    (lambda d: _edit_json(d / "certificate.json", lambda c: c["request"]["pairs"].pop()), {"request"}),
    (lambda d: _edit_json(d / "certificate.json", lambda c: c.update(original_weights_sha256="0" * 64)),
     {"original_weights_sha256"}),
], ids=["untouched", "weights", "method-config", "data-hash", "request-file", "certified-request",
        "original-weights"])
def test_certificate_hashes_cover_weights_config_and_request(evil_runs, tmp_path, tamper, failed):
    *_, method = evil_runs
    copy = tmp_path / "copy"
    shutil.copytree(method.path, copy)
    tamper(copy)
    result = verify_certificate(copy / "certificate.json", metrics=False)
    assert {name for name, _, _ in result.failed} == failed
    assert result.holds is (not failed)
