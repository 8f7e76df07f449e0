import json

import pytest
import torch

import graphdel as gd
from graphdel.api import prepare, quick_configs
from graphdel.errors import RunError
from graphdel.models.joint import build_model
from graphdel.training.loop import TrainConfig, TrainingDivergedError, train_model


def test_train_writes_a_finished_run(tiny_csv, tmp_path):
    run = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "run", quick=True,
                   progress=False)
    for name in ("config.json", "model.safetensors", "model_config.json", "metrics.json", "log.json"):
        assert (tmp_path / "run" / name).is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        assert set(metrics["splits"][split]["g2t"]) == {"mrr", "hits@1", "hits@10"}
        assert set(metrics["splits"][split]["pool64"]) == {"g2t_mrr", "t2g_mrr", "g2t_acc", "t2g_acc", "k",
                                                           "chance_mrr", "g2t_mrr_se"}
    # 12 molecules: the distractor set (calibration + val) holds 3 pairs of 3 molecules; a query of one of
    # them has 2 distractors of other molecules, so every split is ranked among k = 3
    assert {metrics["splits"][s]["pool64"]["k"] for s in ("train", "val", "test")} == {3}
    assert run.config["data"]["source"] == f"csv:{tiny_csv}"
    assert len(run.config["calibration_ids"]) == 1  # 3% of 8 training molecules, at least one
    with pytest.raises(RunError, match="is the run folder .*a run is never replaced"):
        gd.train(f"csv:{tiny_csv}", out=tmp_path / "run", quick=True, progress=False)


def test_exclude_keeps_ids_out_of_every_batch(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    excluded = ["aspirin#0", "caffeine#0"]
    prepared = prepare(data_cfg, model_cfg, exclude=excluded, progress=False)
    excluded_rows = {prepared.corpus.index_of(p) for p in excluded}
    seen = set()
    model = build_model(model_cfg)
    original_loss_terms = model.loss_terms

    def spy(batch, generator=None):
        seen.update(batch.rows.tolist())
        return original_loss_terms(batch, generator)

    model.loss_terms = spy
    train_model(model, prepared.sets()["train"], None, TrainConfig(epochs=3, batch_size=2), progress=False)
    assert seen and not (seen & excluded_rows)
    assert not (seen & set(prepared.calibration))


def test_unknown_excluded_id_is_refused(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    with pytest.raises(Exception, match="names 1 pair ids not in the data"):
        prepare(data_cfg, model_cfg, exclude=["no-such-pair"], progress=False)


def test_nan_loss_stops_training(tiny_csv):
    data_cfg, model_cfg, _ = quick_configs(f"csv:{tiny_csv}")
    prepared = prepare(data_cfg, model_cfg, progress=False)
    model = build_model(model_cfg)
    with torch.no_grad():
        model.logit_scale.fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="non-finite"):
        train_model(model, prepared.sets()["train"], None, TrainConfig(epochs=1, batch_size=4), progress=False)


def test_same_seed_gives_identical_metrics(tiny_csv, tmp_path):
    a = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "a", quick=True, progress=False)
    b = gd.train(f"csv:{tiny_csv}", TrainConfig(epochs=2, batch_size=4), out=tmp_path / "b", quick=True, progress=False)
    assert a.metrics["splits"] == b.metrics["splits"]


def test_unknown_lr_schedule_is_refused_naming_the_key():
    from graphdel.errors import ConfigError

    with pytest.raises(ConfigError, match="'lr_schedule'"):
        TrainConfig(lr_schedule="linear")
