"""Near-neighbour leakage: do molecules *similar* to the forgotten ones still retrieve the forgotten captions?

A deletion request removes molecule–caption pairs, but the model keeps training on their chemical
neighbours. A chemist's question is then: when the model is shown a close analogue of a deleted molecule
(same series, a methyl swapped), does it still answer with the *deleted* caption? Retrain gives the
honest level: it never saw the deleted pairs, yet it may still retrieve their captions from neighbours
because they describe similar chemistry. An unlearned model should match Retrain here -- much higher is
residual memory of the deleted pairs, much lower means the neighbours were damaged too.

Two steps:

1. :func:`nearest_neighbours` finds, for every forgotten molecule, its ``k`` nearest molecules among
   candidates (retained and test molecules) by Tanimoto similarity of Morgan fingerprints (RDKit,
   bit vectors, radius 2 and 2048 bits by default: ECFP4-like).
2. :func:`caption_leakage` (on embeddings) or :func:`neighbour_leakage` (on a model and corpus rows)
   ranks, for each (forgotten molecule, neighbour) link, the forgotten molecule's caption among a fixed
   set of candidate captions when the *neighbour's* graph embedding is the query, and also ranks the
   neighbour's own caption (collateral damage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from torch import Tensor

from graphdel.errors import InvalidMoleculeError
from graphdel.evaluation.retrieval import rank_summary, retrieval_ranks

RDLogger.DisableLog("rdApp.*")

__all__ = ["morgan_fingerprints", "tanimoto_matrix", "Neighbours", "nearest_neighbours", "caption_leakage",
           "neighbour_leakage"]


def morgan_fingerprints(smiles: Sequence[str], *, radius: int = 2, n_bits: int = 2048) -> list:
    """Morgan (circular) fingerprints as RDKit bit vectors.

    Args:
        smiles: ``N`` SMILES strings.
        radius: the Morgan radius (2 is ECFP4-like; 0 keeps only the atom invariants).
        n_bits: the fingerprint length.

    Returns:
        ``N`` :class:`rdkit.DataStructs.ExplicitBitVect` of ``n_bits`` bits.

    Raises:
        InvalidMoleculeError: a SMILES RDKit cannot parse (with its 1-based row).
    """
    if radius < 0 or n_bits < 1:
        raise ValueError(f"radius must be >= 0 and n_bits >= 1, got radius={radius}, n_bits={n_bits}")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = []
    for row, smi in enumerate(smiles, start=1):
        mol = Chem.MolFromSmiles(smi) if isinstance(smi, str) and smi.strip() else None
        if mol is None:
            raise InvalidMoleculeError(f"cannot parse SMILES {smi!r}", row=row, smiles=smi)
        out.append(generator.GetFingerprint(mol))
    return out


def tanimoto_matrix(query_smiles: Sequence[str], candidate_smiles: Sequence[str], *, radius: int = 2,
                    n_bits: int = 2048) -> np.ndarray:
    """Tanimoto similarity of Morgan fingerprints between every query and every candidate.

    ``T(a, b) = |bits(a) ∩ bits(b)| / |bits(a) ∪ bits(b)|`` (1 for identical fingerprints).

    Returns:
        ``[Q, C]`` float64 array.
    """
    q = morgan_fingerprints(query_smiles, radius=radius, n_bits=n_bits)
    c = morgan_fingerprints(candidate_smiles, radius=radius, n_bits=n_bits)
    out = np.zeros((len(q), len(c)), dtype=np.float64)
    if c:
        for i, fp in enumerate(q):
            out[i] = DataStructs.BulkTanimotoSimilarity(fp, c)
    return out


@dataclass
class Neighbours:
    """Nearest-neighbour links, one row per (query, neighbour), queries in order and nearest first.

    Attributes:
        query: ``[L]`` int64 index into the query list.
        candidate: ``[L]`` int64 index into the candidate list.
        similarity: ``[L]`` float64 Tanimoto similarity of the two.
        rank: ``[L]`` int64 1-based position of the neighbour among its query's neighbours.
    """

    query: np.ndarray
    candidate: np.ndarray
    similarity: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return int(self.query.size)


def nearest_neighbours(query_smiles: Sequence[str], candidate_smiles: Sequence[str], *, k: int = 5,
                       radius: int = 2, n_bits: int = 2048, min_similarity: float = 0.0) -> Neighbours:
    """The ``k`` candidates most similar to each query by Morgan-fingerprint Tanimoto similarity.

    Ties are broken by the lower candidate index, so the result is deterministic. Candidates with a
    similarity below ``min_similarity`` are dropped, so a query may get fewer than ``k`` neighbours (or
    none); fewer than ``k`` candidates gives every candidate.

    Args:
        query_smiles: ``Q`` SMILES (e.g. the forgotten molecules).
        candidate_smiles: ``C`` SMILES (e.g. retained and test molecules).
        k: neighbours per query (>= 1).
        radius, n_bits: the fingerprint (see :func:`morgan_fingerprints`).
        min_similarity: the lowest Tanimoto similarity kept.

    Returns:
        :class:`Neighbours` with ``L <= Q * k`` links.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sim = tanimoto_matrix(query_smiles, candidate_smiles, radius=radius, n_bits=n_bits)
    q_idx, c_idx, s, r = [], [], [], []
    for i in range(sim.shape[0]):
        order = np.lexsort((np.arange(sim.shape[1]), -sim[i]))[:k]  # by similarity desc, then index asc
        kept = [j for j in order if sim[i, j] >= min_similarity]
        q_idx += [i] * len(kept)
        c_idx += kept
        s += [float(sim[i, j]) for j in kept]
        r += list(range(1, len(kept) + 1))
    return Neighbours(np.asarray(q_idx, dtype=np.int64), np.asarray(c_idx, dtype=np.int64),
                      np.asarray(s, dtype=np.float64), np.asarray(r, dtype=np.int64))


def caption_leakage(neighbour_emb: Tensor, caption_emb: Tensor, forgotten: Tensor | Sequence[int],
                    own: Tensor | Sequence[int] | None = None) -> dict:
    """How well neighbour molecules retrieve the forgotten captions, on embeddings.

    For link ``l``, the query is the neighbour's graph embedding ``neighbour_emb[l]``, the candidates are
    every caption in ``caption_emb``, and the target is ``forgotten[l]`` (the caption of the forgotten
    molecule the neighbour was found for). Ranks are those of
    :func:`~graphdel.evaluation.retrieval.retrieval_ranks` (dot product; ties broken at random, so
    ranks are expected ranks).

    Args:
        neighbour_emb: ``[L, d]`` normalised graph embeddings of the neighbours (one row per link).
        caption_emb: ``[C, d]`` normalised text embeddings of the candidate captions.
        forgotten: ``[L]`` index into ``caption_emb`` of each link's forgotten caption.
        own: ``[L]`` index into ``caption_emb`` of each neighbour's own caption, or ``None``.

    Returns:
        ``{"n": L, "forgotten": {"mrr", "hits@1", "hits@10"}, "forgotten_ranks": float64 [L] expected ranks,
        "forgotten_similarity": float64 [L] (dot product of neighbour and forgotten caption)}``, plus
        ``"own"`` and ``"own_ranks"`` when ``own`` is given.
    """
    forgotten = torch.as_tensor(forgotten, dtype=torch.long).reshape(-1)
    if neighbour_emb.dim() != 2 or neighbour_emb.size(0) != forgotten.numel():
        raise ValueError(f"neighbour_emb {tuple(neighbour_emb.shape)} needs one row per link "
                         f"({forgotten.numel()} links)")
    if forgotten.numel() == 0:
        raise ValueError("caption_leakage needs at least one link")
    ranks = retrieval_ranks(neighbour_emb, caption_emb, forgotten)
    sim = (neighbour_emb.double() * caption_emb[forgotten].double()).sum(1)
    out = {"n": int(forgotten.numel()), "forgotten": rank_summary(ranks),
           "forgotten_ranks": ranks.expected().cpu().numpy(), "forgotten_similarity": sim.cpu().numpy()}
    if own is not None:
        own = torch.as_tensor(own, dtype=torch.long).reshape(-1)
        if own.numel() != forgotten.numel():
            raise ValueError(f"own has {own.numel()} entries for {forgotten.numel()} links")
        own_ranks = retrieval_ranks(neighbour_emb, caption_emb, own)
        out["own"] = rank_summary(own_ranks)
        out["own_ranks"] = own_ranks.expected().cpu().numpy()
    return out


def neighbour_leakage(model, data, forgotten_rows: Sequence[int], neighbour_rows: Sequence[int],
                      caption_rows: Sequence[int], *, batch_size: int = 256,
                      device: str | torch.device | None = None) -> dict:
    """:func:`caption_leakage` of a model on corpus rows.

    Args:
        model: a joint model (``encode_x``, ``encode_text``; see :mod:`graphdel.models.protocol`).
        data: the :class:`~graphdel.data.pairs.PairData` the rows belong to.
        forgotten_rows: ``[L]`` corpus row of each link's forgotten pair (its caption is the target).
        neighbour_rows: ``[L]`` corpus row of each link's neighbour (its molecule is the query, its caption
            the ``own`` target).
        caption_rows: the candidate captions, as corpus rows; must contain every forgotten and neighbour
            row. Keep it the same for every model compared.
        batch_size, device: embedding batch size and device (``None``: where ``model`` is; see
            :func:`graphdel.evaluation.embed.embed_pairs`).

    Returns:
        The dict of :func:`caption_leakage` (with ``own``).
    """
    from graphdel.evaluation.embed import embed_pairs

    forgotten_rows, neighbour_rows = [int(r) for r in forgotten_rows], [int(r) for r in neighbour_rows]
    if len(forgotten_rows) != len(neighbour_rows):
        raise ValueError(f"{len(forgotten_rows)} forgotten rows but {len(neighbour_rows)} neighbour rows")
    caption_rows = list(dict.fromkeys(int(r) for r in caption_rows))
    position = {r: i for i, r in enumerate(caption_rows)}
    missing = sorted({r for r in forgotten_rows + neighbour_rows if r not in position})
    if missing:
        raise ValueError(f"caption_rows must contain every forgotten and neighbour row; "
                         f"missing {missing[:10]}")
    unique_neighbours = list(dict.fromkeys(neighbour_rows))
    z_x = embed_pairs(model, data.subset(unique_neighbours, "neighbours"), batch_size=batch_size,
                      device=device).z_x
    z_t = embed_pairs(model, data.subset(caption_rows, "captions"), batch_size=batch_size, device=device).z_t
    where = {r: i for i, r in enumerate(unique_neighbours)}
    queries = z_x[torch.as_tensor([where[r] for r in neighbour_rows], dtype=torch.long)]
    return caption_leakage(queries, z_t, [position[r] for r in forgotten_rows],
                           [position[r] for r in neighbour_rows])
