"""Image-file corpora: the ``karpathy`` (Flickr30k / COCO in the Karpathy-split layout) and ``imagefolder``
(images plus a captions CSV) readers, and the checks that turn their caption rows into a
``modality="image"`` corpus (the rules are in :mod:`graphdel.data.images`, which registers both sources and
from which every public name here is also imported).
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from graphdel.data.corpus import Corpus
from graphdel.data.image_files import check_image_file, file_item_input, file_sha256
from graphdel.data.reading import MAX_FIELD_BYTES, MAX_TEXT_CHARS, clean_text, csv_table, read_text_file
from graphdel.errors import InvalidInputError

#: Karpathy split names -> corpus splits (``restval`` is training data in the Karpathy split).
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
#: Caption CSV of an ``imagefolder`` source, and its columns (names case-insensitive).
CAPTIONS_FILE = "captions.csv"
IMAGEFOLDER_REQUIRED = ("image",)
IMAGEFOLDER_TEXT_COLUMNS = ("caption", "text")
IMAGEFOLDER_OPTIONAL = ("id", "pair_id", "split")
#: Shares of images in val and test when an ``imagefolder`` CSV has no split column (seeded, by image).
DEFAULT_SPLIT_SHARES = (0.1, 0.1)
_SPLIT_ALIASES = {"train": "train", "training": "train", "restval": "train", "val": "val", "valid": "val",
                  "validation": "val", "dev": "val", "test": "test", "testing": "test"}


@dataclass
class _Row:
    """One caption row before it becomes a pair (``file`` is named in errors and skips)."""

    row: int
    pair_id: str | None
    item_id: str
    relpath: str
    text: str
    split: str | None
    file: str
    unit: str = "row"                  # how messages name the row: a CSV "row", a Karpathy "image"
    looked_for: tuple[str, ...] = ()   # other places the image was looked for (named when it is missing)


def _image_corpus(rows: Sequence[_Row], *, root: Path, source: str, skip_invalid: bool, skipped: list[dict],
                  label: str) -> Corpus:
    """Check the images and captions of ``rows`` and assemble a ``modality="image"`` corpus.

    Pair ids default to ``<image id>#<k>`` (``k`` counting the image's captions from 0 in file order). Without
    any split, images are split at random by image (seed 0, :data:`DEFAULT_SPLIT_SHARES` to val and test).
    """
    built = _ImageRows(root, skip_invalid, skipped)
    for r in rows:
        built.add(r)
    return built.corpus(source, label)


class _ImageRows:
    """What :func:`_image_corpus` gathers from the caption rows: the accepted pairs, each image's content
    reference (checked once, at its first row) and the images found unreadable, and the rows of every pair
    id."""

    def __init__(self, root: Path, skip_invalid: bool, skipped: list[dict]) -> None:
        self.root, self.skip_invalid, self.skipped = root, skip_invalid, skipped
        self.pair_ids: list[str] = []
        self.item_ids: list[str] = []
        self.texts: list[str] = []
        self.splits: list[str | None] = []
        self.items: dict[str, str] = {}
        self.first_at: dict[str, tuple[int, str]] = {}
        self.bad_image: dict[str, str] = {}
        self.per_item: Counter = Counter()
        self.pair_at: dict[str, list[str]] = {}

    def add(self, r: _Row) -> None:
        """Check one caption row and its image, then keep it, or skip it (``skip_invalid``) or raise."""
        k = self.per_item[r.item_id]
        self.per_item[r.item_id] += 1
        pair_id = r.pair_id or f"{r.item_id}#{k}"
        refusal = self._image_refusal(r)
        if refusal is None:
            text = clean_text(r.text) if isinstance(r.text, str) else ""
            split, refusal = _caption_check(r, text)
        if refusal is not None:
            self._fail(r, pair_id, refusal)
            return
        self.pair_ids.append(pair_id)
        self.pair_at.setdefault(pair_id, []).append(f"{r.file} row {r.row}")
        self.item_ids.append(r.item_id)
        self.texts.append(text)
        self.splits.append(split)

    def _image_refusal(self, r: _Row) -> str | None:
        """Why the row's image cannot be used (unreadable, or its id names another file earlier), else
        ``None``; an image seen for the first time is checked and recorded in ``items``."""
        if r.item_id in self.bad_image:
            return self.bad_image[r.item_id]
        if r.item_id in self.items and self.first_at[r.item_id][1] != r.relpath:
            return (f"image id {r.item_id!r} is {r.relpath!r} here but {self.first_at[r.item_id][1]!r} at "
                    f"row {self.first_at[r.item_id][0]}")
        if r.item_id not in self.items:
            root = self.root
            path = root / r.relpath
            try:
                if Path(r.relpath).is_absolute() or ".." in Path(r.relpath).parts:
                    raise InvalidInputError(f"image path {r.relpath!r} must be relative to {root} and stay inside it")
                if not path.is_file() and r.looked_for:
                    raise InvalidInputError(f"image file not found under {root} (looked for "
                                            f"{', '.join(r.looked_for)})")
                check_image_file(path)
                digest = file_sha256(path)
            except InvalidInputError as e:
                self.bad_image[r.item_id] = f"caption row without a readable image: {e}"
                return self.bad_image[r.item_id]
            self.items[r.item_id] = file_item_input(r.relpath, digest)
            self.first_at[r.item_id] = (r.row, r.relpath)
        return None

    def _fail(self, r: _Row, ident: str, reason: str) -> None:
        """Skip the row, recorded in ``skipped`` (``skip_invalid``), or raise naming the file, row and id."""
        if self.skip_invalid:
            self.skipped.append({"row": r.row, "id": ident, "reason": reason, "file": r.file})
            return
        raise InvalidInputError(f"{r.file}, {r.unit} {r.row}, id {ident!r}: {reason}")

    def corpus(self, source: str, label: str) -> Corpus:
        """The corpus of the rows kept, checked as a whole (no duplicated pair id, at least one row, splits
        given for every row or for none; none: a random split by image), holding the images it uses."""
        pair_ids, item_ids = self.pair_ids, self.item_ids
        dupes = [p for p, at in self.pair_at.items() if len(at) > 1]
        if dupes:
            detail = "; ".join(f"{p!r} at {', '.join(self.pair_at[p])}" for p in dupes[:10])
            raise InvalidInputError(f"{label}: duplicated pair ids ({len(dupes)}): {detail}")
        if not pair_ids:
            raise InvalidInputError(f"{label}: no valid caption rows ({len(self.skipped)} skipped)")
        splits = self.splits
        given = [s is not None for s in splits]
        if any(given) and not all(given):
            missing = [p for p, s in zip(pair_ids, splits) if s is None][:10]
            raise InvalidInputError(f"{label}: a split is given for some rows but not for pairs {missing}")
        if not any(given):
            by_item = random_image_split(list(dict.fromkeys(item_ids)), seed=0)
            splits = [by_item[i] for i in item_ids]
        used = set(item_ids)
        return Corpus(source=source, modality="image", pair_ids=pair_ids, item_ids=item_ids, texts=self.texts,
                      splits=splits, items={i: v for i, v in self.items.items() if i in used},  # type: ignore[arg-type]
                      skipped=self.skipped, extra={"images": "files"})


def _caption_check(r: _Row, text: str) -> tuple[str | None, str | None]:
    """``(split, None)`` for a usable caption, else ``(None, reason)``: an empty or over-long caption, or an
    unknown split."""
    if not text:
        return None, "empty caption"
    if len(text) > MAX_TEXT_CHARS:
        return None, f"caption of {len(text)} characters is longer than the limit of {MAX_TEXT_CHARS}"
    split = None
    if r.split is not None:
        split = _SPLIT_ALIASES.get(str(r.split).strip().lower())
        if split is None:
            return None, f"unknown split {r.split!r} (expected train, val or test)"
    return split, None


def random_image_split(image_ids: Sequence[str], seed: int = 0,
                       shares: tuple[float, float] = DEFAULT_SPLIT_SHARES) -> dict[str, str]:
    """A seeded split of images: sorted ids shuffled with ``random.Random(seed)``; the first
    ``round(shares[0] * n)`` go to val, the next ``round(shares[1] * n)`` to test, the rest to train."""
    ids = sorted(set(image_ids))
    random.Random(seed).shuffle(ids)
    n_val, n_test = round(shares[0] * len(ids)), round(shares[1] * len(ids))
    out = {i: "val" for i in ids[:n_val]}
    out.update({i: "test" for i in ids[n_val:n_val + n_test]})
    out.update({i: "train" for i in ids[n_val + n_test:]})
    return out


# ------------------------------------------------------------------------------------------------ karpathy

def find_karpathy_json(path: Path) -> Path:
    """The Karpathy JSON named by ``path``: the file itself, or the one ``dataset*.json`` in the folder."""
    if path.is_file():
        return path
    found = sorted(path.glob("dataset*.json"))
    if len(found) != 1:
        what = "no dataset*.json" if not found else f"{len(found)} files: {', '.join(p.name for p in found)}"
        raise InvalidInputError(f"Karpathy folder {path} must hold exactly one dataset*.json (e.g. "
                                f"dataset_flickr30k.json); found {what}")
    return found[0]


def _karpathy_relpath(root: Path, entry: dict) -> tuple[str, tuple[str, ...]]:
    """The image of a Karpathy entry, relative to ``root``: the first existing of ``[filepath/]filename``,
    ``images/[filepath/]filename``, ``filename`` and ``images/filename`` (the first candidate if none
    exists: it is then reported missing), and the candidates looked at."""
    filename, filepath = str(entry["filename"]), str(entry.get("filepath") or "")
    candidates = []
    for parts in ([filepath, filename], ["images", filepath, filename], [filename], ["images", filename]):
        rel = "/".join(p for p in parts if p)
        if rel not in candidates:
            candidates.append(rel)
    return next((c for c in candidates if (root / c).is_file()), candidates[0]), tuple(candidates)


def load_karpathy(path: str | Path, *, skip_invalid: bool = False, source: str | None = None) -> Corpus:
    """Load a Karpathy-split JSON (``{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}
    ...]}, ...]}``, the layout of ``dataset_flickr30k.json`` and ``dataset_coco.json``) as an image corpus.

    Image id: ``filepath/filename`` (``filename`` when there is no ``filepath``); pair id ``<image id>#<k>``,
    ``k`` the caption's position in ``sentences``; text the caption's ``raw`` (its ``tokens`` joined when
    there is no ``raw``). Splits: ``train`` and ``restval`` -> train, ``val``, ``test``. Images are looked for
    under the JSON's folder (see :func:`_karpathy_relpath`). "Rows" in messages are 1-based positions in
    ``images``.

    Raises:
        InvalidInputError: malformed JSON or entries (always); a missing/unreadable image, an empty caption,
            an unknown split (unless ``skip_invalid``).
    """
    json_path = find_karpathy_json(Path(path).expanduser().resolve())
    root = json_path.parent
    try:
        doc = json.loads(read_text_file(json_path))
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{json_path} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}") from e
    except RecursionError as e:
        raise InvalidInputError(f"{json_path}: JSON nested too deeply") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise InvalidInputError(f"{json_path} is not a Karpathy-split file: expected an object with an "
                                "'images' list")
    rows: list[_Row] = []
    skipped: list[dict] = []
    for n, entry in enumerate(doc["images"], 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or not entry["filename"]:
            raise InvalidInputError(f"{json_path}, image {n}: an entry needs a 'filename' string")
        sentences = entry.get("sentences")
        if not isinstance(sentences, list):
            raise InvalidInputError(f"{json_path}, image {n} ({entry['filename']!r}): 'sentences' must be a list")
        item = "/".join(p for p in (str(entry.get("filepath") or ""), entry["filename"]) if p)
        relpath, looked_for = _karpathy_relpath(root, entry)
        split = entry.get("split")
        split = KARPATHY_SPLITS.get(split, split) if isinstance(split, str) else split
        if not sentences:
            reason = "image without captions"
            if not skip_invalid:
                raise InvalidInputError(f"{json_path}, image {n}, id {item!r}: {reason}")
            skipped.append({"row": n, "id": item, "reason": reason, "file": json_path.name})
        for s in sentences:
            if not isinstance(s, dict):
                raise InvalidInputError(f"{json_path}, image {n} ({item!r}): each sentence must be an object")
            raw = s.get("raw")
            if not isinstance(raw, str):
                tokens = s.get("tokens")
                raw = " ".join(t for t in tokens if isinstance(t, str)) if isinstance(tokens, list) else ""
            rows.append(_Row(n, None, item, relpath, raw, None if split is None else str(split), json_path.name,
                             "image", looked_for))
    return _image_corpus(rows, root=root, source=source or f"karpathy:{json_path}", skip_invalid=skip_invalid,
                         skipped=skipped, label=str(json_path))


# ------------------------------------------------------------------------------------------------ imagefolder

def load_imagefolder(path: str | Path, *, skip_invalid: bool = False, source: str | None = None) -> Corpus:
    """Images plus a captions CSV as an image corpus.

    ``path`` is the CSV (comma-separated, a header line) or a folder holding ``captions.csv``; image paths
    are relative to the CSV's folder. Columns (case-insensitive; others ignored): ``image`` (the image file)
    and ``caption`` (or ``text``) are required; ``id`` (the image id, default the image path), ``pair_id``
    (default ``<id>#<k>``, ``k`` counting the image's captions from 0) and ``split`` (``train``/``val``/
    ``test``; without it images are split at random, seed 0, see :func:`random_image_split`). Several rows
    may share an image (several captions). Rows are numbered as lines, the header being line 1.

    Raises:
        InvalidInputError: no CSV, missing columns, malformed CSV (always); a caption row whose image is
            missing or unreadable, an empty caption, an unknown split, an id given two different images
            (unless ``skip_invalid``).
    """
    path = Path(path).expanduser().resolve()
    csv_path = path / CAPTIONS_FILE if path.is_dir() else path
    if not csv_path.is_file():
        raise InvalidInputError(f"image folder {path} lacks {CAPTIONS_FILE} (columns image, caption[, id, "
                                "pair_id, split])")
    text = read_text_file(csv_path)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD_BYTES)
    try:
        rows = _caption_rows(csv_path, text)
    finally:
        csv.field_size_limit(old_limit)
    return _image_corpus(rows, root=csv_path.parent, source=source or f"imagefolder:{path}",
                         skip_invalid=skip_invalid, skipped=[], label=str(csv_path))


def _caption_rows(csv_path: Path, text: str) -> list[_Row]:
    out: list[_Row] = []
    for line, row in csv_table(csv_path, text, required=IMAGEFOLDER_REQUIRED, optional=IMAGEFOLDER_OPTIONAL,
                               alternatives={"caption": IMAGEFOLDER_TEXT_COLUMNS}):
        get = lambda c: (row[c] or "").strip() or None  # noqa: E731
        image = get("image") or ""
        if not image:
            raise InvalidInputError(f"{csv_path}, line {line}: caption row without an image (empty 'image' "
                                    "field)")
        out.append(_Row(line, get("pair_id"), get("id") or image, image, row["caption"], get("split"),
                        csv_path.name))
    return out
