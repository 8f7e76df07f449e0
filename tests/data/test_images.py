"""Image sources on files the tests generate: depictions, Karpathy JSON, image folder + captions CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from graphdel.data.images import (DEPICTION_RECIPE, depiction_cache_path, depiction_image, depiction_png,
                                  file_sha256, image_item_properties, image_loader, image_statistics,
                                  load_imagefolder, load_karpathy, parse_file_item_input, random_image_split,
                                  render_depiction, to_pixels)
from graphdel.data.requests import DeletionRequest
from graphdel.data.sources import load_dataset
from graphdel.errors import InvalidInputError, RequestError

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 220), "yellow": (230, 220, 40),
           "purple": (150, 40, 170), "cyan": (40, 210, 210), "orange": (240, 140, 20), "grey": (128, 128, 128)}
CORNERS = ["top left", "top right", "bottom left", "bottom right"]


def tiny_image(k: int, size: int = 16) -> Image.Image:
    """Image ``k``: a solid colour with a white square in one corner (colour and corner vary with k)."""
    name = list(COLOURS)[k % len(COLOURS)]
    img = Image.new("RGB", (size, size), COLOURS[name])
    corner = (k // len(COLOURS)) % 4
    x0, y0 = (corner % 2) * size // 2, (corner // 2) * size // 2
    img.paste((255, 255, 255), (x0, y0, x0 + size // 2, y0 + size // 2))
    return img


def tiny_captions(k: int) -> list[str]:
    name, corner = list(COLOURS)[k % len(COLOURS)], CORNERS[(k // len(COLOURS)) % 4]
    return [f"A {name} picture with a white square at the {corner}.",
            f"White block in the {corner} corner of a {name} background."]


def write_imagefolder(folder: Path, n: int = 16, *, splits: bool = True, fmt: str = "PNG") -> Path:
    """``n`` images under ``folder/img/`` and ``folder/captions.csv`` (two captions each; with ``splits``
    image 0..n-5 train, then 2 val, 2 test)."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    with (folder / "captions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption"] + (["split"] if splits else []))
        for k in range(n):
            rel = f"img/{k:02d}.{fmt.lower()}"
            tiny_image(k).save(folder / rel, fmt)
            split = "train" if k < n - 4 else ("val" if k < n - 2 else "test")
            for cap in tiny_captions(k):
                w.writerow([rel, cap] + ([split] if splits else []))
    return folder


def write_karpathy(folder: Path, n: int = 6, *, subfolder: str = "images") -> Path:
    """A Flickr30k-style Karpathy JSON with ``n`` images (2 captions each, the last 3 captions for image 0)
    under ``folder/<subfolder>/``; splits cycle train, restval, val, test."""
    (folder / subfolder).mkdir(parents=True, exist_ok=True)
    split_names = ["train", "restval", "val", "test"]
    images = []
    for k in range(n):
        name = f"{1000 + k}.jpg"
        tiny_image(k).save(folder / subfolder / name, "JPEG", quality=95)
        caps = tiny_captions(k) + (["Three captions for the first image."] if k == 0 else [])
        images.append({"filename": name, "imgid": k, "split": split_names[k % 4],
                       "sentences": [{"raw": c, "tokens": c.lower().split(), "imgid": k, "sentid": 10 * k + j}
                                     for j, c in enumerate(caps)]})
    (folder / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    return folder


# ------------------------------------------------------------------------------------------- pixels

def test_to_pixels_resizes_the_shorter_side_and_centre_crops():
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    for x, colour in enumerate([(10, 0, 0), (20, 0, 0), (30, 0, 0), (40, 0, 0)]):
        for y in range(2):
            img.putpixel((x, y), colour)
    px = to_pixels(img, 2)                       # no resize needed (shorter side 2), crop columns 1..2
    assert px.dtype == torch.uint8 and px.shape == (3, 2, 2)
    assert px[0].tolist() == [[20, 30], [20, 30]] and int(px[1:].sum()) == 0


def test_to_pixels_composites_transparency_on_white():
    img = Image.new("RGBA", (3, 3), (0, 0, 0, 0))
    assert to_pixels(img, 3).unique().tolist() == [255]


def test_image_statistics_exact_values():
    red = to_pixels(Image.new("RGB", (8, 8), (255, 0, 0)), 8)
    s = image_statistics(red)
    assert s["brightness"] == pytest.approx(0.299)
    assert s["colourfulness"] == pytest.approx(0.3 * (255.0 ** 2 + 127.5 ** 2) ** 0.5)
    assert s["warm"] == 1.0
    assert image_statistics(to_pixels(Image.new("RGB", (8, 8), (0, 0, 255)), 8))["warm"] == 0.0


# ------------------------------------------------------------------------------------------- depictions

def test_depictions_are_deterministic_and_cached():
    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    a, b = render_depiction(smiles), render_depiction(smiles)
    assert a == b and a.startswith(b"\x89PNG")
    path = depiction_cache_path(smiles)
    assert not path.exists()
    assert depiction_png(smiles) == a and path.read_bytes() == a           # rendered once, then cached
    img = depiction_image(smiles)
    assert img.size == (DEPICTION_RECIPE["size"],) * 2 and img.mode == "RGB"
    px1, px2 = to_pixels(img, 32), to_pixels(depiction_image(smiles), 32)
    assert torch.equal(px1, px2)
    assert int(px1[:, 0, 0].min()) == 255                                  # white background corner
    assert not torch.equal(px1, to_pixels(depiction_image("c1ccccc1"), 32))


def test_depiction_of_an_unparsable_smiles_names_the_molecule():
    with pytest.raises(InvalidInputError, match="'bad1'"):
        render_depiction("C1CC(", item_id="bad1")


def test_depictions_keep_ids_texts_and_splits_of_the_molecule_source(tiny_csv):
    mol = load_dataset(f"csv:{tiny_csv}")
    img = load_dataset(f"depictions:csv:{tiny_csv}")
    assert img.modality == "image" and mol.modality == "molecule"
    assert img.source == f"depictions:csv:{tiny_csv.resolve()}"
    assert (img.pair_ids, img.item_ids, img.texts, img.splits) == (mol.pair_ids, mol.item_ids, mol.texts, mol.splits)
    assert img.items == mol.items and img.extra["images"] == "depictions"
    # a request saved on the molecule corpus re-validates on the depictions: same pairs, same pair hashes
    req = DeletionRequest.from_ids(mol, ["aspirin", "ethanol"], by="molecule")
    path = tiny_csv.parent / "request.json"
    req.save(path, mol)
    with pytest.warns(UserWarning, match="different version of the corpus"):
        again = DeletionRequest.from_file(img, path)
    assert again.pair_ids == req.pair_ids and again.pair_hashes == req.pair_hashes
    props = image_item_properties(img, ["ethanol", "benzene"])
    assert set(props) == {"logp", "tpsa", "aromatic"} and props["aromatic"][0].tolist() == [False, True]


def test_depictions_of_a_non_molecule_source_is_refused(tmp_path):
    write_imagefolder(tmp_path / "f", n=4)
    with pytest.raises(InvalidInputError, match="needs a molecule source"):
        load_dataset(f"depictions:imagefolder:{tmp_path / 'f'}")


# ------------------------------------------------------------------------------------------- karpathy

def test_karpathy_loader(tmp_path):
    folder = write_karpathy(tmp_path / "k")
    c = load_dataset(f"karpathy:{folder}")
    assert c.modality == "image" and c.source == f"karpathy:{folder.resolve()}"
    assert len(c) == 13 and len(set(c.item_ids)) == 6
    assert c.pair_ids[:4] == ["1000.jpg#0", "1000.jpg#1", "1000.jpg#2", "1001.jpg#0"]
    assert c.texts[2] == "Three captions for the first image."
    split_of = dict(zip(c.item_ids, c.splits))
    assert [split_of[f"{1000 + k}.jpg"] for k in range(6)] == ["train", "train", "val", "test", "train", "train"]
    digest, rel = parse_file_item_input(c.items["1002.jpg"])
    assert rel == "images/1002.jpg" and digest == file_sha256(folder / "images" / "1002.jpg")
    # the JSON file itself works as PATH and gives the same pairs
    c2 = load_dataset(f"karpathy:{folder / 'dataset_flickr30k.json'}")
    assert c2.pair_ids == c.pair_ids and c2.content_hash() == c.content_hash()
    loaded = image_loader(c)("1001.jpg")
    assert loaded.size == (16, 16)


def test_deleting_a_karpathy_image_removes_every_caption(tmp_path):
    c = load_dataset(f"karpathy:{write_karpathy(tmp_path / 'k')}")
    req = DeletionRequest.from_ids(c, ["1000.jpg"], by="image")
    assert req.pair_ids == ("1000.jpg#0", "1000.jpg#1", "1000.jpg#2")
    # a caption's pair id stands for its image
    assert DeletionRequest.from_ids(c, ["1001.jpg#1"], by="image").pair_ids == ("1001.jpg#0", "1001.jpg#1")
    rnd = DeletionRequest.random(c, n=2, by="image", seed=0)
    items = {c.item_ids[c.index_of(p)] for p in rnd.pair_ids}
    assert len(items) == 2
    assert set(rnd.pair_ids) == {p for p, i in zip(c.pair_ids, c.item_ids) if i in items}
    with pytest.raises(RequestError, match="not in the training split"):
        DeletionRequest.from_ids(c, ["1002.jpg"], by="image")           # a val image


def test_by_image_is_refused_on_a_molecule_corpus(tiny_csv):
    with pytest.raises(RequestError, match="applies to image corpora"):
        DeletionRequest.from_ids(load_dataset(f"csv:{tiny_csv}"), ["aspirin"], by="image")


def test_karpathy_missing_image_names_the_image(tmp_path):
    folder = write_karpathy(tmp_path / "k")
    (folder / "images" / "1003.jpg").unlink()
    with pytest.raises(InvalidInputError, match=r"image 4, id '1003.jpg#0'.*looked for 1003.jpg, images/1003.jpg\)"):
        load_dataset(f"karpathy:{folder}")
    c = load_dataset(f"karpathy:{folder}", skip_invalid=True)
    assert "1003.jpg" not in c.items and len(c) == 11
    assert [s["id"] for s in c.skipped] == ["1003.jpg#0", "1003.jpg#1"]


def test_karpathy_folder_needs_exactly_one_json(tmp_path):
    folder = write_karpathy(tmp_path / "k")
    (folder / "dataset_coco.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="exactly one dataset"):
        load_karpathy(folder)
    (folder / "dataset_coco.json").write_text("{\"images\": 3}")
    with pytest.raises(InvalidInputError, match="'images' list"):
        load_karpathy(folder / "dataset_coco.json")


# ------------------------------------------------------------------------------------------- imagefolder

def test_imagefolder_loader(tmp_path):
    folder = write_imagefolder(tmp_path / "f", n=8)
    c = load_dataset(f"imagefolder:{folder}")
    assert len(c) == 16 and c.item_ids[0] == "img/00.png" and c.pair_ids[:2] == ["img/00.png#0", "img/00.png#1"]
    assert c.stats()["splits"]["train"]["items"] == 4 and c.stats()["splits"]["test"]["items"] == 2
    assert c.extra == {"images": "files"}
    assert load_dataset(f"imagefolder:{folder / 'captions.csv'}").pair_ids == c.pair_ids


def test_imagefolder_without_split_column_is_split_by_image(tmp_path):
    c = load_dataset(f"imagefolder:{write_imagefolder(tmp_path / 'f', n=20, splits=False)}")
    by_item: dict[str, set] = {}
    for i, s in zip(c.item_ids, c.splits):
        by_item.setdefault(i, set()).add(s)
    assert all(len(v) == 1 for v in by_item.values())                  # every caption of an image together
    assert sorted(c.stats()["splits"][s]["items"] for s in ("val", "test")) == [2, 2]
    assert random_image_split(list(by_item)) == {i: next(iter(v)) for i, v in by_item.items()}


@pytest.mark.parametrize("problem, message", [
    ("empty_image", r"line 3: caption row without an image"),
    ("not_an_image", r"row 2, id 'img/00.png#0'.*not an image file"),
    ("empty_caption", r"row 3, id 'img/00.png#1': empty caption"),
    ("id_with_two_images", r"row 3, id 'img/00.png#1'.*is 'img/01.png' here but 'img/00.png' at row 2"),
    ("no_caption_column", r"missing column 'caption'"),
])
def test_imagefolder_bad_rows_name_the_row(tmp_path, problem, message):
    folder = tmp_path / "f"
    (folder / "img").mkdir(parents=True)
    tiny_image(0).save(folder / "img" / "00.png")
    tiny_image(1).save(folder / "img" / "01.png")
    rows = [["image", "id", "caption"], ["img/00.png", "", "first caption"], ["img/00.png", "", "second caption"]]
    if problem == "empty_image":
        rows[2][0] = ""
    elif problem == "not_an_image":
        (folder / "img" / "00.png").write_text("not a picture")
    elif problem == "empty_caption":
        rows[2][2] = "   "
    elif problem == "id_with_two_images":
        rows[1][1] = rows[2][1] = "img/00.png"
        rows[2][0] = "img/01.png"
    elif problem == "no_caption_column":
        rows[0] = ["image", "id", "words"]
    with (folder / "captions.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(InvalidInputError, match=message):
        load_imagefolder(folder)


def test_imagefolder_missing_image_file_is_named_and_skippable(tmp_path):
    folder = write_imagefolder(tmp_path / "f", n=6)
    (folder / "img" / "01.png").unlink()
    with pytest.raises(InvalidInputError, match=r"row 4, id 'img/01.png#0'.*01.png does not exist"):
        load_imagefolder(folder)
    c = load_imagefolder(folder, skip_invalid=True)
    assert len(c) == 10 and [s["row"] for s in c.skipped] == [4, 5]


def test_image_file_changed_after_loading_is_refused(tmp_path):
    folder = write_imagefolder(tmp_path / "f", n=4)
    c = load_dataset(f"imagefolder:{folder}")
    tiny_image(5).save(folder / "img" / "02.png")
    load = image_loader(c)
    load("img/01.png")
    with pytest.raises(InvalidInputError, match=r"image 'img/02.png'.*changed since the dataset was loaded"):
        load("img/02.png")


def test_truncated_image_is_refused_when_read(tmp_path):
    folder = write_imagefolder(tmp_path / "f", n=4, fmt="JPEG")
    path = folder / "img" / "01.jpeg"
    noise = torch.randint(0, 256, (128, 128, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    Image.fromarray(noise.numpy()).save(path, "JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])                           # header intact, pixels cut off
    c = load_dataset(f"imagefolder:{folder}")                           # loading reads headers only
    with pytest.raises(InvalidInputError, match=r"image 'img/01.jpeg': cannot decode"):
        image_loader(c)("img/01.jpeg")
    path.write_bytes(data[:40])                                         # header cut too: refused at load
    with pytest.raises(InvalidInputError, match=r"row 4, id 'img/01.jpeg#0'.*cannot read image"):
        load_dataset(f"imagefolder:{folder}")


def test_file_image_properties_are_content_statistics(tmp_path):
    c = load_dataset(f"imagefolder:{write_imagefolder(tmp_path / 'f', n=4)}")
    props = image_item_properties(c, ["img/00.png", "img/02.png"])       # red, blue
    assert set(props) == {"brightness", "colourfulness", "warm"}
    assert props["warm"][0].tolist() == [True, False] and props["brightness"][1] == "regression"
