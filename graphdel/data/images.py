"""Image–text sources, image loading and featurisation: the image modality, added by registration.

Three sources are registered here (the module must be imported for them to exist; ``graphdel.api``
imports it):

======================  ============================================================================
``depictions``          2-D depictions of the embedded ``drugs`` corpus's molecules, drawn by RDKit
                        (``depictions:SPEC`` draws those of any molecule source, e.g.
                        ``depictions:chebi20:PATH``). Same pair ids, item ids, texts and splits as the
                        molecule source, so one deletion request applies to both (a request file made on
                        the ``drugs`` run re-validates here: its pair hashes match).
``karpathy:PATH``       Flickr30k / COCO in the Karpathy-split layout: ``PATH`` is the JSON file
                        (``dataset_flickr30k.json``...) or a folder holding exactly one ``dataset*.json``;
                        images are found under that folder (see :func:`load_karpathy`). Every caption of
                        an image is a pair of that image; deleting the image (``by="image"``) deletes all
                        of them, as in the MultiDelete authors' setup.
``imagefolder:PATH``    images plus a captions CSV: ``PATH`` is the CSV or a folder holding
                        ``captions.csv`` (see :func:`load_imagefolder`).
======================  ============================================================================

The corpus (``modality="image"``): ``items[image id]`` is what defines the image's content: the canonical
SMILES for a depiction (drawn by the fixed recipe :data:`DEPICTION_RECIPE`, recorded in
``extra["depiction"]``), ``"sha256:<hex>:<relative path>"`` for an image file (the SHA-256 of its bytes
and its path relative to the dataset folder). The content hash and the deletion-request pair hashes thus
cover the image bytes; an image file edited after loading is refused when it is read.
``extra["images"]`` is ``"depictions"`` or ``"files"``.

Depictions are rendered once and cached as PNG files under ``$GRAPHDEL_CACHE/depictions/``; the frozen part
of the image encoder is run once per dataset and cached too (:func:`graphdel.encoders.image.encode_frozen_images`).
Every problem raises :class:`~graphdel.errors.InvalidInputError` naming the file, row and image id: a
missing or unreadable image, a caption row without an image, an empty caption, an unknown split.
``skip_invalid`` leaves such rows out and lists them in ``corpus.skipped`` instead (structural problems,
such as missing columns or malformed JSON, always raise).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from graphdel.data.corpus import Corpus
from graphdel.data.pairs import register_featurizer, register_item_properties
from graphdel.data.sources import (MAX_FIELD_BYTES, MAX_TEXT_CHARS, clean_text, csv_table, load_dataset,
                                   read_text_file, register_source)
from graphdel.encoders.image import ImageEncoderConfig, ImageInput, encode_frozen_images
from graphdel.errors import InvalidInputError

#: How depictions are drawn; part of each depiction's cache key and of the corpus (``extra["depiction"]``).
DEPICTION_RECIPE = {"renderer": "rdkit.MolDraw2DCairo", "size": 224, "background": "white", "version": 1}
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


# ------------------------------------------------------------------------------------------------ pixels

def to_pixels(image, size: int) -> Tensor:
    """A PIL image as ``uint8 [3, size, size]`` RGB: converted to RGB (transparency composited on white),
    the shorter side resized to ``size`` (bicubic), then centre-cropped."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    image = image.crop((left, top, left + size, top + size))
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


# ------------------------------------------------------------------------------------------------ depictions

def render_depiction(smiles: str, *, item_id: str | None = None) -> bytes:
    """PNG bytes of the 2-D depiction of ``smiles`` drawn by :data:`DEPICTION_RECIPE` (deterministic: RDKit's
    2-D coordinates of the canonical molecule, default drawing options, no legend).

    Raises:
        InvalidInputError: RDKit cannot parse or draw the molecule (naming ``item_id``).
    """
    from rdkit import Chem
    from rdkit.Chem import rdDepictor
    from rdkit.Chem.Draw import rdMolDraw2D

    where = f"molecule {item_id!r}" if item_id else f"SMILES {smiles[:80]!r}"
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise InvalidInputError(f"{where}: RDKit cannot parse the SMILES to draw it")
    try:
        rdDepictor.Compute2DCoords(mol)
        size = DEPICTION_RECIPE["size"]
        drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
        rdMolDraw2D.PrepareAndDrawMolecule(drawer, mol)
        drawer.FinishDrawing()
        return drawer.GetDrawingText()
    except (RuntimeError, ValueError) as e:
        raise InvalidInputError(f"{where}: RDKit cannot draw it: {e}") from e


def _recipe_digest() -> str:
    return hashlib.sha256(json.dumps(DEPICTION_RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def depiction_cache_path(smiles: str) -> Path:
    """Where the depiction of ``smiles`` is cached: ``$GRAPHDEL_CACHE/depictions/<recipe>/<ab>/<sha1>.png``."""
    from graphdel.data.molecules import cache_dir

    digest = hashlib.sha1(smiles.encode("utf-8")).hexdigest()
    return cache_dir() / "depictions" / _recipe_digest() / digest[:2] / f"{digest}.png"


def depiction_png(smiles: str, *, item_id: str | None = None, use_cache: bool = True) -> bytes:
    """The depiction of ``smiles`` as PNG bytes, rendered once and then read from the cache."""
    from graphdel.io import atomic_write_bytes

    path = depiction_cache_path(smiles)
    if use_cache and path.is_file():
        data = path.read_bytes()
        if data.startswith(b"\x89PNG"):
            return data
    data = render_depiction(smiles, item_id=item_id)
    if use_cache:
        atomic_write_bytes(data, path)
    return data


def depiction_image(smiles: str, *, item_id: str | None = None):
    """The depiction of ``smiles`` as a PIL RGB image (``DEPICTION_RECIPE["size"]`` square)."""
    from PIL import Image

    with Image.open(io.BytesIO(depiction_png(smiles, item_id=item_id))) as img:
        return img.convert("RGB")


@register_source("depictions", argument="optional")
def load_depictions(spec: str | None = None, *, skip_invalid: bool = False) -> Corpus:
    """``depictions`` (the embedded ``drugs`` corpus) or ``depictions:SPEC`` (any molecule source): the
    molecule corpus with each molecule replaced by its RDKit depiction; pair ids, item ids, texts and splits
    are unchanged, ``items`` keeps the canonical SMILES (which, with :data:`DEPICTION_RECIPE`, defines the
    image). Nothing is drawn here: drawing happens (once, cached) when the corpus is featurised.

    Raises:
        InvalidInputError: ``SPEC`` is not a molecule source, or its own errors.
    """
    inner = load_dataset(spec.strip() if spec and spec.strip() else "drugs", skip_invalid=skip_invalid)
    if inner.modality != "molecule":
        raise InvalidInputError(f"depictions:{spec} needs a molecule source, but {inner.source!r} is "
                                f"{inner.modality!r}")
    return Corpus(source="depictions" if inner.source == "drugs" else f"depictions:{inner.source}",
                  modality="image", pair_ids=list(inner.pair_ids), item_ids=list(inner.item_ids),
                  texts=list(inner.texts), splits=list(inner.splits), items=dict(inner.items),
                  skipped=list(inner.skipped), removed_fragments=dict(inner.removed_fragments),
                  stripped=list(inner.stripped),
                  extra={**inner.extra, "images": "depictions", "depiction": dict(DEPICTION_RECIPE)})


# ------------------------------------------------------------------------------------------------ image files

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (remembered per process by path, size and modification time)."""
    from graphdel.io import sha256_file

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def file_item_input(relpath: str, digest: str) -> str:
    """``items[image id]`` of an image file: ``"sha256:<hex>:<relative path>"``."""
    return f"sha256:{digest}:{relpath}"


def parse_file_item_input(value: str) -> tuple[str, str]:
    """``(sha256 hex, relative path)`` of an ``items`` value made by :func:`file_item_input`."""
    prefix, digest, relpath = (value.split(":", 2) + ["", ""])[:3]
    if prefix != "sha256" or len(digest) != 64 or not relpath:
        raise InvalidInputError(f"not an image file reference ('sha256:<hex>:<path>'): {value[:120]!r}")
    return digest, relpath


def check_image_file(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header of an image file (nothing decoded yet).

    Raises:
        InvalidInputError: missing, unreadable, or not an image PIL recognises (naming the path).
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InvalidInputError(f"image file {path} does not exist")
    try:
        with Image.open(path) as img:
            return img.size
    except UnidentifiedImageError as e:
        raise InvalidInputError(f"{path} is not an image file PIL can read") from e
    except OSError as e:
        raise InvalidInputError(f"cannot read image {path}: {e}") from e


def read_image(path: Path, *, item_id: str, digest: str | None = None):
    """Decode an image file as a PIL RGB image, checking its SHA-256 against ``digest`` when given.

    Raises:
        InvalidInputError: missing, changed since the corpus was loaded, truncated or undecodable (naming
            the image id and the path).
    """
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InvalidInputError(f"image {item_id!r}: file {path} does not exist")
    if digest is not None and file_sha256(path) != digest:
        raise InvalidInputError(f"image {item_id!r}: {path} changed since the dataset was loaded (SHA-256 "
                                "differs); reload the dataset")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidInputError(f"image {item_id!r}: cannot decode {path}: {e}") from e


def dataset_root(corpus: Corpus) -> Path:
    """The folder an image-file corpus's relative paths start from, from its source spec (the Karpathy
    JSON's folder, or the ``imagefolder`` folder / the captions CSV's folder)."""
    name, _, arg = corpus.source.partition(":")
    if name not in ("karpathy", "imagefolder") or not arg:
        raise InvalidInputError(f"corpus {corpus.source!r} is not an image-file source (karpathy:PATH or "
                                "imagefolder:PATH)")
    path = Path(arg)
    return path if path.is_dir() else path.parent


def image_key(corpus: Corpus, item_id: str) -> str:
    """A string identifying the content of image ``item_id`` (the feature cache key)."""
    kind = corpus.extra.get("images")
    if kind == "depictions":
        return f"depiction:{_recipe_digest()}:{corpus.items[item_id]}"
    if kind == "files":
        return corpus.items[item_id]
    raise InvalidInputError(f"corpus {corpus.source!r} holds no images (extra['images'] = {kind!r})")


def image_loader(corpus: Corpus) -> Callable[[str], object]:
    """``load(image id) -> PIL RGB image`` for an image corpus (a depiction drawn or read from its cache, or
    the file, checked against its recorded SHA-256)."""
    kind = corpus.extra.get("images")
    if kind == "depictions":
        return lambda iid: depiction_image(corpus.items[iid], item_id=iid)
    if kind == "files":
        root = dataset_root(corpus)

        def load(iid: str):
            digest, relpath = parse_file_item_input(corpus.items[iid])
            return read_image(root / relpath, item_id=iid, digest=digest)

        return load
    raise InvalidInputError(f"corpus {corpus.source!r} holds no images (extra['images'] = {kind!r})")


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
    pair_ids: list[str] = []
    item_ids: list[str] = []
    texts: list[str] = []
    splits: list[str | None] = []
    items: dict[str, str] = {}
    first_at: dict[str, tuple[int, str]] = {}
    bad_image: dict[str, str] = {}
    per_item: Counter = Counter()
    pair_at: dict[str, list[str]] = {}

    def fail(r: _Row, ident: str, reason: str) -> None:
        if skip_invalid:
            skipped.append({"row": r.row, "id": ident, "reason": reason, "file": r.file})
            return
        raise InvalidInputError(f"{r.file}, {r.unit} {r.row}, id {ident!r}: {reason}")

    for r in rows:
        k = per_item[r.item_id]
        per_item[r.item_id] += 1
        pair_id = r.pair_id or f"{r.item_id}#{k}"
        if r.item_id in bad_image:
            fail(r, pair_id, bad_image[r.item_id])
            continue
        if r.item_id in items and first_at[r.item_id][1] != r.relpath:
            fail(r, pair_id, f"image id {r.item_id!r} is {r.relpath!r} here but {first_at[r.item_id][1]!r} at "
                             f"row {first_at[r.item_id][0]}")
            continue
        if r.item_id not in items:
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
                bad_image[r.item_id] = f"caption row without a readable image: {e}"
                fail(r, pair_id, bad_image[r.item_id])
                continue
            items[r.item_id] = file_item_input(r.relpath, digest)
            first_at[r.item_id] = (r.row, r.relpath)
        text = clean_text(r.text) if isinstance(r.text, str) else ""
        if not text:
            fail(r, pair_id, "empty caption")
            continue
        if len(text) > MAX_TEXT_CHARS:
            fail(r, pair_id, f"caption of {len(text)} characters is longer than the limit of {MAX_TEXT_CHARS}")
            continue
        split = None
        if r.split is not None:
            split = _SPLIT_ALIASES.get(str(r.split).strip().lower())
            if split is None:
                fail(r, pair_id, f"unknown split {r.split!r} (expected train, val or test)")
                continue
        pair_ids.append(pair_id)
        pair_at.setdefault(pair_id, []).append(f"{r.file} row {r.row}")
        item_ids.append(r.item_id)
        texts.append(text)
        splits.append(split)

    dupes = [p for p, at in pair_at.items() if len(at) > 1]
    if dupes:
        detail = "; ".join(f"{p!r} at {', '.join(pair_at[p])}" for p in dupes[:10])
        raise InvalidInputError(f"{label}: duplicated pair ids ({len(dupes)}): {detail}")
    if not pair_ids:
        raise InvalidInputError(f"{label}: no valid caption rows ({len(skipped)} skipped)")
    given = [s is not None for s in splits]
    if any(given) and not all(given):
        missing = [p for p, s in zip(pair_ids, splits) if s is None][:10]
        raise InvalidInputError(f"{label}: a split is given for some rows but not for pairs {missing}")
    if not any(given):
        by_item = random_image_split(list(dict.fromkeys(item_ids)), seed=0)
        splits = [by_item[i] for i in item_ids]
    used = set(item_ids)
    return Corpus(source=source, modality="image", pair_ids=pair_ids, item_ids=item_ids, texts=texts,
                  splits=splits, items={i: v for i, v in items.items() if i in used},  # type: ignore[arg-type]
                  skipped=skipped, extra={"images": "files"})


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


@register_source("karpathy", argument="path")
def load_karpathy_source(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """``karpathy:PATH``: Flickr30k / COCO in the Karpathy layout (see :func:`load_karpathy`)."""
    return load_karpathy(path, skip_invalid=skip_invalid)


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


@register_source("imagefolder", argument="path")
def load_imagefolder_source(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """``imagefolder:PATH``: images plus a captions CSV (see :func:`load_imagefolder`)."""
    return load_imagefolder(path, skip_invalid=skip_invalid)


# ------------------------------------------------------------------------------------------------ featurising

def image_config(model_config) -> ImageEncoderConfig:
    """The image encoder a :class:`~graphdel.models.joint.ModelConfig` names (``extra["image"]``; the
    defaults when absent or when ``model_config`` is ``None``)."""
    extra = getattr(model_config, "extra", None) or {}
    return ImageEncoderConfig.from_dict(extra.get("image"))


class ImageItemStore:
    """Featurised images: what the frozen part of the encoder gives for each image (or the pixels).

    ``batch(item indices [B]) -> ImageInput`` of those images; :meth:`model_extra` records the encoder
    config in the model config, so the model is built for the features it will read.

    Attributes:
        data: :class:`~graphdel.encoders.image.ImageInput` of all ``I`` images.
        config: the encoder the features are for.
    """

    def __init__(self, data: ImageInput, config: ImageEncoderConfig) -> None:
        self.data, self.config = data, config

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices: Tensor) -> ImageInput:
        """The images at store positions ``indices`` (``[B]`` long), as an :class:`ImageInput` of ``B``."""
        return self.data.select(torch.as_tensor(indices, dtype=torch.long))

    def model_extra(self) -> dict:
        """``{"image": encoder config}``: what the model must know of the data to be built."""
        return {"image": self.config.to_dict()}


@register_featurizer("image", uses_model_config=True)
def featurize_images(corpus: Corpus, item_ids: list[str], progress: bool = True, *,
                     model_config=None) -> ImageItemStore:
    """Load (or draw) every image of ``item_ids`` and run the frozen part of the model's image encoder over
    them once (cached on disk); see :func:`graphdel.encoders.image.encode_frozen_images`."""
    config = image_config(model_config)
    load_image = image_loader(corpus)
    keys = [image_key(corpus, i) for i in item_ids]
    data = encode_frozen_images(keys, lambda k: to_pixels(load_image(item_ids[k]), config.image_size), config,
                                progress=progress)
    return ImageItemStore(data, config)


# ------------------------------------------------------------------------------------------------ probes

def image_statistics(pixels: Tensor) -> dict[str, float]:
    """Simple content statistics of ``uint8 [3, S, S]`` RGB pixels.

    Returns:
        ``{"brightness": mean luma (0.299 R + 0.587 G + 0.114 B) / 255, "colourfulness": Hasler &
        Süsstrunk (2003) sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2) on 0-255 values with
        rg = R - G and yb = (R + G) / 2 - B, "warm": 1.0 if mean R > mean B else 0.0}``.
    """
    r, g, b = (pixels[c].double() for c in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = float(torch.sqrt(rg.std(unbiased=False) ** 2 + yb.std(unbiased=False) ** 2)
                      + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    return {"brightness": float((0.299 * r + 0.587 * g + 0.114 * b).mean() / 255.0), "colourfulness": colourful,
            "warm": float(r.mean() > b.mean())}


@register_item_properties("image")
def image_item_properties(corpus: Corpus, item_ids: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
    """Probe targets of images: the drawn molecule's RDKit properties for depictions (logP, TPSA,
    aromaticity), :func:`image_statistics` at 64 x 64 for image files (brightness, colourfulness, warm)."""
    if corpus.extra.get("images") == "depictions":
        from graphdel.data.molecules import molecule_item_properties

        return molecule_item_properties(corpus, item_ids)
    load = image_loader(corpus)
    stats = [image_statistics(to_pixels(load(i), 64)) for i in item_ids]
    return {"brightness": (np.asarray([s["brightness"] for s in stats]), "regression"),
            "colourfulness": (np.asarray([s["colourfulness"] for s in stats]), "regression"),
            "warm": (np.asarray([s["warm"] for s in stats]).astype(bool), "classification")}


# ------------------------------------------------------------------------------------------------ requests

def _expand_images(corpus: Corpus, ids: Sequence[str]) -> dict[str, list[int]]:
    """Image ids, or pair ids standing for their image -> every row of that image (all its captions)."""
    from graphdel.data.requests import rows_by_item

    by_item = rows_by_item(corpus)
    out = {}
    for ident in ids:
        item = ident if ident in corpus.items else (
            corpus.item_ids[corpus.index_of(ident)] if corpus.has_pair(ident) else None)
        if item is not None and item in by_item:
            out[ident] = by_item[item]
    return out


def _register_image_granularity() -> None:
    from graphdel.data.granularities import _GRANULARITIES, register_granularity, rows_by_item

    if "image" not in _GRANULARITIES:
        register_granularity("image", _expand_images, units=rows_by_item, unit_name="images",
                             modalities=("image",))


_register_image_granularity()
