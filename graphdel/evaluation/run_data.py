"""A run's data: the corpus it was trained on, featurised and split into the row sets every model of the run
is trained and evaluated on.

* :class:`DataConfig`, :func:`load_corpus`: which pairs a run trains on, loaded (and subsampled);
* :func:`prepare` -> :class:`Prepared`: featurised pairs with the calibration hold-out, the excluded
  pairs, the trained rows, Dr, and the run's distractor set;
* :func:`load_run_data`: the same for a saved run, refusing data whose content hash changed;
* :func:`evaluation_sets`, :func:`calibration_mirrors`, :func:`load_request_any`: the pair sets an unlearned
  model is evaluated on, the retained mirrors a closed KG request's calibration pairs are scored without, and
  its request read back.

The verbs of :mod:`graphdel.api` prepare data with these, and so do the evaluation suite and certificate
verification; here, below both, the evaluation needs no import of the API (which imports the evaluation).
The names are imported into :mod:`graphdel.api` too, where they have always been found.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from graphdel import distributed
from graphdel.config import ConfigMixin
from graphdel.data.corpus import Corpus
from graphdel.data.kg_facts import learn_mirror_relations, mirror_rows
from graphdel.data.kg_view import triple_of_row
from graphdel.data.pairs import PairData
from graphdel.data.sources import load_dataset
from graphdel.errors import InvalidInputError, RunError
from graphdel.models.joint import ModelConfig
from graphdel.runs import Run

if TYPE_CHECKING:  # an annotation only: the module imports requests inside the function
    from graphdel.data.requests import DeletionRequest


@dataclass
class DataConfig(ConfigMixin):
    """Which pairs a run trains on (saved in ``config.json`` so later commands need no ``--data``).

    Attributes:
        source: dataset spec (``drugs``, ``chebi20:PATH``...).
        max_items: keep at most this many items (``--quick``), sampled per split with ``sample_seed``.
        sample_seed: seed of that sampling.
        skip_invalid: skip invalid rows instead of failing.
        calibration_fraction: share of training items held back, never trained on, as the stand-in for
            "never seen but drawn like a deletion" (docs/design.md).
        calibration_seed: seed of that hold-out.
    """

    source: str = "drugs"
    max_items: int | None = None
    sample_seed: int = 0
    skip_invalid: bool = False
    calibration_fraction: float = 0.03
    calibration_seed: int = 0

    config_name = "data config"  # how messages name it; from_dict/to_dict/with_overrides: graphdel.config


def load_corpus(data: DataConfig) -> Corpus:
    """Load and (for quick runs) subsample the corpus a :class:`DataConfig` names."""
    from graphdel.data.pairs import training_view

    corpus = load_dataset(data.source, skip_invalid=data.skip_invalid)
    if data.max_items:
        corpus = corpus.sample_items(data.max_items, data.sample_seed)
    return training_view(corpus)


def calibration_rows(corpus: Corpus, fraction: float, seed: int) -> list[int]:
    """Rows of the calibration hold-out: every training pair of ``fraction`` of the training items.

    Drawn the way deletions are drawn (random training molecules, seeded), so that a model's scores on it
    show what "trained on everything but this, drawn like Df" looks like.
    """
    if fraction <= 0:
        return []
    train_items = sorted({corpus.item_ids[r] for r in corpus.rows("train")})
    k = max(1, round(fraction * len(train_items)))
    chosen = set(random.Random(seed).sample(train_items, min(k, len(train_items))))
    return [r for r in corpus.rows("train") if corpus.item_ids[r] in chosen]


#: Pairs in a run's distractor set (:meth:`Prepared.distractor_rows`): enough for pools of 64 drawn
#: afresh for every pair, few enough that embedding them at each unlearning evaluation stays cheap.
DISTRACTOR_LIMIT = 512


@dataclass
class Prepared:
    """A corpus featurised for a run, with its row sets."""

    corpus: Corpus
    data: PairData
    calibration: list[int]
    excluded: list[int]

    def trained_rows(self) -> list[int]:
        """The training rows the model trains on: the ``train`` split minus calibration and excluded rows."""
        drop = set(self.calibration) | set(self.excluded)
        return [r for r in self.corpus.rows("train") if r not in drop]

    def retained_rows(self, df_rows: Sequence[int]) -> list[int]:
        """Dr: the trained rows minus ``df_rows``."""
        df = set(df_rows)
        return [r for r in self.trained_rows() if r not in df]

    def for_run(self, run: Run) -> "Prepared":
        """This preparation with ``run``'s excluded pairs (its training exclusions and every request of its
        history): the same featurised data, reused along a chain of sequential deletions without loading
        it again. The calibration hold-out is the original's, which every run of the chain shares."""
        corpus = self.corpus
        missing = [p for p in run.excluded_ids if not corpus.has_pair(p)]
        if missing:
            raise InvalidInputError(f"{run.path} excludes pairs this data lacks: {missing[:10]}")
        return dataclasses.replace(self, excluded=sorted({corpus.index_of(p) for p in run.excluded_ids}))

    def check_matches(self, run: Run) -> None:
        """Refuse a preparation made for another run of the chain: its Dr would hold pairs ``run`` no longer
        trains on (an earlier request's) or lack ones it does.

        Raises:
            InvalidInputError: naming the run and how many excluded pairs differ.
        """
        expected = {self.corpus.index_of(p) for p in run.excluded_ids if self.corpus.has_pair(p)}
        differ = expected ^ set(self.excluded)
        if differ:
            raise InvalidInputError(f"the prepared data excludes other pairs than {run.path} ({len(differ)} "
                                    "differ, e.g. pairs an earlier request deleted); use "
                                    "prepared.for_run(run) or load_run_data(run)")

    def distractor_rows(self) -> list[int]:
        """The run's distractor set: at most :data:`DISTRACTOR_LIMIT` pairs drawn (seed 0) from the
        calibration and validation pairs, which no model of the run trains on. Every pool-k score ranks a
        pair against distractors from this set (:mod:`graphdel.evaluation.retrieval`); test pairs are
        left out so that nothing chosen by the score has seen test."""
        pool = sorted(set(self.calibration) | set(self.corpus.rows("val")))
        return sorted(random.Random(0).sample(pool, min(DISTRACTOR_LIMIT, len(pool))))

    def distractors(self):
        """The distractor set as a pair set (see :meth:`distractor_rows`)."""
        return self.data.subset(self.distractor_rows(), "distractors")

    def sets(self) -> dict:
        """Named pair sets: train (trained rows), calibration, val, test."""
        return {"train": self.data.subset(self.trained_rows(), "train"),
                "calibration": self.data.subset(self.calibration, "calibration"),
                "val": self.data.subset(self.corpus.rows("val"), "val"),
                "test": self.data.subset(self.corpus.rows("test"), "test")}


def prepare(data: DataConfig, model_config: ModelConfig, *, exclude: Sequence[str] = (),
            corpus: Corpus | None = None, progress: bool = True) -> Prepared:
    """Load, featurise and split the data of a run; ``exclude`` names pair ids never to train on."""
    corpus = corpus if corpus is not None else load_corpus(data)
    unknown = [p for p in exclude if not corpus.has_pair(p)]
    if unknown:
        raise InvalidInputError(f"--exclude names {len(unknown)} pair ids not in the data "
                                f"({corpus.describe()}): {unknown[:10]}")
    with distributed.main_process_first():  # torchrun: rank 0 fills the feature caches, the others read them
        pair_data = PairData(corpus, model_config.text, progress=progress, model_config=model_config)
    calibration = calibration_rows(corpus, data.calibration_fraction, data.calibration_seed)
    return Prepared(corpus, pair_data, calibration, sorted({corpus.index_of(p) for p in exclude}))


def source_path(spec: str) -> Path | None:
    """The file or folder a dataset spec names (``csv:PATH`` -> PATH, ``depictions:csv:PATH`` -> PATH), or
    None for an embedded source (``drugs``, ``wordnet``)."""
    from graphdel.data.sources import available_sources

    name, sep, arg = spec.strip().partition(":")
    if not sep or not arg.strip():
        return None
    if f"{name}:PATH" in available_sources():
        return Path(arg.strip()).expanduser()
    return source_path(arg) if ":" in arg else None  # a source wrapping another spec (depictions:SPEC)


def data_config_of(run: Run) -> DataConfig:
    """The :class:`DataConfig` a run was trained with (the fields of its recorded ``data`` block)."""
    return DataConfig(**{k: v for k, v in run.config["data"].items() if k in DataConfig.__dataclass_fields__})


def load_run_data(run: Run, *, force: bool = False, progress: bool = True, source: str | None = None) -> Prepared:
    """Reload and featurise the data a run was trained on, refusing data whose content hash changed.

    ``source`` re-points the run at its data after it moved (``graphdel forget --data SPEC``); the content
    hash is checked all the same.

    Raises:
        RunError: the recorded data is not where the run says (it names ``--data``), or its content hash
            differs from the run's and ``force`` is false.
    """
    recorded = run.config["data"]["source"]
    if source is None:
        where = source_path(recorded)
        if where is not None and not where.exists():
            raise RunError(f"the data {recorded!r} of {run.path} is not there any more (moved or deleted?); "
                           "pass --data SPEC (source=...) to point the run at its new place")
    data = data_config_of(run)
    if source is not None:
        data = DataConfig(**{**asdict(data), "source": source})
    corpus = load_corpus(data)
    if corpus.content_hash() != run.data_hash and not force:
        raise RunError(f"the data {data.source!r} has changed since {run.path} was trained (content hash "
                       f"{corpus.content_hash()[:12]} != {run.data_hash[:12]}); pass force to use it anyway")
    model_config = ModelConfig.from_dict(run.config["model"])
    return prepare(data, model_config, exclude=run.excluded_ids, corpus=corpus, progress=progress)


def retain_sample_rows(dr_rows: Sequence[int], n: int, seed: int = 0) -> list[int]:
    """A seeded sample of ``n`` Dr rows (the ``retain`` split of evaluation, the size of Df)."""
    rows = sorted(dr_rows)
    return sorted(random.Random(seed).sample(rows, min(n, len(rows))))


def evaluation_sets(prepared: Prepared, df_rows: Sequence[int], seed: int = 0) -> dict:
    """The named pair sets every unlearned model is evaluated on: forget (Df), retain (a Dr sample of
    |Df|), calibration, val and test."""
    df = sorted(set(df_rows))
    sets = prepared.sets()
    return {"forget": prepared.data.subset(df, "forget"),
            "retain": prepared.data.subset(retain_sample_rows(prepared.retained_rows(df), len(df), seed), "retain"),
            "calibration": sets["calibration"], "val": sets["val"], "test": sets["test"]}


def calibration_mirrors(prepared: Prepared, dr_rows: Sequence[int]):
    """The retained pairs that state a calibration triple backwards
    (:func:`graphdel.data.kg_facts.mirror_rows`) as a pair set, or ``None`` when there are none or the corpus
    is not a KG.

    Why: a request closed over its mirrors leaves no retained triple stating a deleted fact, so Retrain
    scores the deleted facts without their mirrors' help; the calibration hold-out (never trained, its
    mirrors still in the graph) would then stand for "never seen" with help Df no longer has, and a method
    stopping at it would stop early (on WordNet, at 0.35 against Retrain's 0.27)."""
    if prepared.corpus.modality != "kg" or not prepared.calibration:
        return None

    corpus = prepared.corpus
    # the mirror relations of the graph the original saw, hold-out included (as the request's audit
    # learns them on every trained triple): Dr alone may lack the support a relation had
    seen = (triple_of_row(corpus, r) for r in [*prepared.trained_rows(), *prepared.calibration])
    relations = learn_mirror_relations(t for t in seen if t is not None)
    rows = mirror_rows(corpus, prepared.calibration, dr_rows, relations)
    return prepared.data.subset(rows, "calibration_mirrors") if rows else None


def load_request_any(prepared: Prepared, path: str | Path) -> "DeletionRequest":
    """A request file or id file read against the corpus, without the "still forgettable" check (a
    forgotten model's request names pairs it no longer trains on)."""
    from graphdel.data.requests import DeletionRequest

    return DeletionRequest.from_file(prepared.corpus, path, by="pair",
                                     allowed_rows=prepared.corpus.rows("train"), force=True)
