"""Executors: something that turns a list of training configs into their results.

The interface is one method, :meth:`Executor.map`, so a distributed engine can run the very
same :class:`~cnnlab.training.trainer.TrainConfig` objects that :class:`LocalExecutor` runs here.
Both must honour the resume rule: a run whose ``result.json`` exists is read, not trained again.
:class:`LocalExecutor` also trains compatible runs together (:func:`plan_tasks`): fresh runs
that share an architecture and differ in seed or hyper-parameters go to one worker as a group
(:func:`run_group`, :func:`cnnlab.training.batched.train_many`); interrupted runs resume alone.
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json, write_json
from cnnlab.experiments.runlines import FailureLog, failure_summary, held_out, run_label
from cnnlab.experiments.workers import RunBusy, in_run, run_locks, stop_workers, worker_init

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
    """The saved result of a run that already finished with this config, else ``None``; a
    damaged ``result.json`` is one :class:`CnnlabError` naming it (:func:`read_result`)."""
    from cnnlab.experiments.results import read_result

    path = run_dir(cfg) / "result.json"
    if not path.is_file() or not same_config(cfg):
        return None
    try:
        return read_result(path)
    except CnnlabError as e:
        raise CnnlabError(f"{e}; delete it to train that run again") from None


def finished_all(configs: list[TrainConfig], log: Callable[[str], None]
                 ) -> tuple[list[RunResult | None], dict[int, str]]:
    """:func:`finished` of each config, and one error per damaged ``result.json`` (logged;
    the caller trains the others and reports these at the end: one broken file must not
    stop the whole experiment)."""
    results: list[RunResult | None] = []
    errors: dict[int, str] = {}
    for i, c in enumerate(configs):
        try:
            results.append(finished(c))
        except CnnlabError as e:
            results.append(None)
            errors[i] = f"{c.out_name}: {e}"
            log(f"  {c.out_name}: FAILED ({e}); the other runs go on")
            continue
        if results[-1] is not None:
            log(f"  done before: {c.out_name}")
    return results, errors


def _diverged_result(cfg: TrainConfig, err: Exception) -> RunResult:
    """A run whose loss became NaN is a result of its config (ETH's too-large learning rates),
    so it is recorded, not raised: the sweep's other points still count.
    """
    from cnnlab.training.batched import diverged_result

    return diverged_result(run_dir(cfg), err)


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): unlike wall time, it does not grow when other
    programs share the cores, so budgets measured on a busy machine stay meaningful.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _run_one(cfg: TrainConfig, threads: int,
             train_fn: Callable[[TrainConfig], RunResult] | None,
             fresh: bool = True, wait: bool = False) -> dict[str, Any]:
    """Child-process body: set threads, start or resume the run, record peak memory.

    The run's lock (:func:`~cnnlab.experiments.workers.run_locks`) is held throughout: a run
    that another process is training raises :class:`~cnnlab.experiments.workers.RunBusy`
    (or, with ``wait``, is waited for and then read back or resumed)."""
    import torch

    from cnnlab.training.engine import TrainingDiverged

    torch.set_num_threads(threads)
    folder = run_dir(cfg)
    with in_run(), run_locks([folder], wait):
        done = finished(cfg)  # by another process, while this one waited for the lock
        if done is not None:
            return asdict(done)
        cfg = prepared(cfg)
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
        _write_info(folder, threads, time.perf_counter() - t0, _cpu_seconds() - cpu0, fresh)
    return asdict(result)


def _write_info(folder: Path, threads: int, wall_s: float, cpu_s: float, fresh: bool,
                **extra: Any) -> None:
    info: dict[str, Any] = {"threads": threads, "pid": os.getpid(),
                            "host": socket.gethostname(), "wall_s": wall_s, "cpu_s": cpu_s,
                            # timings are wall clock: a busy machine (load above its cores)
                            # slows them, and the report says so
                            "load_avg_1min": os.getloadavg()[0], "cores": os.cpu_count(),
                            **extra}
    if fresh:
        # only in a process of its own is ru_maxrss this run's peak and not an earlier one's
        # (a group's runs share one process: its peak is the group's)
        info["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    write_json(folder / "executor.json", info)


def resumable(cfg: TrainConfig) -> bool:
    """Whether ``cfg``'s run folder holds an interrupted run of this config (a checkpoint and
    no result): it continues from the checkpoint, with ``train()``."""
    folder = run_dir(cfg)
    return ((folder / "checkpoints" / "latest.json").is_file() and same_config(cfg)
            and not (folder / "result.json").is_file())


def prepared(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` set to resume its interrupted run, or to replace a folder of another config."""
    folder = run_dir(cfg)
    if folder.exists() and any(folder.iterdir()):
        # an interrupted run continues from its checkpoint; one of another config starts over
        again = resumable(cfg)
        cfg = replace(cfg, resume=again, overwrite=not again)
    return cfg


def _run_group(cfgs: list[TrainConfig], threads: int,
               train_many_fn: Callable[[list[TrainConfig]], list[RunResult]] | None,
               fresh: bool = True,
               train_fn: Callable[[TrainConfig], RunResult] | None = None) -> list[dict[str, Any]]:
    """Child-process body of a group: configs of one ``batch_key`` trained together by
    ``train_many`` (fresh runs only: an interrupted one resumes alone, in :func:`run_one`).

    Each run's ``executor.json`` holds its share of the group's time (``wall_s``, ``cpu_s``
    divided by the group size) and the group itself (``group_wall_s``, ``group_cpu_s``,
    ``group``). Should the group fail as a whole, its runs are trained one by one instead.
    """
    import torch

    torch.set_num_threads(threads)
    with in_run(), run_locks([run_dir(c) for c in cfgs]):
        cfgs = [prepared(c) for c in cfgs]
        if train_many_fn is None:
            from cnnlab.training.batched import train_many as train_many_fn
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        try:
            results = [asdict(r) for r in train_many_fn(cfgs)]
        except Exception as err:  # noqa: BLE001 - a group error must not lose its runs
            print(f"  group of {len(cfgs)} failed ({type(err).__name__}: {err}); training "
                  "its runs one by one", file=sys.stderr, flush=True)
            failed = True
        else:
            failed = False
            wall, cpu, k = time.perf_counter() - t0, _cpu_seconds() - cpu0, len(cfgs)
            names = [c.out_name for c in cfgs]
            for c in cfgs:
                _write_info(run_dir(c), threads, wall / k, cpu / k, fresh, group=names,
                            group_wall_s=wall, group_cpu_s=cpu)
    if failed:  # the locks are free again: each run takes its own
        return [_run_one(c, threads, train_fn, fresh) for c in cfgs]
    return results


#: the body of a group of runs, for other executors
run_group = _run_group


def plan_tasks(configs: list[TrainConfig], jobs: int, batch: bool = True,
               max_group: int = 8) -> list[list[int]]:
    """Split the indices of ``configs`` into tasks: groups that ``train_many`` trains together
    (equal :func:`~cnnlab.training.batched.batch_key`, where batching pays,
    :func:`~cnnlab.training.batched.batching_pays`) and single runs. Interrupted runs resume
    alone. While there are fewer tasks than ``jobs``, the largest group is halved so that
    every worker has one.
    """
    from cnnlab.training.batched import batching_pays, group_configs

    if not batch:
        return [[i] for i in range(len(configs))]
    pool = [i for i, c in enumerate(configs) if not resumable(c) and batching_pays(c)]
    chosen = set(pool)
    tasks = [[i] for i in range(len(configs)) if i not in chosen]
    tasks += [[pool[j] for j in g] for g in group_configs([configs[i] for i in pool], max_group)]
    while len(tasks) < jobs:
        big = max(tasks, key=len)
        if len(big) < 2:
            break
        tasks.remove(big)
        half = (len(big) + 1) // 2
        tasks += [big[:half], big[half:]]
    return sorted(tasks)


#: the body of one run, for other executors (a Ray task runs it on a cluster node)
run_one = _run_one


class LocalExecutor:
    """Runs configs in parallel processes on this machine, at most ``jobs`` at a time.

    Each run gets ``torch.set_num_threads(max(1, cores // jobs))`` so parallel runs do not
    oversubscribe, and with ``fresh`` (the default) a process of its own: clean torch state and
    a peak-memory figure of its own (sheet 3 compares memory). ``fresh=False`` reuses the
    workers, saving the interpreter and torch start-up per run (``--quick`` smoke runs).

    With ``batch`` (the default unless a stand-in ``train_fn`` comes without a
    ``train_many_fn``), runs that share an architecture and differ only in seed or
    hyper-parameters train together, up to ``max_group`` in one worker
    (:func:`plan_tasks`, :func:`~cnnlab.training.batched.train_many`): the same weights, to
    float rounding, in less time where batching pays.
    """

    def __init__(self, jobs: int | None = None, cores: int | None = None,
                 train_fn: Callable[[TrainConfig], RunResult] | None = None,
                 log: Callable[[str], None] | None = None, fresh: bool = True,
                 batch: bool | None = None,
                 train_many_fn: Callable[[list[TrainConfig]], list[RunResult]] | None = None,
                 max_group: int = 8):
        self.cores = cores or os.cpu_count() or 1
        self.jobs = max(1, jobs or self.cores)
        self.fresh = fresh
        self.trained = 0  # runs trained (not read back) by this executor, and their CPU time
        self.cpu_s = 0.0
        self.train_fn = train_fn
        self.train_many_fn = train_many_fn
        # a stand-in train_fn cannot be batched unless a stand-in train_many_fn comes with it
        self.batch = (train_fn is None or train_many_fn is not None) if batch is None else batch
        self.max_group = max_group
        self.groups: list[list[str]] = []  # the groups trained together, by out_name
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.names: dict[str, list[str]] = {}  # out_name -> the jobs' names, for the console

    def _record(self, cfg: TrainConfig, results: list, i: int, res_dict: dict[str, Any]) -> None:
        from cnnlab.training.trainer import RunResult

        res = RunResult(**res_dict)
        results[i] = res
        self.trained += 1
        self.cpu_s += read_json(run_dir(cfg) / "executor.json", {}).get("cpu_s", 0.0)
        self.log(f"  {run_label(self.names, cfg)}: {held_out(cfg)} {res.test_acc:.2%}, "
                 f"{res.train_time:.1f} s training ({res.stopped})")

    @property
    def threads(self) -> int:
        return max(1, self.cores // self.jobs)

    def map(self, configs: list[TrainConfig]) -> list[RunResult]:

        results, broken = finished_all(configs, self.log)
        todo = [i for i, r in enumerate(results) if r is None and i not in broken]
        if not todo and not broken:
            return results  # type: ignore[return-value]
        if not todo:
            raise CnnlabError(f"{len(broken)} of {len(broken)} runs failed ("
                              f"{'; '.join(list(broken.values())[:3])}); the other runs are "
                              "saved")
        threads = self.threads
        todo_cfgs = [configs[i] if configs[i].threads is not None
                     else replace(configs[i], threads=threads) for i in todo]
        tasks = [[todo[j] for j in t] for t in plan_tasks(todo_cfgs, self.jobs, self.batch,
                                                          self.max_group)]
        cfg_of = dict(zip(todo, todo_cfgs, strict=True))
        ctx = get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(tasks)), mp_context=ctx,
                                   max_tasks_per_child=1 if self.fresh else None,
                                   initializer=worker_init, initargs=(stop := ctx.Event(),))
        errors: list[tuple[str, str]] = [(run_label(self.names, configs[i]), msg)
                                         for i, msg in broken.items()]
        failures = FailureLog()
        futures: dict = {}
        try:
            for task in tasks:
                if len(task) == 1:
                    fut = pool.submit(_run_one, cfg_of[task[0]], threads, self.train_fn,
                                      self.fresh)
                else:
                    self.groups.append([configs[i].out_name or "" for i in task])
                    self.log(f"  training together: {', '.join(self.groups[-1])}")
                    fut = pool.submit(_run_group, [cfg_of[i] for i in task], threads,
                                      self.train_many_fn, self.fresh, self.train_fn)
                futures[fut] = task
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = futures.pop(fut)
                    names = ", ".join(run_label(self.names, configs[i]) for i in task)
                    try:
                        out = fut.result()
                    except RunBusy as err:
                        # another cnnlab process trains it: wait for it, then read its
                        # result (or resume the run, should that process have stopped)
                        self.log(f"  {names}: {err}; waiting for it")
                        for i in task:
                            futures[pool.submit(_run_one, cfg_of[i], threads, self.train_fn,
                                                self.fresh, True)] = [i]
                        continue
                    except Exception as err:  # noqa: BLE001 - one broken run must not stop the rest
                        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                        errors.append((names, msg))
                        self.log(failures.line(names, msg))
                        continue
                    for i, res_dict in zip(task, out if len(task) > 1 else [out], strict=True):
                        self._record(configs[i], results, i, res_dict)
        except BaseException:
            # Ctrl-C or SIGTERM: no queued run starts, running ones checkpoint and stop
            self.log("  stopping: queued runs are not started, running ones checkpoint "
                     "their current step")
            stop_workers(pool, futures, stop)
            raise
        pool.shutdown(wait=True)
        if errors:
            raise CnnlabError(f"{len(errors)} of {len(tasks) + len(broken)} training tasks failed ("
                              f"{failure_summary(errors)}); the other runs are saved, and "
                              "running the same command again trains only the missing ones")
        return results  # type: ignore[return-value]
