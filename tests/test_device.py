"""graphdel/device.py, the one place device decisions are made, and every command on a GPU.

* The resolver (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and :func:`~graphdel.device.placed`.
* Without CUDA, ``--device cuda`` is one line from every command that takes ``--device`` and a
  :class:`~graphdel.errors.ConfigError` from the API, before any work.
* On a stand-in GPU (tests/standin_device.py; no GPU needed) a tiny molecule model trains with validation,
  unlearns with MultiDelete and Retrain, is evaluated (probes, the membership attack, LiRA shadows),
  reported and its certificate verified: no tensor meets a model on another device, every scoring pass
  runs on the device asked for, models are back on the CPU at rest, and every number equals the CPU
  run's. Slow (``-m slow``): the demo with every method, and the knowledge-graph and image demos.
* On a real GPU (skipped without CUDA): train, forget and evaluate end to end.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

import graphdel as gd
import graphdel.api as api
import graphdel.device
from graphdel.cli import main
from graphdel.device import check_device_name, is_device_name, model_device, placed, resolve_device
from graphdel.errors import ConfigError
from graphdel.evaluation.suite import SuiteConfig
from graphdel.training.loop import TrainConfig
from tests.conftest import TINY_MOLECULES
from tests.standin_device import STANDIN, DeviceMismatch, assert_at_rest, standin_gpu

cuda = pytest.mark.cuda  # skipped without a CUDA device (tests/conftest.py); bench/gpu.sh runs them
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")

#: The tiny recipe of these tests (two epochs of batches of four; validation every epoch).
RECIPE = TrainConfig(epochs=2, batch_size=4)


def _fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(graphdel.device, "cuda_available", lambda: count > 0)
    monkeypatch.setattr(graphdel.device, "cuda_device_count", lambda: count)
    monkeypatch.setattr(graphdel.device, "cuda_device", lambda index: torch.device("cuda", index or 0))


# ------------------------------------------------------------------------------------ the resolver
def test_device_names():
    assert all(is_device_name(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"))
    assert not any(is_device_name(n) for n in ("gpu", "", "cuda:", "cuda:x", "CPU", "mps", None, 0))
    with pytest.raises(ConfigError, match=r"--device 'gpu' is not a device; give auto, cpu, cuda or cuda:N"):
        check_device_name("gpu")


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"--device {name} was asked for but no CUDA device"):
            resolve_device(name)


def test_with_gpus_cuda_carries_its_index_and_a_missing_gpu_is_refused(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="--device cuda:2 has no GPU: 2 CUDA devices visible"):
        resolve_device("cuda:2")


def test_placed_moves_a_model_for_the_block_and_back_even_on_an_error(monkeypatch):
    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    with placed(model, None), placed(model, "cpu"):
        assert model_device(model) == torch.device("cpu")
    with standin_gpu(monkeypatch), pytest.raises(RuntimeError, match="inside"):
        with placed(model, "cuda"):
            assert model_device(model) == STANDIN
            raise RuntimeError("inside")
    assert_at_rest(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")  # no parameter, no buffer


def test_the_standin_refuses_what_cuda_refuses(monkeypatch):
    with standin_gpu(monkeypatch):
        x = torch.ones(3, 2).to(STANDIN)
        with pytest.raises(DeviceMismatch, match="same device"):
            x + torch.ones(3, 2)  # noqa: B018
        with pytest.raises(DeviceMismatch, match="to numpy"):
            x.numpy()
        with pytest.raises(DeviceMismatch, match="CPU random generator"):
            torch.rand(2, device=STANDIN, generator=torch.Generator().manual_seed(0))
        with pytest.raises(DeviceMismatch, match="same device"):
            torch.arange(3)[torch.tensor([0, 1]).to(STANDIN)]  # a CPU tensor, GPU indices
        # what CUDA accepts: CPU scalars, CPU indices, copies both ways
        assert (x * torch.tensor(2.0)).cpu().tolist() == [[2.0, 2.0]] * 3
        assert x[torch.tensor([0, 2])].cpu().shape == (2, 2)
        x.copy_(torch.zeros(3, 2))
        assert float(x.sum()) == 0.0 and type(x.cpu()) is torch.Tensor


# --------------------------------------------------------------------- CUDA asked for, none here
@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    """tests/conftest.py's 12 molecules as a CSV source shared by the module."""
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "smiles", "text", "split"])
        w.writerows([name.replace(" ", "_"), smiles, text, split]
                    for name, smiles, text, split in TINY_MOLECULES)
    return path


@pytest.fixture(scope="module")
def cpu_run(tiny_source, tmp_path_factory):
    """One tiny run trained on the CPU (never modified)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHDEL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return gd.train(f"csv:{tiny_source}", replace(RECIPE, epochs=1, device="cpu"), quick=True,
                        out=tmp_path_factory.mktemp("runs") / "cpu", progress=False)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("graphdel: warning:")]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("graphdel: error: "), err
    return lines[0]


@no_cuda
@pytest.mark.parametrize("command", ["train", "forget", "evaluate", "report", "verify", "audit", "demo",
                                     "train --nproc 2"])
def test_every_command_says_in_one_line_that_there_is_no_gpu(command, tiny_source, cpu_run, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = {"train": ["train", "--data", f"csv:{tiny_source}", "--quick", "--out", out],
            "forget": ["forget", "--model", str(cpu_run.path), "--forget-random", "1", "--out", out],
            "evaluate": ["evaluate", "--model", str(cpu_run.path), "--out", out + ".json"],
            "report": ["report", str(cpu_run.path), "--out", out],
            "verify": ["verify", str(tmp_path / "certificate.json")],
            "audit": ["audit", "--model", str(cpu_run.path), "--forget-random", "1", "--out", out],
            "demo": ["demo", "--quick", "--data", f"csv:{tiny_source}", "--out", out],
            "train --nproc 2": ["train", "--data", f"csv:{tiny_source}", "--nproc", "2", "--out", out],
            }[command]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "--device cuda was asked for but no CUDA device is available" in _one_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.json").exists()
    assert main([*argv, "--device", "gpu"]) == 2
    assert _one_line(capsys) == ("graphdel: error: --device 'gpu' is not a device; "
                                 "give auto, cpu, cuda or cuda:N")


@no_cuda
def test_the_api_refuses_cuda_without_a_gpu_before_any_work(tiny_source, cpu_run, tmp_path):
    from graphdel.evaluation.certificate import verify_certificate
    from graphdel.unlearning import UnlearningContext, unlearn

    no_gpu = "no CUDA device is available"
    with pytest.raises(ConfigError, match=no_gpu):
        gd.train(f"csv:{tiny_source}", replace(RECIPE, device="cuda"), out=tmp_path / "r")
    with pytest.raises(ConfigError, match=no_gpu):
        gd.forget(cpu_run, None, device="cuda", out=tmp_path / "f")
    with pytest.raises(ConfigError, match=no_gpu):
        gd.evaluate(cpu_run, config=SuiteConfig(device="cuda"))
    with pytest.raises(ConfigError, match=no_gpu):
        api.evaluate_retrieval(cpu_run, device="cuda")
    with pytest.raises(ConfigError, match=no_gpu):
        verify_certificate(tmp_path / "certificate.json", device="cuda")
    with pytest.raises(ConfigError, match=no_gpu):
        unlearn(cpu_run.model, UnlearningContext(forget=None, retain=None, device="cuda"), "retrain")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ a stand-in GPU
def _scoring_devices(monkeypatch) -> list[torch.device]:
    """Record the device of the model at every embedding pass (graphdel.evaluation.embed: every score,
    validation, selection, metric and attack signal goes through it)."""
    import graphdel.evaluation.embed as embed

    seen: list[torch.device] = []
    real = embed._embed

    def spy(model, *args, **kwargs):
        seen.append(model_device(model))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(embed, "_embed", spy)
    return seen


def _train_forget_evaluate(source: str, device: str, out):
    """The tiny story on ``device``: train with validation, MultiDelete and Retrain of 2 pairs, the suite
    with probes, the attack and 4 LiRA shadows, the report and its certificates."""
    run = gd.train(source, replace(RECIPE, device=device), quick=True, out=out / "original", progress=False)
    request = gd.make_request(run, random_amount=2, by="pair", seed=0)
    forgotten = gd.forget(run, request, method="multidelete", device=device, out=out / "multidelete",
                          progress=False)
    retrained = gd.forget(run, request, method="retrain", device=device, out=out / "retrain", progress=False)
    audit = gd.evaluate(forgotten, original=run, reference=retrained,
                        config=SuiteConfig(device=device, lira_shadows=4, lira_epochs=1))
    audit.save(out / "report")
    return run, forgotten, retrained, audit


def _numbers(metrics: dict) -> dict:
    """``metrics`` less what measures the machine (times, memory, paths)."""
    if isinstance(metrics, dict):
        return {k: _numbers(v) for k, v in metrics.items()
                if not (k in ("path", "wall_time_s", "seconds", "speedup_vs_retrain") or "mem" in k)}
    return metrics


def test_train_forget_evaluate_and_report_compute_on_the_device_asked_for(tiny_source, tmp_path, monkeypatch):
    """The device story, checked without a GPU: fails on a model and a batch on different devices anywhere
    on the way (DeviceMismatch), on a scoring pass left on the CPU, on a model not back at rest."""
    from graphdel.evaluation.certificate import verify_certificate
    from graphdel.evaluation.report import to_jsonable

    source = f"csv:{tiny_source}"
    scoring = _scoring_devices(monkeypatch)
    with standin_gpu(monkeypatch) as gpu:
        run, forgotten, retrained, audit = _train_forget_evaluate(source, "cuda", tmp_path / "gpu")
        trained_ops = gpu.ops
        verified = verify_certificate(tmp_path / "gpu" / "report" / "certificates" / "multidelete.json",
                                      device="cuda")
    assert trained_ops > 0 and verified.status == "holds", verified.failed
    assert scoring and set(scoring) == {STANDIN}, f"scored on {set(scoring)}"
    for r in (run, forgotten, retrained):
        assert_at_rest(r.model)
        assert_at_rest(gd.Run.load(r.path).model)  # written as CPU tensors
    # the stand-in computes with the CPU's kernels: every number is the CPU run's
    cpu = _train_forget_evaluate(source, "cpu", tmp_path / "cpu")
    for on_gpu, on_cpu in zip((run, forgotten, retrained), cpu[:3]):
        assert _numbers(on_gpu.metrics) == _numbers(on_cpu.metrics)
    assert _numbers(to_jsonable(audit.results["models"])) == _numbers(to_jsonable(cpu[3].results["models"]))


def test_the_frozen_text_pass_runs_on_the_gpu_when_there_is_one(monkeypatch):
    """encode_frozen with ``auto`` computes on the (stand-in) GPU, batches and encoder together, and gives
    the CPU's features; ``cpu`` keeps it on the CPU."""
    from graphdel.encoders.text import TextEncoderConfig, encode_frozen

    texts = [text for _, _, text, _ in TINY_MOLECULES[:5]]
    config = TextEncoderConfig(fusion_tokens=8)
    on_cpu = encode_frozen(texts, config, use_cache=False, progress=False, device="cpu")
    with standin_gpu(monkeypatch) as gpu:
        # loading the encoder counts some operations (transformers builds it on `meta`, the stand-in's type)
        encode_frozen(texts, config, use_cache=False, progress=False, device="cpu")
        loading = gpu.ops
        on_gpu = encode_frozen(texts, config, use_cache=False, progress=False)
        # the call loads the encoder again, then runs its layers there: 632 operations beyond the
        # loading's 628 (transformers 5.25), 626 beyond 626 (5.0); on the CPU, none
        layers = gpu.ops - 2 * loading
        assert layers > loading // 2, (loading, layers)
    for a in (on_gpu.hidden, on_gpu.mask, on_gpu.pooled):
        assert type(a) is torch.Tensor and a.device.type == "cpu"
    # the same up to rounding: under the stand-in's dispatch mode attention takes another CPU kernel
    assert torch.equal(on_gpu.mask, on_cpu.mask)
    torch.testing.assert_close(on_gpu.pooled, on_cpu.pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(on_gpu.hidden, on_cpu.hidden, atol=2e-3, rtol=0)  # float16


@pytest.mark.slow  # every method, three modalities: about 50 s on the 2-core machine
def test_the_demos_of_every_modality_run_on_a_standin_gpu(tiny_source, tmp_path, monkeypatch, capsys):
    from graphdel.demo import DemoConfig, run_demo
    from tests.data.test_images import write_imagefolder
    from tests.data.test_kg_view import write_tiny_kg

    kg = write_tiny_kg(tmp_path / "kg")
    images = tmp_path / "images"
    write_imagefolder(images, n=24)
    scoring = _scoring_devices(monkeypatch)
    with standin_gpu(monkeypatch):
        assert main(["demo", "--quick", "--data", f"csv:{tiny_source}", "--device", "cuda", "--out",
                     str(tmp_path / "demo"), "--lira-shadows", "4", "--lira-epochs", "1"]) == 0
        demo = json.loads((tmp_path / "demo" / "demo.json").read_text())
        ran = set(demo["methods"]) - set(demo["skipped"])
        assert ran >= {"multidelete", "neggrad", "scrub", "salun", "dtd"}
        assert main(["verify", str(tmp_path / "demo" / "certificates" / "multidelete.json"), "--device",
                     "cuda"]) == 0
        assert main(["evaluate", "--model", str(tmp_path / "demo" / "runs" / "multidelete"), "--device",
                     "cuda", "--out", str(tmp_path / "evaluate.json")]) == 0
        for data, extra in ((f"kg:{kg}", {"by": "triple", "fraction": 0.1}), (f"imagefolder:{images}", {})):
            out = tmp_path / f"{data.split(':')[0]}-demo"
            run_demo(DemoConfig(out=out, data=data, quick=True, device="cuda", progress=False, **extra),
                     log=lambda line: None)
            assert (out / "report.html").is_file()
    assert set(scoring) == {STANDIN}
    assert "gnndelete" not in json.loads((tmp_path / "kg-demo" / "demo.json").read_text())["skipped"]


# ------------------------------------------------------------------------------------ a real GPU
@cuda
def test_train_forget_evaluate_end_to_end_on_cuda(tiny_source, tmp_path):
    from graphdel.evaluation.certificate import verify_certificate

    run, forgotten, retrained, audit = _train_forget_evaluate(f"csv:{tiny_source}", "cuda", tmp_path)
    for r in (run, forgotten, retrained):
        assert_at_rest(r.model)
        assert 0 < r.metrics["splits"]["test"]["pool64"]["g2t_mrr"] <= 1
    assert "lira_auc" in audit.results["models"]["multidelete"]["membership"]
    # GPU scatter-adds are not bit-deterministic (docs/RELIABILITY.md): the re-evaluation may differ in the
    # last digits, hence a tolerance above the default 1e-6
    assert verify_certificate(tmp_path / "report" / "certificates" / "multidelete.json", tolerance=1e-4,
                              device="cuda").status == "holds"
    assert torch.cuda.max_memory_allocated() > 0


@cuda
def test_cuda_n_names_one_gpu_and_a_model_comes_back_to_the_cpu():
    device = resolve_device(f"cuda:{torch.cuda.device_count() - 1}")
    model = torch.nn.Linear(4, 2)
    with placed(model, device):
        assert model_device(model) == device
        assert model(torch.ones(1, 4, device=device)).device == device
    assert_at_rest(model)

