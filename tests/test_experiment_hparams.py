"""TensorBoard HParams (cnnlab/training/hparams.py): read the event files back with
TensorBoard's own loader and protobufs and check the hyper-parameters and final metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2
from trainutil import tiny_config

from cnnlab.training.trainer import train


def _events(run_dir: Path) -> list:
    return [e for f in sorted(run_dir.glob("events.out.tfevents.*"))
            for e in EventFileLoader(str(f)).Load()]


def _hparams(run_dir: Path) -> tuple[dict, list[str], dict[str, float]]:
    hp, metric_tags, scalars = {}, [], {}
    for ev in _events(run_dir):
        for v in ev.summary.value:
            meta = v.metadata.plugin_data
            if meta.plugin_name == "hparams":
                data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
                if data.HasField("session_start_info"):
                    for k, val in data.session_start_info.hparams.items():
                        hp[k] = getattr(val, val.WhichOneof("kind"))
                if data.HasField("experiment"):
                    metric_tags = [m.name.tag for m in data.experiment.metric_infos]
            elif v.tag.startswith("hparams/"):
                scalars[v.tag] = v.tensor.float_val[0] if v.HasField("tensor") else v.simple_value
    return hp, metric_tags, scalars


@pytest.mark.parametrize("lr", [3e-3, 1e-2])
def test_a_run_logs_its_hparams_and_final_metrics(tmp_path: Path, lr: float) -> None:
    cfg = tiny_config(tmp_path, lr=lr, l2=1e-4, out_name=f"lr{lr}", tensorboard=True,
                      plots=False, spec=None, model="shallow", model_opts="filters=4")
    res = train(cfg)
    hp, tags, scalars = _hparams(Path(cfg.runs_dir) / cfg.out_name)
    assert hp["lr"] == pytest.approx(lr) and hp["l2"] == pytest.approx(1e-4)
    assert hp["model"] == "shallow" and hp["model_opts.filters"] == "4"
    assert hp["keep_prob"] == "none" and hp["seed"] == 0
    assert "threads" not in hp and "out_name" not in hp  # placement, not hyper-parameters
    assert set(tags) == set(scalars) >= {"hparams/test_acc", "hparams/train_acc"}
    assert scalars["hparams/test_acc"] == pytest.approx(res.test_acc)
    assert scalars["hparams/iterations"] == res.iterations == 30


def test_no_tensorboard_no_hparams(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tensorboard=False, plots=False)
    train(cfg)
    assert not list((Path(cfg.runs_dir) / cfg.out_name).glob("events.out.tfevents.*"))
