"""Many featurised molecules as one set of concatenated tensors (:class:`MoleculeGraphs`, batched without a
Python loop), and :func:`featurize_smiles`, which builds it from canonical SMILES in chunks, in worker
processes when asked, with an on-disk cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from graphdel.data.molecule_features import FEATURIZER_VERSION, featurize_chunk


#: Storage types: every atom and bond feature vocabulary has fewer than 256 values
#: (:data:`~graphdel.data.molecule_features.ATOM_FEATURE_DIMS`), and a molecule's own atom indices are far
#: below 2^31. A PubChem-size corpus (300k molecules) then takes about 0.3 GB instead of 1.5 GB of int64;
#: batches widen what they gather to ``long``.
STORAGE_DTYPES = {"x": torch.uint8, "edge_index": torch.int32, "edge_attr": torch.uint8,
                  "node_ptr": torch.long, "edge_ptr": torch.long}


@dataclass
class MoleculeGraphs:
    """Many featurised molecules stored as concatenated tensors (one allocation, fast to slice and cache).

    Graph ``i`` owns nodes ``node_ptr[i]:node_ptr[i+1]`` and edges ``edge_ptr[i]:edge_ptr[i+1]``; its
    ``edge_index`` is stored relative to its own first node. Stored in the smallest types that hold the
    values (:data:`STORAGE_DTYPES`; tensors of other integer types are converted, and refused if a value
    does not fit); :meth:`batch` and indexing give ``long`` tensors, as PyG expects.

    Attributes:
        x: ``[total_nodes, 9]`` uint8.
        edge_index: ``[2, total_edges]`` int32, graph-local node indices.
        edge_attr: ``[total_edges, 3]`` uint8.
        node_ptr: ``[num_graphs + 1]`` long.
        edge_ptr: ``[num_graphs + 1]`` long.
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    node_ptr: Tensor
    edge_ptr: Tensor

    def __post_init__(self) -> None:
        for name, dtype in STORAGE_DTYPES.items():
            value = getattr(self, name)
            if value.dtype != dtype:
                info = torch.iinfo(dtype)
                if value.numel() and (int(value.min()) < info.min or int(value.max()) > info.max):
                    raise ValueError(f"molecule graphs: {name} holds values in {int(value.min())}.."
                                     f"{int(value.max())}, outside {dtype}'s range")
                setattr(self, name, value.to(dtype))

    def __len__(self) -> int:
        return self.node_ptr.numel() - 1

    @classmethod
    def from_data_list(cls, graphs: Sequence[Data]) -> "MoleculeGraphs":
        """Concatenate graphs made by :func:`mol_to_data`."""
        nodes = torch.tensor([0] + [g.num_nodes for g in graphs]).cumsum(0)
        edges = torch.tensor([0] + [g.edge_index.size(1) for g in graphs]).cumsum(0)
        return cls(
            x=torch.cat([g.x for g in graphs]) if graphs else torch.zeros(0, 9, dtype=torch.long),
            edge_index=torch.cat([g.edge_index for g in graphs], 1) if graphs else torch.zeros(2, 0, dtype=torch.long),
            edge_attr=torch.cat([g.edge_attr for g in graphs]) if graphs else torch.zeros(0, 3, dtype=torch.long),
            node_ptr=nodes, edge_ptr=edges,
        )

    def __getitem__(self, i: int) -> Data:
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return Data(x=self.x[n0:n1].long(), edge_index=self.edge_index[:, e0:e1].long(),
                    edge_attr=self.edge_attr[e0:e1].long(), num_nodes=n1 - n0)

    def batch(self, indices: Tensor) -> Batch:
        """Collate graphs ``indices`` (``[B]`` long) into one PyG ``Batch`` with vectorised gathers; the
        batch also records ``item_index`` (``indices``) and ``item_store`` (this object).

        Equivalent to ``Batch.from_data_list([self[i] for i in indices])`` but without a Python loop over
        graphs or atoms, which matters in the training step.
        """
        indices = torch.as_tensor(indices, dtype=torch.long)
        n_nodes = self.node_ptr[indices + 1] - self.node_ptr[indices]
        n_edges = self.edge_ptr[indices + 1] - self.edge_ptr[indices]
        node_src = _ranges(self.node_ptr[indices], n_nodes)
        edge_src = _ranges(self.edge_ptr[indices], n_edges)
        new_node_start = torch.cat([n_nodes.new_zeros(1), n_nodes.cumsum(0)])
        offsets = torch.repeat_interleave(new_node_start[:-1], n_edges)
        batch_vec = torch.repeat_interleave(torch.arange(indices.numel()), n_nodes)
        out = Batch(x=self.x[node_src].long(), edge_index=self.edge_index[:, edge_src] + offsets,
                    edge_attr=self.edge_attr[edge_src].long(), batch=batch_vec, ptr=new_node_start)
        out._num_graphs = indices.numel()
        # which molecules these are, so that per-molecule results can be reused (FrozenTrunkCache)
        out.item_index, out.item_store = indices, self
        return out

    def state(self) -> dict[str, Tensor]:
        """Tensors for ``torch.save`` / safetensors."""
        return {"x": self.x, "edge_index": self.edge_index, "edge_attr": self.edge_attr,
                "node_ptr": self.node_ptr, "edge_ptr": self.edge_ptr}

    def fingerprint(self) -> str:
        """SHA-256 of every stored tensor (type, shape and bytes), computed once: the key under which
        results per molecule of this store may be kept on disk
        (:class:`graphdel.models.frozen_items.FrozenItemEmbeddings`)."""
        if "_fingerprint" not in self.__dict__:
            self.__dict__["_fingerprint"] = tensor_digest(self.state().values())
        return self.__dict__["_fingerprint"]


def tensor_digest(tensors: Iterable[Tensor]) -> str:
    """SHA-256 (hex) of the tensors in order: each one's type, shape and bytes (read on the CPU)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + l)`` for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    group_start = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)[:-1]])
    within = torch.arange(total) - torch.repeat_interleave(group_start, lengths)
    return torch.repeat_interleave(starts, lengths) + within


def cache_dir() -> Path:
    """Where featurised data is cached: ``$GRAPHDEL_CACHE`` or ``~/.cache/graphdel``."""
    return Path(os.environ.get("GRAPHDEL_CACHE", Path.home() / ".cache" / "graphdel"))


def _hash_smiles(smiles: Iterable[str]) -> str:
    # the storage types are part of the key: an entry of int64 arrays (before them) is not read again
    h = hashlib.sha256(f"{FEATURIZER_VERSION}/uint8".encode())
    for s in smiles:
        h.update(b"\x00" + s.encode())
    return h.hexdigest()[:24]


#: Molecules per task handed to a worker process (large enough that pickling the result is cheap).
CHUNK = 1024
#: ``workers="auto"`` uses worker processes only for at least this many molecules (a pool costs ~0.1 s)...
AUTO_WORKERS_MIN = 4096
#: ... and only on machines with at least this many CPUs: on the project's 2-core machine, shared with other
#: work, 2 workers were slower than 1 process (bench/featurize.py).
AUTO_WORKERS_MIN_CPUS = 4


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, n: int) -> int:
    """Worker processes for ``n`` molecules: ``auto`` -> one per available CPU (at most 8) when ``n`` is at
    least :data:`AUTO_WORKERS_MIN` and there are at least :data:`AUTO_WORKERS_MIN_CPUS` CPUs, else 0
    (featurise in this process); an int is used as given (0 or 1 = none)."""
    if workers == "auto":
        cpus = _available_cpus()
        return min(cpus, 8) if n >= AUTO_WORKERS_MIN and cpus >= AUTO_WORKERS_MIN_CPUS else 0
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers must be 'auto' or an int >= 0, got {workers!r}")
    return workers if workers > 1 else 0


def _pool_context():
    """``fork`` where the platform has it (a worker runs RDKit and NumPy only, never torch, so forking a
    process that has torch threads is safe and avoids re-importing torch in every worker), else spawn."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _featurize_all(smiles: Sequence[str], workers: int, progress: bool) -> MoleculeGraphs:
    """Featurise ``smiles`` in chunks (in worker processes when ``workers`` > 1) and concatenate them."""
    from tqdm.auto import tqdm

    chunks = [smiles[i:i + CHUNK] for i in range(0, len(smiles), CHUNK)]
    bar = tqdm(total=len(smiles), desc="featurising molecules", unit="mol", disable=not progress, leave=False)
    parts = []
    if workers > 1 and len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=_pool_context()) as pool:
            for chunk, part in zip(chunks, pool.map(featurize_chunk, chunks)):  # map keeps the order
                parts.append(_stored(part))
                bar.update(len(chunk))
    else:
        for chunk in chunks:
            parts.append(_stored(featurize_chunk(chunk)))
            bar.update(len(chunk))
    bar.close()
    if not parts:
        return MoleculeGraphs.from_data_list([])
    nodes = torch.from_numpy(np.concatenate([p["nodes"] for p in parts]))
    edges = torch.from_numpy(np.concatenate([p["edges"] for p in parts]))
    zero = torch.zeros(1, dtype=torch.long)
    return MoleculeGraphs(x=torch.cat([p["x"] for p in parts]),
                          edge_index=torch.cat([p["edge_index"] for p in parts], 1),
                          edge_attr=torch.cat([p["edge_attr"] for p in parts]),
                          node_ptr=torch.cat([zero, nodes.cumsum(0)]), edge_ptr=torch.cat([zero, edges.cumsum(0)]))


def _stored(part: dict[str, np.ndarray]) -> dict:
    """A chunk's int64 arrays with the feature arrays in their storage types (:data:`STORAGE_DTYPES`), so
    that a large corpus never holds all its molecules in int64: the vocabularies bound the values."""
    return {k: torch.from_numpy(v).to(STORAGE_DTYPES[k]) if k in STORAGE_DTYPES else v
            for k, v in part.items()}


def featurize_smiles(canonical_smiles: Sequence[str], *, use_cache: bool = True, workers: int | str = "auto",
                     progress: bool = False) -> MoleculeGraphs:
    """Featurise already standardised SMILES (see :func:`standardize_smiles`), with an on-disk cache.

    The cache key is a SHA-256 of the featuriser version and the SMILES list, so a second call on the same
    molecules loads tensors instead of running RDKit (the warm path: one ``torch.load``, memory-mapped, so
    the arrays stay on disk until a batch reads them). The cache is read with ``weights_only=True``. On a
    cold cache the molecules are featurised in chunks of :data:`CHUNK`, by worker processes when ``workers``
    asks for them; the result does not depend on ``workers``. No torch object is built per molecule: each
    chunk becomes a few NumPy arrays, kept in the storage types (:data:`STORAGE_DTYPES`): a cold pass
    holds about twice the result (the chunks, then their concatenation), 1 KB a molecule of ``drugs``.

    Args:
        canonical_smiles: ``M`` canonical SMILES strings.
        use_cache: read and write the cache.
        workers: processes for a cold featurisation: ``"auto"`` (see :func:`resolve_workers`), or a count
            (0 or 1 = in this process).
        progress: show a progress bar over molecules.

    Returns:
        :class:`MoleculeGraphs` of the ``M`` molecules, in input order.
    """
    canonical_smiles = list(canonical_smiles)
    path = cache_dir() / "molecules" / f"{_hash_smiles(canonical_smiles)}.pt"
    if use_cache and path.exists():
        try:
            # mapped, not read: a batch pages in the molecules it gathers
            return MoleculeGraphs(**torch.load(path, weights_only=True, mmap=True))
        except Exception:  # a corrupt or truncated cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    result = _featurize_all(canonical_smiles, resolve_workers(workers, len(canonical_smiles)), progress)
    if use_cache:
        from graphdel.io import atomic_torch_save

        atomic_torch_save(result.state(), path)
    return result
