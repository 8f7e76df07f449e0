"""The paired corpus: one row per (item, text) pair, before any featurisation.

A :class:`Corpus` is what every dataset source returns and what every later stage consumes. Pair ids and
item ids are distinct: one molecule (item) may have several texts (pairs). ``items`` maps each item id to
its raw input -- a canonical SMILES for molecules, an entity name for knowledge graphs, an image path for
images -- so the same machinery serves every modality.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from graphdel.errors import InvalidInputError, warn

SPLITS = ("train", "val", "test")
#: A val or test split with fewer pairs than this is warned about. With n pairs one pair moves a mean
#: reciprocal rank by up to 1/n: below 10 pairs that is more than 0.1 of its range (on 1 pair the MRR is
#: 1.0 or 1/k), so the score is noise and early stopping on it picks an epoch at random.
MIN_EVAL_PAIRS = 10


@dataclass
class Corpus:
    """Pairs of a non-text item and a text, with a fixed split.

    Attributes:
        source: the source string it was loaded from (``"drugs"``, ``"chebi20:PATH"``...), so that a run
            can reload it without being told.
        modality: ``"molecule"``, ``"kg"`` or ``"image"``.
        pair_ids: ``P`` unique pair ids.
        item_ids: ``P`` item ids (the molecule/entity/image of each pair).
        texts: ``P`` texts.
        splits: ``P`` split names, each in :data:`SPLITS`.
        items: item id -> raw input (canonical SMILES for molecules).
        skipped: rows skipped under ``skip_invalid``: dicts with ``row``, ``id`` and ``reason``.
        removed_fragments: item id -> fragments removed by salt stripping (molecules only).
        stripped: one dict per loaded row whose SMILES lost fragments (salts, solvents): ``row``, ``id``
            (the pair id), ``removed`` (the fragments' SMILES) and ``file`` when the source reads several.
        extra: modality-specific payload (e.g. the triples of a knowledge graph).
        sampled_from: for a sample (:meth:`sample_items`, ``--quick`` runs), the number of items of the
            corpus it was drawn from; ``None`` for a whole corpus.
    """

    source: str
    modality: str
    pair_ids: list[str]
    item_ids: list[str]
    texts: list[str]
    splits: list[str]
    items: dict[str, str]
    skipped: list[dict] = field(default_factory=list)
    removed_fragments: dict[str, list[str]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    stripped: list[dict] = field(default_factory=list)
    sampled_from: int | None = None

    def __post_init__(self) -> None:
        n = len(self.pair_ids)
        if not (len(self.item_ids) == len(self.texts) == len(self.splits) == n):
            raise InvalidInputError("pair_ids, item_ids, texts and splits must have the same length")
        dupes = [pid for pid, c in Counter(self.pair_ids).items() if c > 1]
        if dupes:
            raise InvalidInputError(f"duplicated pair ids: {dupes[:5]}{' ...' if len(dupes) > 5 else ''}")
        bad = [(i, s) for i, s in enumerate(self.splits) if s not in SPLITS]
        if bad:
            i, s = bad[0]
            raise InvalidInputError(f"pair {self.pair_ids[i]!r} has unknown split {s!r} (expected one of {SPLITS})")
        missing = [iid for iid in self.item_ids if iid not in self.items]
        if missing:
            raise InvalidInputError(f"pairs refer to unknown item ids: {sorted(set(missing))[:5]}")
        self._pair_index = {pid: i for i, pid in enumerate(self.pair_ids)}

    def __len__(self) -> int:
        return len(self.pair_ids)

    def describe(self) -> str:
        """What an id is looked up in, for messages: ``"drugs"``, or ``"drugs, a sample of 240 of its 6442
        items (--quick)"``, so that an id outside a sample is not called unknown to the dataset."""
        if self.sampled_from is None:
            return self.source
        return f"{self.source}, a sample of {len(set(self.item_ids))} of its {self.sampled_from} items (--quick)"

    def index_of(self, pair_id: str) -> int:
        """Row of ``pair_id``; ``KeyError`` if unknown."""
        return self._pair_index[pair_id]

    def has_pair(self, pair_id: str) -> bool:
        """Whether ``pair_id`` is a pair of this corpus."""
        return pair_id in self._pair_index

    def rows(self, split: str) -> list[int]:
        """Row indices of the pairs in ``split``."""
        return [i for i, s in enumerate(self.splits) if s == split]

    def copies(self) -> dict[int, list[int]]:
        """Exact copies: row -> every row (itself included, in row order) with the same item input and text.

        Only rows that have a copy are keys. Two pairs with the same item input (the canonical SMILES of a
        molecule) and the same text are one datum under two ids -- a duplicated CSV row, or one molecule
        under two ids with the same caption -- so a deletion of one must remove them all
        (:class:`~graphdel.data.requests.DeletionRequest` does).
        """
        groups: dict[tuple[str, str], list[int]] = {}
        for row, (iid, text) in enumerate(zip(self.item_ids, self.texts)):
            groups.setdefault((self.items[iid], text), []).append(row)
        return {row: rows for rows in groups.values() if len(rows) > 1 for row in rows}

    def check_splits(self, min_eval_pairs: int = MIN_EVAL_PAIRS) -> None:
        """Refuse a corpus that cannot be trained and scored; warn when val or test is too small to score.

        Training needs pairs in ``train``; early stopping needs ``val`` and the reported scores need ``test``.
        A split with fewer than ``min_eval_pairs`` pairs gives a one-line warning (see :data:`MIN_EVAL_PAIRS`).

        Raises:
            InvalidInputError: a split without any pair, naming it, the source and every split's count.
        """
        counts = {split: 0 for split in SPLITS}
        for split in self.splits:
            counts[split] += 1
        shown = ", ".join(f"{split} {n}" for split, n in counts.items())
        empty = [split for split in SPLITS if counts[split] == 0]
        if empty:
            raise InvalidInputError(
                f"{self.source}: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                f"(pairs per split: {shown}); training needs train pairs, and val and test pairs to stop early "
                "and to be scored: give rows of every split, or more molecules for the scaffold split")
        small = [split for split in ("val", "test") if counts[split] < min_eval_pairs]
        if small:
            sizes = " and ".join(f"{s} has {counts[s]} pair{'s' if counts[s] != 1 else ''}" for s in small)
            warn(f"{self.source}: {sizes}, fewer than {min_eval_pairs}: scores on so few pairs are noise "
                 "(and early stopping on val close to random)")

    def item_list(self) -> list[str]:
        """Item ids in first-appearance order (the order used for featurised tensors)."""
        return list(dict.fromkeys(self.item_ids))

    def content_hash(self) -> str:
        """SHA-256 over every pair (id, item, item input, text, split) in row order.

        Two corpora with the same hash give the same training data; a model refuses data whose hash differs
        from the one it was trained on.
        """
        h = hashlib.sha256(self.modality.encode())
        for pid, iid, text, split in zip(self.pair_ids, self.item_ids, self.texts, self.splits):
            h.update(json.dumps([pid, iid, self.items[iid], text, split], ensure_ascii=False).encode())
        for key in sorted(self.extra):  # e.g. KG triples, which shape the graph the model sees
            h.update(json.dumps([key, self.extra[key]], sort_keys=True, default=str).encode())
        return h.hexdigest()

    def stats(self) -> dict:
        """Pair, item and text counts per split, plus skipped rows (``graphdel data stats``)."""
        out: dict = {"source": self.source, "modality": self.modality, "splits": {}}
        for split in SPLITS:
            rows = self.rows(split)
            out["splits"][split] = {
                "pairs": len(rows),
                "items": len({self.item_ids[i] for i in rows}),
                "texts": len({self.texts[i] for i in rows}),
            }
        out["total"] = {"pairs": len(self), "items": len(set(self.item_ids)), "texts": len(set(self.texts))}
        out["skipped_invalid"] = len(self.skipped)
        out["skipped"] = self.skipped[:20]
        out["salts_stripped"] = len(self.removed_fragments)
        out["stripped_rows"] = len(self.stripped)
        copies = self.copies()
        out["exact_copies"] = len(copies) - len({tuple(rows) for rows in copies.values()})  # rows beyond the first
        return out

    def sample_items(self, max_items: int, seed: int = 0) -> "Corpus":
        """A smaller corpus with at most ``max_items`` items, drawn per split in proportion (seeded).

        Used by ``--quick`` runs; every pair of a kept item is kept, and ``source`` records the sampling so
        that a run can reload exactly the same pairs.
        """
        import random

        items = self.item_list()
        if max_items >= len(items):
            return self
        split_of = {iid: s for iid, s in zip(self.item_ids, self.splits)}
        rng = random.Random(seed)
        keep: set[str] = set()
        for split in SPLITS:
            members = sorted(i for i in items if split_of[i] == split)
            k = round(max_items * len(members) / len(items))
            keep.update(rng.sample(members, min(k, len(members))))
        rows = [r for r, iid in enumerate(self.item_ids) if iid in keep]
        kept_pairs = {self.pair_ids[r] for r in rows}
        return Corpus(
            source=self.source, modality=self.modality,
            pair_ids=[self.pair_ids[r] for r in rows], item_ids=[self.item_ids[r] for r in rows],
            texts=[self.texts[r] for r in rows], splits=[self.splits[r] for r in rows],
            items={i: self.items[i] for i in keep}, skipped=list(self.skipped),
            removed_fragments={i: f for i, f in self.removed_fragments.items() if i in keep},
            extra=dict(self.extra), stripped=[s for s in self.stripped if s["id"] in kept_pairs],
            sampled_from=len(items))
