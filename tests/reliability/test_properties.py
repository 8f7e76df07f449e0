"""Property-based tests: random and malformed input either loads (and then satisfies the loader's
invariants) or raises a :class:`~graphdel.errors.GraphdelError` subclass -- never anything else.

Each test labels its outcome with ``hypothesis.event`` (``pytest --hypothesis-show-statistics`` shows
how many examples loaded and which errors the others raised). ``max_examples`` is kept small so the whole
file runs in seconds; a failure is replayed from Hypothesis' example database.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from graphdel.data.corpus import Corpus
from graphdel.data.requests import DeletionRequest
from graphdel.data.sources import MAX_TEXT_CHARS, load_dataset, molecule_corpus
from graphdel.errors import GraphdelError
from graphdel.training.loop import TrainConfig
from graphdel.unlearning import get_method, parse_overrides

import graphdel.data.kg  # noqa: F401  (registers kg:PATH)
from tests.conftest import TINY_MOLECULES

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``None`` after a :class:`GraphdelError` (labelled as an event). Any other
    exception propagates and fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "duplicate ids collapsed": a warning, not an outcome
            result = fn(*args, **kwargs)
    except GraphdelError as e:
        event(f"refused: {type(e).__name__}")
        return None
    event("accepted")
    return result


def check_corpus(corpus: Corpus) -> None:
    """Invariants every loaded corpus satisfies."""
    assert len(corpus) > 0
    assert len(set(corpus.pair_ids)) == len(corpus.pair_ids)
    assert all(t and len(t) <= MAX_TEXT_CHARS and "\n" not in t and "\t" not in t for t in corpus.texts)
    assert set(corpus.splits) <= {"train", "val", "test"}
    assert all(i in corpus.items for i in corpus.item_ids)
    assert len(corpus.content_hash()) == 64


def write_and_load(files: dict[str, bytes], spec: str, *, folder: bool, skip_invalid: bool):
    """Write ``files`` into a fresh temporary folder and load ``spec:<folder or its one file>``."""
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
        target = Path(d) if folder else Path(d) / next(iter(files))
        corpus = outcome(load_dataset, f"{spec}:{target}", skip_invalid=skip_invalid)
        if corpus is not None:
            check_corpus(corpus)


# ------------------------------------------------------------------------------------------------ loaders

GOOD_SMILES = st.sampled_from(["CCO", "c1ccccc1", "CC(=O)O", "CCN(CC)CC", "c1ccncc1", "OC1CCCCC1",
                               "CC(=O)[O-].[Na+]", " CCN "])
BAD_SMILES = st.sampled_from(["C1CC(", "", "[H][H]", "C" * 1001, "xyz", "C(C)(C)(C)(C)C", "c1cccc1"])
GOOD_CAPTION = st.sampled_from(["An alcohol.", "An arene, aromatic.", 'A "quoted" acid.', "Caf\u00e9 \u2013 ok",
                                "  padded  ", "<b>bold</b> & co"])
GOOD_SPLIT = st.sampled_from(["train", "train", "val", "test", "TRAIN", "dev"])
GOOD_IDENT = st.sampled_from(["m1", "m2", "m3", "p1", "p2", "a#0", "<b>", "../x"])
#: Anything that may land in a field: bad SMILES, bad splits, quotes, separators, control characters.
JUNK_FIELD = st.one_of(BAD_SMILES, st.sampled_from(["other", "", "tr ain", '"', '"a,b"', "a\tb", "\r", "#", "\x00"]),
                       st.text(max_size=12))
GOOD_COLUMN = {"id": GOOD_IDENT, "pair_id": GOOD_IDENT, "smiles": GOOD_SMILES, "text": GOOD_CAPTION,
               "split": GOOD_SPLIT}


def corrupt(draw, lines: list[str], bad_line) -> list[str]:
    """``lines`` with 0 (half of the time), 1 or 2 lines drawn from ``bad_line`` replacing or inserted."""
    lines = list(lines)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        at = draw(st.integers(0, len(lines)))
        if at < len(lines) and draw(st.booleans()):
            lines[at] = draw(bad_line)
        else:
            lines.insert(at, draw(bad_line))
    return lines


@st.composite
def csv_files(draw) -> tuple[list[str], list[list[str]]]:
    """A header (usually with the required columns), well-formed rows, then 0-2 corrupted rows or fields."""
    header = draw(st.permutations(["id", "pair_id", "smiles", "text", "split"]))
    if draw(st.sampled_from([False, False, False, True])):  # any prefix: often lacks a required column
        header = header[:draw(st.integers(1, 5))]
    else:
        header = [c for c in header if c in ("smiles", "text") or draw(st.booleans())]
    rows = draw(st.lists(st.tuples(*[GOOD_COLUMN[c] for c in header]).map(list), max_size=5))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # a junk field in a good row, or a junk row
        if rows and draw(st.booleans()):
            row = draw(st.sampled_from(rows))
            row[draw(st.integers(0, len(row) - 1))] = draw(JUNK_FIELD)
        else:
            rows.insert(draw(st.integers(0, len(rows))), draw(st.lists(JUNK_FIELD, min_size=1, max_size=6)))
    return header, rows


@SETTINGS
@given(table=csv_files(), sep=st.sampled_from([",", "\t"]), newline=st.sampled_from(["\n", "\r\n"]),
       quoted=st.booleans(), skip=st.booleans())
def test_csv_loader(table, sep, newline, quoted, skip):
    header, rows = table
    if quoted:  # written by the csv module (fields with separators or quotes are quoted)
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=sep, lineterminator=newline).writerows([header, *rows])
        body = buffer.getvalue()
    else:  # joined by hand: a separator inside a field shifts the columns, a quote may stay open
        body = newline.join([sep.join(header)] + [sep.join(r) for r in rows]) + newline
    write_and_load({"x.tsv" if sep == "\t" else "x.csv": body.encode("utf-8")}, "csv", folder=False,
                   skip_invalid=skip)


CHEBI_LINE = st.tuples(st.sampled_from(["1", "2", "3", "2244"]), GOOD_SMILES, GOOD_CAPTION).map("\t".join)
BAD_CHEBI_LINE = st.one_of(st.tuples(st.sampled_from(["", " ", "1"]), JUNK_FIELD, JUNK_FIELD).map("\t".join),
                           st.text(max_size=20))


@st.composite
def chebi_folders(draw) -> dict[str, str]:
    """The three ChEBI-20 files, each a header and well-formed lines, with 0-2 bad lines injected."""
    header = draw(st.sampled_from(["CID\tSMILES\tdescription"] * 4 + ["CID\tSMILES", "cid\tsmiles\tDESCRIPTION", ""]))
    files = {}
    for name in ("train.txt", "validation.txt", "test.txt"):
        files[name] = "\n".join([header] + corrupt(draw, draw(st.lists(CHEBI_LINE, max_size=4)), BAD_CHEBI_LINE))
    return files


@SETTINGS
@given(files=chebi_folders(), skip=st.booleans())
def test_chebi20_folder_loader(files, skip):
    write_and_load({name: text.encode("utf-8") for name, text in files.items()}, "chebi20", folder=True,
                   skip_invalid=skip)


ENTITY = st.sampled_from(["a", "b", "c", "d", "e_1", "<i>", "../e"])
TRIPLE = st.tuples(ENTITY, st.sampled_from(["r", "s", "_hypernym"]), ENTITY).map("\t".join)
BAD_TRIPLE = st.one_of(st.lists(st.sampled_from(["a", "r", " ", ""]), max_size=4).map("\t".join),
                       st.text(max_size=15))
TEXT_LINE = st.tuples(ENTITY, GOOD_CAPTION).map("\t".join)
BAD_TEXT_LINE = st.one_of(st.tuples(ENTITY, st.sampled_from(["", "  ", "x" * (MAX_TEXT_CHARS + 1), "other"]))
                          .map("\t".join), st.text(max_size=15))


@st.composite
def kg_folders(draw) -> dict[str, bytes]:
    """train/valid/test triples (and maybe entity2text) with 0-2 bad lines each; rarely a file of junk bytes."""
    files = {name: "\n".join(corrupt(draw, draw(st.lists(TRIPLE, min_size=1, max_size=5)), BAD_TRIPLE)).encode()
             for name in ("train.txt", "valid.txt", "test.txt")}
    if draw(st.booleans()):
        files["entity2text.txt"] = "\n".join(corrupt(draw, draw(st.lists(TEXT_LINE, max_size=5)),
                                                     BAD_TEXT_LINE)).encode()
    if draw(st.sampled_from([False, False, False, True])):
        files[draw(st.sampled_from(sorted(files)))] = draw(st.binary(max_size=40))
    return files


@SETTINGS
@given(files=kg_folders(), skip=st.booleans())
def test_kg_folder_loader(files, skip):
    write_and_load(files, "kg", folder=True, skip_invalid=skip)


@SETTINGS
@given(data=st.binary(max_size=200), name=st.sampled_from(["x.csv", "x.tsv", "x.csv.gz", "x.txt"]),
       spec=st.sampled_from(["csv", "chebi20"]))
def test_loaders_on_arbitrary_bytes(data, name, spec):
    write_and_load({name: data}, spec, folder=False, skip_invalid=True)


# ------------------------------------------------------------------------------------------ the requests

@lru_cache(maxsize=1)
def corpus() -> Corpus:
    """The 12-molecule corpus, built in memory (8 training pairs)."""
    rows = [(i + 2, None, name.replace(" ", "_"), smiles, text, split)
            for i, (name, smiles, text, split) in enumerate(TINY_MOLECULES)]
    return molecule_corpus(rows, source="tiny")


#: Rows a model was trained on: the training rows minus one held out (as a run holds out calibration).
ALLOWED = tuple(corpus().rows("train")[1:])
IDS = sorted(set(corpus().pair_ids) | set(corpus().item_ids))
TRAINED = sorted({corpus().pair_ids[r] for r in ALLOWED} | {corpus().item_ids[r] for r in ALLOWED})
ID_LINE = st.one_of(*[st.sampled_from(TRAINED)] * 6, st.sampled_from(TRAINED).map(lambda s: f"  {s}\t"),
                    st.sampled_from(IDS),
                    st.sampled_from(["", "   ", "# a comment", "#", "nope#0", "aspirin#", "aspirin#7", "\r",
                                     "{", "ethanol#0 # trailing"]),
                    st.text(max_size=12))


def check_request(req: DeletionRequest, force: bool) -> None:
    """Invariants of an accepted request: only trained pairs, never all of them unless forced, hashes
    that verify, and a JSON form that reads back to the same pairs."""
    allowed = {corpus().pair_ids[r] for r in ALLOWED}
    assert req.pair_ids and set(req.pair_ids) <= allowed
    assert len(set(req.pair_ids)) == len(req.pair_ids)
    assert force or len(req.pair_ids) < len(allowed)
    assert req.verify_hashes(corpus()) == []


@st.composite
def id_files(draw) -> tuple[str, list[str]]:
    """A granularity and id lines, mostly ids that granularity accepts, some of anything."""
    by = draw(st.sampled_from(["pair", "pair", "molecule", "scaffold", "entity"]))
    pairs = sorted({corpus().pair_ids[r] for r in ALLOWED})
    own = st.sampled_from(pairs if by == "pair" else TRAINED)
    return by, draw(st.lists(st.one_of(*[own] * 6, ID_LINE), max_size=5))


@SETTINGS
@given(request=id_files(), newline=st.sampled_from(["\n", "\r\n"]), force=st.booleans())
def test_request_id_file_parser(request, newline, force):
    by, lines = request
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ids.txt"
        path.write_bytes(newline.join(lines).encode("utf-8"))
        req = outcome(DeletionRequest.from_file, corpus(), path, by=by, allowed_rows=ALLOWED, force=force)
    if req is not None:
        check_request(req, force)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
REQUEST_KEYS = ["format", "version", "by", "seed", "description", "count", "source", "source_hash", "selected",
                "hash_recipe", "pairs", "pairs.0", "pairs.0.pair_id", "pairs.0.sha256", "pairs.0.item_id"]


def _valid_request_json() -> dict:
    allowed = [corpus().pair_ids[r] for r in ALLOWED]
    return DeletionRequest.from_ids(corpus(), allowed[:2], by="pair", allowed_rows=ALLOWED).to_json(corpus())


def _mutate(doc: dict, key: str, value) -> dict:
    """Set (or delete, when ``value`` is ``...``) the dotted ``key`` of ``doc``; ``pairs.0`` indexes a list."""
    *path, last = key.split(".")
    target = doc
    for part in path:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        if value is ...:
            target.pop(int(last))
        else:
            target[int(last)] = value
    elif value is ...:
        target.pop(last, None)
    else:
        target[last] = value
    return doc


@SETTINGS
@given(mutations=st.lists(st.tuples(st.sampled_from(REQUEST_KEYS), st.one_of(st.just(...), JSON,
                                                                               st.sampled_from(IDS))),
                          max_size=3),
       whole=st.one_of(st.none(), JSON), force=st.booleans())
def test_request_json_parser(mutations, whole, force):
    doc = _valid_request_json()
    if whole is not None and not isinstance(whole, dict):
        text = "{" + json.dumps(whole)  # starts like JSON but is not a request
    else:
        for key, value in mutations:
            try:
                doc = _mutate(doc, key, value)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                pass  # an earlier mutation removed the path: nothing to mutate
        text = json.dumps(doc if whole is None else {**whole, **doc})
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "request.json"
        path.write_text(text, encoding="utf-8")
        req = outcome(DeletionRequest.from_file, corpus(), path, allowed_rows=ALLOWED, force=force)
    if req is not None:
        check_request(req, force)


@SETTINGS
@given(data=st.binary(max_size=120), force=st.booleans())
def test_request_file_of_arbitrary_bytes(data, force):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ids.txt"
        path.write_bytes(data)
        req = outcome(DeletionRequest.from_file, corpus(), path, allowed_rows=ALLOWED, force=force)
    if req is not None:
        check_request(req, force)


# -------------------------------------------------------------------------------------------------- configs

VALUE = st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "none", "null", "true", "off", "0x10",
                                   "1_000", "", " 3 ", "cosine", "adam", "calibrated", "3.5", "1e-4"]),
                  st.text(max_size=8))


@SETTINGS
@given(method=st.sampled_from(["multidelete", "neggrad", "dtd", "scrub", "salun", "ft", "randompair"]),
       pairs=st.lists(st.tuples(st.one_of(st.sampled_from(["lr", "epochs", "alpha", "terms.md", "distance",
                                                            "loss_bound", "sigma", "batch_size", "selection",
                                                            "bogus", "terms.bogus", ""]), st.text(max_size=6)),
                                VALUE), max_size=4),
       as_dict=st.booleans())
def test_override_parser(method, pairs, as_dict):
    cls = get_method(method).Config
    overrides = dict(pairs) if as_dict else [f"{k}={v}" for k, v in pairs]
    cfg = outcome(parse_overrides, cls, overrides)
    if cfg is not None:
        assert isinstance(cfg, cls)
        assert not any(isinstance(v, float) and math.isnan(v) for v in vars(cfg).values())


TYPED_RECIPE = st.fixed_dictionaries({}, optional={
    "epochs": st.integers(-1, 5), "batch_size": st.integers(-1, 64), "seed": st.integers(), "patience": st.integers(-1, 5),
    "eval_pool": st.integers(-1, 64), "lr": st.floats(), "weight_decay": st.floats(-1, 1), "grad_clip": st.floats(),
    "device": st.sampled_from(["cpu", "auto", "cuda", ""])})


@SETTINGS
@given(d=st.one_of(TYPED_RECIPE, st.dictionaries(st.one_of(st.sampled_from(list(TrainConfig.__dataclass_fields__)),
                                                           st.text(max_size=6)), JSON, max_size=5)))
def test_training_config_from_dict(d):
    cfg = outcome(TrainConfig.from_dict, d)
    if cfg is not None:
        assert cfg.epochs >= 1 and cfg.batch_size >= 1 and 0 < cfg.lr < math.inf
        assert cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")
