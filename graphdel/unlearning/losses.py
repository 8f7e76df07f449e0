"""The three MultiDelete loss terms (Cheng & Amiri, ECCV 2024; DESIGN.md section 1) as standalone
functions, plus the distance and derangement helpers they use.

``student`` is ``f'`` (updated), ``teacher`` is the frozen original ``f``; every teacher output is
computed under ``torch.no_grad()`` and is a constant target. Similarity-matrix variants use the
protocol's cosine ``sim`` (no temperature): temperature-scaled logits make the terms ~1/T^2 larger and
let the decoupling term dominate (FINDINGS.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphdel.errors import ConfigError
from graphdel.models.protocol import PairBatch, TextFeatures

Distance = Literal["mse", "cosine", "l1"]
Representation = Literal["fused", "similarity", "both"]


def distance(a: Tensor, b: Tensor, kind: str = "mse") -> Tensor:
    """Mean distance between ``a`` and ``b`` (same shape ``[B, ...]``).

    * ``mse``: mean of squared differences over all elements;
    * ``l1``: mean of absolute differences;
    * ``cosine``: mean over rows of ``1 - cos(a_i, b_i)`` (rows = the last dimension; for a similarity
      matrix, each row's profile over texts).
    """
    if a.shape != b.shape:
        raise ValueError(f"distance: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if kind == "mse":
        return F.mse_loss(a, b)
    if kind == "l1":
        return F.l1_loss(a, b)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)).mean()
    raise ConfigError(f"unknown distance {kind!r}; valid: mse, cosine, l1")


def derangement(n: int, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random permutation of ``range(n)`` with no fixed point (``out[i] != i``), ``n >= 2``.

    Rejection sampling (about e tries on average); after 100 rejections, a random single cycle.
    """
    if n < 2:
        raise ValueError(f"a derangement needs n >= 2, got {n}")
    ar = torch.arange(n)
    for _ in range(100):
        p = torch.randperm(n, generator=generator)
        if not bool((p == ar).any()):
            return p
    order = torch.randperm(n, generator=generator)  # pragma: no cover - probability ~ e^-100
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


def negative_texts(df: PairBatch, *, source: str = "df", dr: PairBatch | None = None,
                   generator: torch.Generator | None = None) -> tuple[TextFeatures, Tensor]:
    """Texts of *other* pairs for each pair of ``df``: ``(texts, index)``.

    ``source="df"``: ``index`` is a derangement of the Df batch (``index[i] != i``) and the texts are
    ``df.text.select(index)``. ``source="dr"``: texts of ``dr`` (without replacement when ``dr`` has at
    least ``len(df)`` pairs), ``index`` indexing ``dr``.
    """
    n = len(df)
    if source == "df":
        if _global(df):  # a process's shard (torchrun): derange the global batch, as one process would
            idx = derangement(df.shard.global_size, generator)[df.shard.start:df.shard.start + n]
            return df.shard.fetch(idx).text.to(df.text.hidden.device), idx
        idx = derangement(n, generator)
        return df.text.select(idx.to(df.text.hidden.device)), idx
    if source == "dr":
        if dr is None or len(dr) == 0:
            raise ConfigError("negatives='dr' needs a Dr batch")
        if _global(df) and _global(dr):  # shards: draw over the global batches, keep this shard's rows
            m, total = dr.shard.global_size, df.shard.global_size
            idx = (torch.randperm(m, generator=generator)[:total] if m >= total
                   else torch.randint(m, (total,), generator=generator))[df.shard.start:df.shard.start + n]
            return dr.shard.fetch(idx).text.to(dr.text.hidden.device), idx
        m = len(dr)
        idx = (torch.randperm(m, generator=generator)[:n] if m >= n
               else torch.randint(m, (n,), generator=generator))
        return dr.text.select(idx.to(dr.text.hidden.device)), idx
    raise ConfigError(f"unknown negatives source {source!r}; valid: df, dr")


def _global(batch: PairBatch) -> bool:
    """True for a process's shard of a global batch that can fetch the other shards' pairs."""
    return _sharded(batch) and batch.shard.fetch is not None


def all_rows(z: Tensor, batch: PairBatch, *, grad: bool = False) -> Tensor:
    """``[B, d]``: ``z [b, d]`` (per-pair rows of ``batch``) of every process's shard of the global batch,
    in rank order, so that a similarity matrix is this shard's rows against the *global* batch's columns;
    ``z`` itself outside torchrun. ``grad``: gradients flow back to each process's own rows.

    Why: a similarity-matrix term (L_MD / L_MKR with ``representation="similarity"``) written on a shard's
    own ``b x b`` block would leave out the other shards' columns, so two processes would optimise a
    different loss than one process with the same global batch. A distance averaged over rows of
    ``[b, B]`` blocks, averaged again over processes (gradient averaging), is the global batch's term."""
    if not _sharded(batch):
        return z
    from graphdel import distributed

    return distributed.gather_with_grad(z) if grad else distributed.gather(z)


def own_positions(batch: PairBatch, b: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Index ``(rows, columns)`` of the true pairs of this shard's ``b`` rows in a ``[b, B]`` block whose
    columns are the global batch (:func:`all_rows`): row ``r`` pairs with column ``start + r``."""
    start = batch.shard.start if _sharded(batch) else 0
    rows = torch.arange(b, device=device)
    return rows, rows + start


def _sharded(batch: PairBatch) -> bool:
    return getattr(batch, "shard", None) is not None and batch.shard.world_size > 1


class StepEncodings:
    """``model`` for the duration of one optimisation step, with ``encode_x`` / ``encode_text`` computed
    once per input object; every other attribute is the model's own.

    Why: the MultiDelete terms are standalone functions, so one step asks for the same embeddings several
    times (the Df items in L_MD and L_UKR, the Dr items in L_MKR and L_UKR; the teacher's as well). The
    item encoder (a GNN) dominates the step, and its forward *and* backward passes were repeated for each
    term. Reusing the output is exact when the forward pass is deterministic (no dropout, as MultiDelete
    runs ``f'``); with dropout on, the terms share one dropout mask instead of drawing one each.

    Inputs are keyed by identity and held until the wrapper is dropped, so an id is never reused while
    the cache lives. Make a new wrapper for every step: the student's weights change between steps.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._cache: dict[tuple[str, int], tuple[object, Tensor]] = {}

    def _memo(self, kind: str, inp: object, encode) -> Tensor:
        key = (kind, id(inp))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not inp:
            hit = (inp, encode(inp))
            self._cache[key] = hit
        return hit[1]

    def provide_x(self, x, z: Tensor) -> None:
        """Use ``z [B, d]`` as ``encode_x(x)`` (an output already known, e.g. a frozen teacher's)."""
        self._cache[("x", id(x))] = (x, z)

    def encode_x(self, x) -> Tensor:
        """``[B, d]``: ``model.encode_x(x)``, computed once for this ``x``."""
        return self._memo("x", x, self.model.encode_x)

    def encode_text(self, text: TextFeatures) -> Tensor:
        """``[B, d]``: ``model.encode_text(text)``, computed once for this ``text``."""
        return self._memo("text", text, self.model.encode_text)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def _check_repr(representation: str) -> None:
    if representation not in ("fused", "similarity", "both"):
        raise ConfigError(f"unknown representation {representation!r}; valid: fused, similarity, both")


def modality_decoupling(student: nn.Module, teacher: nn.Module, df: PairBatch, *, negatives: str = "df",
                        dr: PairBatch | None = None, representation: str = "fused", distance: str = "mse",
                        generator: torch.Generator | None = None,
                        similarity_target: str = "permuted") -> Tensor:
    """Modality decoupling L_MD: a deleted pair must look like an *unrelated* pair to ``f``.

    * ``fused``: ``mean_i d(f'.fuse(x_i, t_i), f.fuse(x_i, t_j))``, ``t_j`` the text of another pair
      (a derangement of the Df batch, or Dr texts with ``negatives="dr"``);
    * ``similarity``: ``d(S'(X_f, T_f), S(X_f, T_pi))`` on cosine similarities, ``T_pi`` the permuted
      text set (``similarity_target="permuted"``, DESIGN.md s.1). With ``similarity_target="pairwise"``
      the target is ``S(X_f, T_f)`` with its diagonal replaced by ``s(x_i, t_pi(i))``: only the true
      pairs are moved, the unrelated Df pairs keep their similarities (the permuted target also pulls
      ``s'(x_i, t_{pi^-1(i)})`` up to the old true-pair similarity).
    * ``both``: the sum of the two.
    """
    _check_repr(representation)
    neg, _ = negative_texts(df, source=negatives, dr=dr, generator=generator)
    total = None
    if representation in ("fused", "both"):
        with torch.no_grad():
            target = teacher.fuse(df.x, neg)
        total = _distance(student.fuse(df.x, df.text), target, distance)
    if representation in ("similarity", "both"):
        with torch.no_grad():
            tz_x = teacher.encode_x(df.x)
            if similarity_target == "permuted":
                target = teacher.sim(tz_x, all_rows(teacher.encode_text(neg), df))
            elif similarity_target == "pairwise":
                target = teacher.sim(tz_x, all_rows(teacher.encode_text(df.text), df)).clone()
                unrelated = teacher.sim(tz_x, teacher.encode_text(neg)).diagonal()
                target[own_positions(df, tz_x.size(0), tz_x.device)] = unrelated
            else:
                raise ConfigError(f"unknown similarity_target {similarity_target!r}; valid: permuted, pairwise")
        s = student.sim(student.encode_x(df.x), all_rows(student.encode_text(df.text), df, grad=True))
        term = _distance(s, target, distance)
        total = term if total is None else total + term
    return total


def _distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    return distance(a.float(), b.float(), kind)


def multimodal_retention(student: nn.Module, teacher: nn.Module, dr: PairBatch, *,
                         representation: str = "fused", distance: str = "mse") -> Tensor:
    """Multimodal knowledge retention L_MKR on Dr: ``d(f'.fuse(x, t), f.fuse(x, t))`` (``fused``),
    ``d(S'(X_r, T_r), S(X_r, T_r))`` on cosine similarities (``similarity``), or their sum (``both``)."""
    _check_repr(representation)
    total = None
    if representation in ("fused", "both"):
        with torch.no_grad():
            target = teacher.fuse(dr.x, dr.text)
        total = _distance(student.fuse(dr.x, dr.text), target, distance)
    if representation in ("similarity", "both"):
        with torch.no_grad():
            target = teacher.sim(teacher.encode_x(dr.x), all_rows(teacher.encode_text(dr.text), dr))
        s = student.sim(student.encode_x(dr.x), all_rows(student.encode_text(dr.text), dr, grad=True))
        term = _distance(s, target, distance)
        total = term if total is None else total + term
    return total


def unimodal_retention(student: nn.Module, teacher: nn.Module, batch: PairBatch, *,
                       distance: str = "mse") -> Tensor:
    """Unimodal knowledge retention L_UKR: ``d(f'.encode_x(x), f.encode_x(x)) +
    d(f'.encode_text(t), f.encode_text(t))`` (normalised, projected embeddings)."""
    with torch.no_grad():
        tx, tt = teacher.encode_x(batch.x), teacher.encode_text(batch.text)
    return (_distance(student.encode_x(batch.x), tx, distance)
            + _distance(student.encode_text(batch.text), tt, distance))
