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

This module registers the sources, the featuriser, the probe targets and the ``image`` granularity; the
rest is in modules of their own, every public name of which is also imported from here:
:mod:`graphdel.data.depictions` (drawing molecules), :mod:`graphdel.data.image_files` (image files, pixels
and an image corpus's loader) and :mod:`graphdel.data.image_corpus` (the ``karpathy`` and ``imagefolder``
readers and their checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from graphdel.data.corpus import Corpus
from graphdel.data.depictions import (DEPICTION_RECIPE, depiction_cache_path, depiction_image, depiction_png,
                                      render_depiction)
from graphdel.data.image_corpus import (CAPTIONS_FILE, DEFAULT_SPLIT_SHARES, IMAGEFOLDER_OPTIONAL,
                                        IMAGEFOLDER_REQUIRED, IMAGEFOLDER_TEXT_COLUMNS, KARPATHY_SPLITS,
                                        find_karpathy_json, load_imagefolder, load_karpathy, random_image_split)
from graphdel.data.image_files import (check_image_file, dataset_root, file_item_input, file_sha256, image_key,
                                       image_loader, parse_file_item_input, read_image, to_pixels)
from graphdel.data.pairs import register_featurizer, register_item_properties
from graphdel.data.sources import load_dataset, register_source
from graphdel.encoders.image import ImageEncoderConfig, ImageInput, encode_frozen_images
from graphdel.errors import InvalidInputError

__all__ = ["CAPTIONS_FILE", "DEFAULT_SPLIT_SHARES", "DEPICTION_RECIPE", "IMAGEFOLDER_OPTIONAL", "IMAGEFOLDER_REQUIRED",
           "IMAGEFOLDER_TEXT_COLUMNS", "KARPATHY_SPLITS", "ImageItemStore", "check_image_file", "dataset_root",
           "depiction_cache_path", "depiction_image", "depiction_png", "featurize_images", "file_item_input",
           "file_sha256", "find_karpathy_json", "image_config", "image_item_properties", "image_key",
           "image_loader", "image_statistics", "load_depictions", "load_imagefolder", "load_imagefolder_source",
           "load_karpathy", "load_karpathy_source", "parse_file_item_input", "random_image_split", "read_image",
           "render_depiction", "to_pixels"]


# ------------------------------------------------------------------------------------------------ sources

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



@register_source("karpathy", argument="path")
def load_karpathy_source(path: Path, *, skip_invalid: bool = False) -> Corpus:
    """``karpathy:PATH``: Flickr30k / COCO in the Karpathy layout (see :func:`load_karpathy`)."""
    return load_karpathy(path, skip_invalid=skip_invalid)



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

    if "image" not in _GRANULARITIES.names():  # names(): no loading while this module imports
        register_granularity("image", _expand_images, units=rows_by_item, unit_name="images",
                             modalities=("image",))


_register_image_granularity()
