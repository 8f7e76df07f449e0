"""Molecule depictions: 2-D drawings of molecules by RDKit with a fixed recipe, rendered once and cached as
PNG files. The ``depictions`` source of :mod:`graphdel.data.images` (which every public name here is also
imported from) turns a molecule corpus into an image corpus of them.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from graphdel.errors import InvalidInputError

#: How depictions are drawn; part of each depiction's cache key and of the corpus (``extra["depiction"]``).
DEPICTION_RECIPE = {"renderer": "rdkit.MolDraw2DCairo", "size": 224, "background": "white", "version": 1}


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


def recipe_digest() -> str:
    """The first 12 hex digits of the SHA-256 of :data:`DEPICTION_RECIPE` (its key in caches)."""
    return hashlib.sha256(json.dumps(DEPICTION_RECIPE, sort_keys=True).encode()).hexdigest()[:12]


def depiction_cache_path(smiles: str) -> Path:
    """Where the depiction of ``smiles`` is cached: ``$GRAPHDEL_CACHE/depictions/<recipe>/<ab>/<sha1>.png``."""
    from graphdel.data.molecules import cache_dir

    digest = hashlib.sha1(smiles.encode("utf-8")).hexdigest()
    return cache_dir() / "depictions" / recipe_digest() / digest[:2] / f"{digest}.png"


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
