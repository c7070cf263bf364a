"""The executor interface: order, parallel processes, threads per run, resume, divergence.

``fake_train`` stands in for the trainer (no torch training): it writes a run folder as
``cnnlab.training.trainer.train`` does, with numbers that are a known function of the config, so the
experiment/findings/report tests can check that sentences follow the numbers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from cnnlab.experiments.executor import Executor, LocalExecutor, finished, run_dir
from cnnlab.experiments.search.run import smallest_passing
from cnnlab.training.trainer import RunResult, TrainConfig


def fake_accuracy(cfg: TrainConfig) -> float:
    """Known 'accuracy' of a config: dropout and bigger widths help, linear hurts."""
    acc = 0.90 + 0.02 * (1 - (cfg.keep_prob or 1.0)) + 0.001 * cfg.seed
    if cfg.model == "linear":
        acc -= 0.05
    if "filters=" in cfg.model_opts:
        acc = 0.80 + 0.04 * int(cfg.model_opts.split("filters=")[1].split(",")[0])
    return min(acc, 0.999)


def fake_train(cfg: TrainConfig) -> RunResult:
    import torch

    from cnnlab.common.files import write_json
    from cnnlab.training.engine import TrainingDiverged

    folder = run_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.lr >= 1.0:
        raise TrainingDiverged("loss became NaN", 3, None)
    write_json(folder / "config.json", asdict(cfg))
    write_json(folder / "env.json", {"train_examples": cfg.train_size or 60000,
                                     "input_shape": [1, 28, 28]})
    final = fake_accuracy(cfg)
    total = cfg.iterations or 100
    hist, reached = [], None
    with open(folder / "metrics.jsonl", "w") as f:
        for it in range(cfg.eval_every, total + 1, cfg.eval_every):
            acc = final * it / total
            rec = {"kind": "eval", "iteration": it, "train_acc": min(acc + 0.01, 1.0),
                   "test_acc": acc, "train_loss": 1 - acc, "test_loss": 1.1 - acc,
                   "ratio": acc / min(acc + 0.01, 1.0), "train_time": it * 0.01}
            f.write(json.dumps(rec) + "\n")
            f.write(json.dumps({"kind": "train", "iteration": it, "batch_loss": 1 - acc,
                                "regularizer": 100.0 / (1 + 1000 * cfg.l2)}) + "\n")
            hist.append(rec)
            if cfg.target_acc is not None and acc >= cfg.target_acc and reached is None:
                reached = it
                break
    last = hist[-1]
    with open(folder / "calls.log", "a") as f:
        f.write(f"{os.getpid()} {torch.get_num_threads()}\n")
    res = RunResult(run_dir=str(folder), iterations=last["iteration"],
                    train_acc=last["train_acc"], test_acc=last["test_acc"],
                    train_loss=last["train_loss"], test_loss=last["test_loss"], wall_time=0.1,
                    train_time=last["train_time"],
                    time_to_target=last["train_time"] if reached else None,
                    iteration_to_target=reached, param_count=1000, images_per_s=1.0,
                    stopped="target" if reached else "completed", history=hist)
    write_json(folder / "result.json", asdict(res))
    return res


class InlineExecutor:
    """The smallest Executor: runs ``fake_train`` in this process, honouring resume."""

    def __init__(self) -> None:
        self.calls = 0

    def map(self, configs: list[TrainConfig]) -> list[RunResult]:
        out = []
        for cfg in configs:
            done = finished(cfg)
            if done is None:
                self.calls += 1
                done = fake_train(cfg)
            out.append(done)
        return out


def _configs(tmp_path: Path, n: int, **kw) -> list[TrainConfig]:
    return [TrainConfig(out_name=f"r{i}", runs_dir=str(tmp_path), seed=i, iterations=100,
                        eval_every=50, **kw) for i in range(n)]


def test_local_executor_parallel_order_threads_and_resume(tmp_path: Path) -> None:
    ex: Executor = LocalExecutor(jobs=2, cores=4, train_fn=fake_train, log=lambda m: None)
    cfgs = _configs(tmp_path, 3)
    results = ex.map(cfgs)
    assert [Path(r.run_dir).name for r in results] == ["r0", "r1", "r2"]
    assert [r.test_acc for r in results] == [pytest.approx(fake_accuracy(c)) for c in cfgs]
    calls = [(tmp_path / f"r{i}" / "calls.log").read_text().split() for i in range(3)]
    assert {c[1] for c in calls} == {"2"}  # cores // jobs threads per run
    assert len({c[0] for c in calls}) == 3  # a fresh process per run
    for i in range(3):
        saved = json.loads((tmp_path / f"r{i}" / "config.json").read_text())
        assert saved["threads"] == 2
        assert json.loads((tmp_path / f"r{i}" / "executor.json").read_text())[
            "peak_rss_bytes"] > 0
    again = ex.map(cfgs + _configs(tmp_path, 4)[3:])
    assert [r.test_acc for r in again[:3]] == [r.test_acc for r in results]
    assert all(len((tmp_path / f"r{i}" / "calls.log").read_text().splitlines()) == 1
               for i in range(4))


def test_diverged_run_is_a_result_not_a_crash(tmp_path: Path) -> None:
    ex = LocalExecutor(jobs=1, train_fn=fake_train, log=lambda m: None)
    cfg = replace(_configs(tmp_path, 1)[0], lr=1.0)
    (res,) = ex.map([cfg])
    assert res.stopped.startswith("diverged") and math.isnan(res.test_acc)
    assert finished(cfg) is not None  # deterministic for its config: not re-run on resume


def test_inline_executor_resume_counts(tmp_path: Path) -> None:
    ex = InlineExecutor()
    ex.map(_configs(tmp_path, 2))
    ex.map(_configs(tmp_path, 3))
    assert ex.calls == 3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_smallest_passing_finds_the_threshold(k: int) -> None:
    for n in range(1, 12):
        for first in range(n + 1):
            seen: list[int] = []

            def test(idx: list[int], first: int = first, seen: list[int] = seen) -> list[bool]:
                seen.extend(idx)
                return [i >= first for i in idx]

            found, order = smallest_passing(n, test, k)
            assert found == (first if first < n else None)
            assert len(seen) == len(set(seen)) <= n
            assert order == seen


def test_a_changed_config_is_run_again_not_read_back(tmp_path: Path) -> None:
    ex = InlineExecutor()
    (first,) = ex.map(_configs(tmp_path, 1))
    (same,) = ex.map(_configs(tmp_path, 1))
    (edited,) = ex.map([replace(_configs(tmp_path, 1)[0], keep_prob=0.5)])
    assert ex.calls == 2 and same.test_acc == first.test_acc
    assert edited.test_acc == pytest.approx(fake_accuracy(replace(_configs(tmp_path, 1)[0],
                                                                  keep_prob=0.5)))


# ------------------------------------------------------------------ many models at once

SMALL = "conv3x3x4 relu maxpool2 fc16 relu fc10"  # small enough for batching to pay on a CPU


def fake_train_many(cfgs: list[TrainConfig]) -> list[RunResult]:
    """Stands in for ``train_many``: ``fake_train`` each, and a log line naming the group."""
    out = [fake_train(c) for c in cfgs]
    for c in cfgs:
        with open(run_dir(c) / "group.log", "a") as f:
            f.write(" ".join(x.out_name or "" for x in cfgs) + "\n")
    return out


def _small(tmp_path: Path, n: int, **kw) -> list[TrainConfig]:
    return [replace(c, spec=SMALL, threads=1) for c in _configs(tmp_path, n, **kw)]


def test_plan_tasks_groups_splits_for_workers_and_resumes_alone(tmp_path: Path) -> None:
    from cnnlab.experiments.executor import plan_tasks

    cfgs = _small(tmp_path, 5) + [replace(_small(tmp_path, 6)[5], augment="noise=0.1"),
                                  replace(_small(tmp_path, 7)[6], model="baseline", spec=None)]
    assert plan_tasks(cfgs, jobs=1) == [[0, 1, 2, 3, 4], [5], [6]]  # augment, a big model
    assert plan_tasks(cfgs, jobs=1, max_group=2) == [[0, 1], [2, 3], [4], [5], [6]]
    assert plan_tasks(cfgs[:5], jobs=2) == [[0, 1, 2], [3, 4]]
    assert plan_tasks(cfgs[:5], jobs=1, batch=False) == [[i] for i in range(5)]
    # an interrupted run (a checkpoint, no result) continues alone from its checkpoint
    folder = run_dir(cfgs[1])
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "latest.json").write_text("{}")
    (folder / "config.json").write_text(json.dumps(asdict(cfgs[1])))
    assert plan_tasks(cfgs[:5], jobs=1) == [[0, 2, 3, 4], [1]]


def test_local_executor_trains_groups_in_order_and_resume_holds(tmp_path: Path) -> None:
    ex = LocalExecutor(jobs=1, cores=1, train_fn=fake_train, train_many_fn=fake_train_many,
                       log=lambda m: None)
    cfgs = _small(tmp_path, 3) + [replace(_configs(tmp_path, 4)[3], model="linear")]
    results = ex.map(cfgs)
    assert [Path(r.run_dir).name for r in results] == ["r0", "r1", "r2", "r3"]
    assert [r.test_acc for r in results] == [pytest.approx(fake_accuracy(c)) for c in cfgs]
    assert ex.groups == [["r0", "r1", "r2"]] and ex.trained == 4
    for i in range(3):
        assert (tmp_path / f"r{i}" / "group.log").read_text() == "r0 r1 r2\n"
        info = json.loads((tmp_path / f"r{i}" / "executor.json").read_text())
        assert info["group"] == ["r0", "r1", "r2"]
        assert info["cpu_s"] == pytest.approx(info["group_cpu_s"] / 3)
    assert not (tmp_path / "r3" / "group.log").exists()  # the linear model trains alone
    again = LocalExecutor(jobs=1, train_fn=fake_train, train_many_fn=fake_train_many,
                          log=lambda m: None)
    assert [r.test_acc for r in again.map(cfgs)] == [r.test_acc for r in results]
    assert again.trained == 0 and again.groups == []


def tiny_train_many(cfgs: list[TrainConfig]) -> list[RunResult]:
    """The real ``train_many``; importing trainutil registers the synthetic ``tiny`` dataset
    in the worker process."""
    import trainutil  # noqa: F401

    from cnnlab.training.batched import train_many

    return train_many(cfgs)


def test_local_executor_batches_real_training(tmp_path: Path) -> None:
    from trainutil import tiny_config

    base = tiny_config(tmp_path, iterations=12, eval_every=6, plots=False, tensorboard=False)
    cfgs = [replace(base, out_name=f"s{i}", seed=i) for i in range(3)]
    ex = LocalExecutor(jobs=1, cores=1, log=lambda m: None, train_many_fn=tiny_train_many)
    results = ex.map(cfgs)
    assert ex.groups == [["s0", "s1", "s2"]]
    assert [r.iterations for r in results] == [12, 12, 12]
    assert len({r.test_loss for r in results}) == 3  # three seeds, three models
    for c in cfgs:
        assert finished(c) is not None
        assert json.loads((run_dir(c) / "env.json").read_text())["batched"]["index"] == int(
            (c.out_name or "")[1])


def broken_train(cfg: TrainConfig) -> RunResult:
    """fake_train, except that run r1 is broken (as a run whose checkpoints are all damaged)."""
    from cnnlab.common.errors import CnnlabError

    if cfg.out_name == "r1":
        raise CnnlabError("run r1: every kept checkpoint is damaged")
    return fake_train(cfg)


def test_one_broken_run_does_not_stop_the_others(tmp_path: Path) -> None:
    from cnnlab.common.errors import CnnlabError

    lines: list[str] = []
    ex = LocalExecutor(jobs=2, cores=2, train_fn=broken_train, log=lines.append, batch=False)
    cfgs = _configs(tmp_path, 3)
    with pytest.raises(CnnlabError, match=r"1 of 3 training tasks failed \(r1: run r1: every"):
        ex.map(cfgs)
    assert finished(cfgs[0]) is not None and finished(cfgs[2]) is not None  # kept
    assert finished(cfgs[1]) is None
    assert any("r1: FAILED" in line for line in lines)
    ex2 = LocalExecutor(jobs=1, train_fn=fake_train, log=lambda m: None, batch=False)
    ex2.map(cfgs)  # the same command again trains only the missing run
    assert ex2.trained == 1
