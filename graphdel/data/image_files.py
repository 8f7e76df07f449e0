"""Image files and pixels: the content reference of an image file (its SHA-256 and relative path), checking
and decoding image files, the loader of an image corpus's images (files or depictions), and the conversion
of an image to the encoder's pixels. Every public name is also imported from :mod:`graphdel.data.images`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from graphdel.data.corpus import Corpus
from graphdel.data.depictions import depiction_image, recipe_digest
from graphdel.errors import InvalidInputError


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
        return f"depiction:{recipe_digest()}:{corpus.items[item_id]}"
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
