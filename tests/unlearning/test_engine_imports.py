import ast
from pathlib import Path

import graphdel.unlearning

FORBIDDEN = ("torch_geometric", "rdkit", "PIL", "torchvision", "graphdel.data", "graphdel.encoders")


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
        src = path.read_text()
        for word in ("import torch_geometric", "import rdkit", "from rdkit", "from PIL", "import PIL"):
            assert word not in src, f"{path.name}: {word}"
