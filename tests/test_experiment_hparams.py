"""TensorBoard HParams (cnnlab/training/hparams.py): read the event files back with
TensorBoard's own loader, protobufs and HParams backend and check the hyper-parameters, the
order of the columns and the metrics."""

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


def _hparams(run_dir: Path) -> tuple[dict, bool, list[str]]:
    """(hparams of the session, whether an experiment summary was written, scalar tags)."""
    hp, experiment, scalars = {}, False, []
    for ev in _events(run_dir):
        for v in ev.summary.value:
            meta = v.metadata.plugin_data
            if meta.plugin_name == "hparams":
                data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
                if data.HasField("session_start_info"):
                    for k, val in data.session_start_info.hparams.items():
                        hp[k] = getattr(val, val.WhichOneof("kind"))
                experiment = experiment or data.HasField("experiment")
            elif meta.plugin_name == "scalars":
                scalars.append(v.tag)
    return hp, experiment, scalars


@pytest.mark.parametrize("lr", [3e-3, 1e-2])
def test_a_run_logs_its_hparams_and_no_single_point_scalars(tmp_path: Path, lr: float) -> None:
    cfg = tiny_config(tmp_path, lr=lr, l2=1e-4, out_name=f"lr{lr}", tensorboard=True,
                      plots=False, spec=None, model="shallow", model_opts="filters=4")
    res = train(cfg)
    hp, experiment, scalars = _hparams(Path(cfg.runs_dir) / cfg.out_name)
    assert hp["lr"] == pytest.approx(lr) and hp["l2"] == pytest.approx(1e-4)
    assert hp["model"] == "shallow" and hp["model_opts.filters"] == "4"
    assert hp["keep_prob"] == "none" and hp["seed"] == 0
    assert hp["param_count"] == res.param_count
    assert "threads" not in hp and "out_name" not in hp  # placement, not hyper-parameters
    # TensorBoard builds the experiment from all sessions (varying keys first) and reads the
    # metrics from the curves: nothing written just for the HParams tab shows as a scalar
    assert not experiment
    assert not [t for t in scalars if t.startswith("hparams/")]
    assert {"accuracy/test", "loss/test", "time/train"} <= set(scalars)


def test_tensorboard_lists_the_keys_that_vary_first(tmp_path: Path) -> None:
    from tensorboard import context
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    for seed, lr in ((0, 3e-3), (1, 1e-2)):
        train(tiny_config(tmp_path, lr=lr, seed=seed, iterations=10, out_name=f"s{seed}",
                          plots=False))
    logdir = str(tmp_path / "runs")
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    ctx = backend_context.Context(base_plugin.TBContext(
        logdir=logdir, multiplexer=mux, data_provider=MultiplexerDataProvider(mux, logdir)))
    req = context.RequestContext()
    exp = ctx.experiment_from_metadata(req, "", True, ctx.hparams_metadata(req, ""),
                                       ctx.hparams_from_data_provider(req, "", None))
    names = [h.name for h in exp.hparam_infos]
    assert names[:2] == ["lr", "seed"] and len(names) > 10
    assert [h.differs for h in exp.hparam_infos][:3] == [True, True, False]
    metrics = {m.name.tag for m in exp.metric_infos}
    assert {"accuracy/test", "accuracy/train", "loss/test", "time/train"} <= metrics


def test_no_tensorboard_no_hparams(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, tensorboard=False, plots=False)
    train(cfg)
    assert not list((Path(cfg.runs_dir) / cfg.out_name).glob("events.out.tfevents.*"))
