"""Data-parallel runs (graphdel/distributed.py): shards of the global batch, and a 2-process CPU (gloo) run
of training and unlearning compared with a single process on the same global batches.

Tolerances of the comparison (measured values in brackets, 2-core CPU):

* unlearning from one starting model (MultiDelete, RandomPair, NegGrad): every weight within 1e-3 of the
  single-process run [1.5e-5], every logged loss within 1e-4 [3e-6]. The two runs compute the same global
  objective; only float summation order differs.
* training: every logged loss within 1e-3 [6e-5], item/text embeddings (unit vectors) within 1e-2
  [2e-3]. Training drifts more: Adam rescales gradients that are pure float noise (a Linear bias right
  before a BatchNorm has a true gradient of 0) to steps of size lr, so those weights differ by up to
  lr x steps without changing what the model computes.
* the processes' replicas are identical (same digest), and the run folders have the same files and keys.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphdel.data.loading import prefetch
from graphdel.data.pairs import PairSet
from graphdel.distributed import ShardedSampler, _shard_rows, torchrun_command
from graphdel.models.protocol import PairBatch, TextFeatures

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker  # noqa: E402


class _RowData:
    """Stands in for PairData: the batch of some rows carries just those rows."""

    def batch(self, rows: torch.Tensor) -> PairBatch:
        return PairBatch(x=rows, text=TextFeatures(torch.zeros(len(rows), 1, 1), torch.ones(len(rows), 1, dtype=torch.bool)),
                         rows=rows)


def rowset(n: int) -> PairSet:
    """A PairSet over rows 0..n-1."""
    return PairSet(_RowData(), range(n), "rows")


def test_shards_partition_each_global_batch_in_order():
    base = rowset(21)
    single = [b.rows for b in ShardedSampler(base, 0, 1).batches(8, shuffle=True,
                                                                   generator=torch.Generator().manual_seed(3))]
    shards = [list(ShardedSampler(base, r, 2).batches(8, shuffle=True, generator=torch.Generator().manual_seed(3)))
              for r in range(2)]
    assert [len(b) for b in shards[0]] == [4, 4, 2] == [len(b) for b in shards[1]]
    for k, (a, b) in enumerate(zip(*shards)):
        # rank 0 holds the first half of the global batch, rank 1 the second half: together, the batch a
        # single process draws (the last one trimmed to an even size: 5 rows -> 4)
        assert torch.equal(torch.cat([a.rows, b.rows]), single[k][:2 * len(a)])
        assert a.shard.start == 0 and b.shard.start == len(a) and a.shard.global_size == 2 * len(a)
        assert torch.equal(a.shard.fetch(torch.arange(2 * len(a))).rows, single[k][:2 * len(a)])


def test_sharded_sample_is_the_shard_of_a_global_sample_and_keeps_generators_in_step():
    base = rowset(50)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    whole = base.sample_rows(12, g1)
    part = ShardedSampler(base, 1, 3).sample(4, g2)
    assert torch.equal(part.rows, whole[4:8])
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_a_batch_smaller_than_the_world_is_skipped_everywhere():
    assert _shard_rows(torch.arange(1), 0, 2) is None
    rows, start, size = _shard_rows(torch.arange(7), 2, 3)
    assert rows.tolist() == [4, 5] and start == 4 and size == 6


def test_sharding_refuses_a_sampler_without_rows():
    with pytest.raises(Exception, match="cannot shard"):
        ShardedSampler(object(), 0, 2)


def test_prefetch_yields_the_same_batches_and_raises_the_producers_error():
    base = rowset(30)
    plain = [b.rows for b in base.batches(7, shuffle=True, generator=torch.Generator().manual_seed(1))]
    fetched = [b.rows for b in prefetch(ShardedSampler(base, 0, 1).batches(7, shuffle=True,
                                                                           generator=torch.Generator().manual_seed(1)))]
    assert [r.tolist() for r in fetched] == [r.tolist() for r in plain]

    def broken():
        yield base.make_batch(torch.arange(2))
        raise RuntimeError("bad batch")

    with pytest.raises(RuntimeError, match="bad batch"):
        list(prefetch(broken()))


def test_nproc_reexecutes_under_torchrun_without_the_flag():
    from graphdel.cli import _without_nproc

    assert _without_nproc(["train", "--nproc", "2", "--out", "x", "--nproc=3"]) == ["train", "--out", "x"]
    cmd = torchrun_command(2, "graphdel.cli", ["train", "--out", "x"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in cmd
    assert cmd[-5:] == ["-m", "graphdel.cli", "train", "--out", "x"]
    assert not [a for a in cmd if a.startswith("--log-dir")]
    assert "--log-dir=/tmp/logs" in torchrun_command(2, "graphdel.cli", ["train"], "/tmp/logs")


def _gpus(monkeypatch, count: int) -> list:
    """Pretend ``count`` GPUs through graphdel.device (the one place CUDA is asked about) and record what
    joining a process group does instead of doing it."""
    import graphdel.device
    from graphdel import distributed

    monkeypatch.setattr(graphdel.device, "cuda_available", lambda: count > 0)
    monkeypatch.setattr(graphdel.device, "cuda_device_count", lambda: count)
    monkeypatch.setattr(graphdel.device, "cuda_device", lambda index: torch.device("cuda", index or 0))
    calls: list = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(distributed.dist, "init_process_group",
                        lambda backend, timeout: calls.append(backend))
    return calls


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_torchrun_on_gpus_joins_with_nccl_and_each_rank_computes_on_its_own_gpu(monkeypatch, device):
    from graphdel import distributed
    from graphdel.device import resolve_device

    calls = _gpus(monkeypatch, 2)
    # rank 3 of 4, two processes per machine: the second GPU of the second machine
    for name, value in {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    distributed.init_from_env(device)
    assert calls == [("set_device", torch.device("cuda", 1)), "nccl"]
    # the training and unlearning device is the same decision, made in the same place
    assert resolve_device(device) == torch.device("cuda", 1)


def test_torchrun_on_cpus_joins_with_gloo_and_refuses_gpus_it_lacks(monkeypatch):
    from graphdel import distributed
    from graphdel.device import check_processes, process_group
    from graphdel.errors import ConfigError

    calls = _gpus(monkeypatch, 0)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(name, value)
    distributed.init_from_env("auto")
    assert calls == ["gloo"]
    assert process_group("cpu") == ("gloo", torch.device("cpu"))
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        process_group("cuda")
    _gpus(monkeypatch, 1)
    with pytest.raises(ConfigError, match="local rank 1 has no GPU: 1 CUDA device visible"):
        process_group("cuda")  # two processes on a machine with one GPU
    with pytest.raises(ConfigError, match="each process computes on the GPU of its local rank"):
        process_group("cuda:0")
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # the launching process, before torchrun starts any
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="--nproc 2 on CUDA needs 2 GPUs"):
        check_processes("cuda", 2)
    with pytest.raises(ConfigError, match="--device cuda:0 with --nproc 2: each process computes on the GPU"):
        check_processes("cuda:0", 2)
    check_processes("cpu", 2)


# ------------------------------------------------------------------------------ 2 processes vs 1
@pytest.fixture(scope="module")
def mini_csv(tmp_path_factory) -> Path:
    """40 training, 8 validation and 8 test molecules of the embedded corpus (short SMILES)."""
    want, seen = {"train": 40, "val": 8, "test": 8}, {"train": 0, "val": 0, "test": 0}
    path = tmp_path_factory.mktemp("ddp") / "mini.csv"
    with gzip.open(ROOT / "data" / "drugs" / "drugs.tsv.gz", "rt", encoding="utf-8") as f, \
            path.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["id", "smiles", "text", "split"])
        for row in csv.DictReader(f, delimiter="\t"):
            if len(row["smiles"]) <= 40 and seen[row["split"]] < want[row["split"]]:
                seen[row["split"]] += 1
                w.writerow([row["mol_id"], row["smiles"], row["text"][:200], row["split"]])
    return path


def _keys(obj, prefix=""):
    """Every key path of a JSON object (lists: the keys of their dict items)."""
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out |= {f"{prefix}{k}"} | _keys(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for v in obj:
            out |= _keys(v, prefix)
    return out


def _state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _losses(folder: Path) -> list[dict[str, float]]:
    keys = ("loss", "contrastive", "matching", "md", "mkr", "ukr", "random_pair_loss", "retain_loss", "forget_loss")
    return [{k: r[k] for k in keys if k in r} for r in json.loads((folder / "log.json").read_text())]


def _stages(folder: Path) -> list[str | None]:
    return [r.get("stage") for r in json.loads((folder / "log.json").read_text())]


METHODS = ["multidelete", "randompair", "neggrad"]


def test_two_gloo_processes_match_one_process_on_the_same_global_batches(mini_csv, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    ddp_worker.run(str(mini_csv), str(single), None, METHODS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           f"--log-dir={tmp_path / 'torchrun'}", str(Path(ddp_worker.__file__)), str(mini_csv), str(multi),
           str(single / "original"), *METHODS]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # every process ends with the same model, and only rank 0 wrote run folders
    ranks = [json.loads((multi / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    for run in ["original", *METHODS]:
        a, b = single / run, multi / run
        # identical format: same files, same keys everywhere
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for name in ("config.json", "metrics.json"):
            assert _keys(json.loads((a / name).read_text())) == _keys(json.loads((b / name).read_text()))
        la, lb = _losses(a), _losses(b)
        assert len(la) == len(lb) and [r.keys() for r in la] == [r.keys() for r in lb]
        tol = 1e-3 if run == "original" else 1e-4
        for ra, rb, stage in zip(la, lb, _stages(a)):
            # the fusion stage runs whole on every process, on encoders that already drifted within the
            # main loop's tolerance: its loss agrees only to the drift's effect
            t = 2e-2 if stage == "fusion" else tol
            for k in ra:
                assert ra[k] == pytest.approx(rb[k], abs=t, rel=t), (run, k, ra, rb)
        sa, sb = _state(a), _state(b)
        assert sa.keys() == sb.keys()
        if run != "original":
            worst = max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)
            assert worst < 1e-3, (run, worst)

    # training: what the two models compute agrees (see the module docstring for why weights drift more)
    from graphdel import api
    from graphdel.runs import Run

    ra, rb = Run.load(single / "original"), Run.load(multi / "original")
    prepared = api.load_run_data(ra, progress=False)
    batch = prepared.data.batch(torch.arange(len(prepared.corpus)))
    with torch.no_grad():
        for encode, arg in (("encode_x", batch.x), ("encode_text", batch.text)):
            diff = (getattr(ra.model, encode)(arg) - getattr(rb.model, encode)(arg)).abs().max()
            assert float(diff) < 1e-2, (encode, float(diff))


@pytest.mark.slow  # two torchrun launches: 60 to 75 s on the busy 2-core machine
def test_cli_train_and_forget_with_nproc_write_the_single_process_layout(mini_csv, tmp_path):
    # a temporary directory of its own: what the launches leave in it is checked at the end
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    graphdel = [sys.executable, "-m", "graphdel.cli"]
    train = subprocess.run([*graphdel, "train", "--data", f"csv:{mini_csv}", "--quick", "--epochs", "1",
                            "--device", "cpu", "--nproc", "2", "--json", "--out", str(tmp_path / "run")],
                           env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    # the summary is printed once, by rank 0, and is all of stdout (the epoch lines go to stderr)
    assert json.loads(train.stdout)["run"] == str(tmp_path / "run")
    forget = subprocess.run([*graphdel, "forget", "--model", str(tmp_path / "run"), "--forget-random", "4",
                             "--method", "multidelete", "--set", "epochs=1", "--nproc=2", "--json",
                             "--out", str(tmp_path / "forgot")], env=env, capture_output=True, text=True, timeout=600)
    assert forget.returncode == 0, forget.stderr[-3000:]
    assert json.loads(forget.stdout)["deleted_pairs"] == 4
    assert {p.name for p in (tmp_path / "forgot").iterdir()} >= {
        "model.safetensors", "config.json", "metrics.json", "log.json", "history.json", "request.json",
        "certificate.json"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    # nor torchrun's log folders (PyG's generated propagate modules land there too, and stay: PyG's own)
    assert not [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("torchelastic_")]
