"""Executors: something that turns a list of training configs into their results.

The interface is one method, :meth:`Executor.map`, so a distributed engine can run the very
same :class:`~cnnlab.training.trainer.TrainConfig` objects that :class:`LocalExecutor` runs here.
Both must honour the resume rule: a run whose ``result.json`` exists is read, not trained again.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cnnlab.common.files import read_json, write_json

if TYPE_CHECKING:
    from cnnlab.training.trainer import RunResult, TrainConfig


class Executor(Protocol):
    def map(self, configs: list[TrainConfig]) -> list[RunResult]:
        """Run ``configs`` (complete, with ``out_name``); results in the same order."""
        ...


def run_dir(cfg: TrainConfig) -> Path:
    from cnnlab.training.rundir import run_path

    if not cfg.out_name:
        raise ValueError("executor configs need an out_name (their run folder)")
    return run_path(cfg.runs_dir, cfg.out_name)


def same_config(cfg: TrainConfig) -> bool:
    """Whether the run folder's saved config.json is ``cfg`` (up to keys that do not change
    the result): an edited recipe must re-run its runs, not read back stale results.
    """
    from cnnlab.training.trainer import RESULT_FREE_KEYS

    path = run_dir(cfg) / "config.json"
    if not path.is_file():
        return False
    saved, now = read_json(path), asdict(cfg)
    return all(saved.get(k) == v for k, v in now.items() if k not in RESULT_FREE_KEYS)


def finished(cfg: TrainConfig) -> RunResult | None:
    """The saved result of a run that already finished with this config, else ``None``."""
    from cnnlab.training.trainer import RunResult

    path = run_dir(cfg) / "result.json"
    if not path.is_file() or not same_config(cfg):
        return None
    return RunResult(**read_json(path))


def _diverged_result(cfg: TrainConfig, err: Exception) -> RunResult:
    """A run whose loss became NaN is a result of its config (ETH's too-large learning rates),
    so it is recorded, not raised: the sweep's other points still count.
    """
    from cnnlab.training.trainer import RunResult

    nan = float("nan")
    return RunResult(run_dir=str(run_dir(cfg)), iterations=int(getattr(err, "iteration", 0)),
                     train_acc=nan, test_acc=nan, train_loss=nan, test_loss=nan,
                     wall_time=0.0, train_time=0.0, time_to_target=None,
                     iteration_to_target=None, param_count=0, images_per_s=0.0,
                     stopped=f"diverged: {err}")


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): unlike wall time, it does not grow when other
    programs share the cores, so budgets measured on a busy machine stay meaningful.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _run_one(cfg: TrainConfig, threads: int,
             train_fn: Callable[[TrainConfig], RunResult] | None,
             fresh: bool = True) -> dict[str, Any]:
    """Child-process body: set threads, start or resume the run, record peak memory."""
    import torch

    from cnnlab.training.engine import TrainingDiverged

    torch.set_num_threads(threads)
    folder = run_dir(cfg)
    if folder.exists() and any(folder.iterdir()):
        # an interrupted run continues from its checkpoint; one of another config starts over
        resumable = ((folder / "checkpoints" / "latest.json").is_file() and same_config(cfg)
                     and not (folder / "result.json").is_file())
        cfg = replace(cfg, resume=resumable, overwrite=not resumable)
    if train_fn is None:
        from cnnlab.training.trainer import train as train_fn
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    try:
        result = train_fn(cfg)
    except TrainingDiverged as e:
        result = _diverged_result(cfg, e)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "config.json").is_file():
            write_json(folder / "config.json", asdict(cfg))
        write_json(folder / "result.json", asdict(result))
    info: dict[str, Any] = {"threads": threads, "pid": os.getpid(),
                            "host": socket.gethostname(), "wall_s": time.perf_counter() - t0,
                            "cpu_s": _cpu_seconds() - cpu0,
                            # timings are wall clock: a busy machine (load above its cores)
                            # slows them, and the report says so
                            "load_avg_1min": os.getloadavg()[0], "cores": os.cpu_count()}
    if fresh:
        # only in a process of its own is ru_maxrss this run's peak and not an earlier one's
        info["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_json(folder / "executor.json", info)
    return asdict(result)


#: the body of one run, for other executors (a Ray task runs it on a cluster node)
run_one = _run_one


class LocalExecutor:
    """Runs configs in parallel processes on this machine, at most ``jobs`` at a time.

    Each run gets ``torch.set_num_threads(max(1, cores // jobs))`` so parallel runs do not
    oversubscribe, and with ``fresh`` (the default) a process of its own: clean torch state and
    a peak-memory figure of its own (sheet 3 compares memory). ``fresh=False`` reuses the
    workers, saving the interpreter and torch start-up per run (``--quick`` smoke runs).
    """

    def __init__(self, jobs: int | None = None, cores: int | None = None,
                 train_fn: Callable[[TrainConfig], RunResult] | None = None,
                 log: Callable[[str], None] | None = None, fresh: bool = True):
        self.cores = cores or os.cpu_count() or 1
        self.jobs = max(1, jobs or self.cores)
        self.fresh = fresh
        self.trained = 0  # runs trained (not read back) by this executor, and their CPU time
        self.cpu_s = 0.0
        self.train_fn = train_fn
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    @property
    def threads(self) -> int:
        return max(1, self.cores // self.jobs)

    def map(self, configs: list[TrainConfig]) -> list[RunResult]:
        from cnnlab.training.trainer import RunResult

        results: list[RunResult | None] = [finished(c) for c in configs]
        todo = [i for i, r in enumerate(results) if r is None]
        for i, r in enumerate(results):
            if r is not None:
                self.log(f"  done before: {configs[i].out_name}")
        if not todo:
            return results  # type: ignore[return-value]
        threads = self.threads
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=ctx,
                                 max_tasks_per_child=1 if self.fresh else None) as pool:
            futures = {}
            for i in todo:
                cfg = configs[i]
                if cfg.threads is None:
                    cfg = replace(cfg, threads=threads)
                futures[pool.submit(_run_one, cfg, threads, self.train_fn, self.fresh)] = i
            for fut in as_completed(futures):
                i = futures[fut]
                res = RunResult(**fut.result())
                results[i] = res
                info = run_dir(configs[i]) / "executor.json"
                self.trained += 1
                self.cpu_s += read_json(info, {}).get("cpu_s", 0.0)
                self.log(f"  {configs[i].out_name}: test {res.test_acc:.2%}, "
                         f"{res.train_time:.1f} s training ({res.stopped})")
        return results  # type: ignore[return-value]
