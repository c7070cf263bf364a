"""RayExecutor: the same :meth:`~cnnlab.experiments.executor.Executor.map` on a Ray cluster.

Each config becomes one Ray task asking for ``threads_per_run`` CPUs and ``gpus_per_run``
GPUs, run in a worker process of its own (``max_calls=1``, like the local pool's fresh
processes; ``fresh=False`` reuses workers, as ``--quick`` does). The task body is the
local executor's (:func:`~cnnlab.experiments.executor.run_one`), so a run trains to the same
weights on either executor. The resume rule holds across nodes:

* results live in the run folders under ``runs_dir``, which must be a path every node sees
  (NFS, CephFS, Lustre, a bind-mounted volume); object storage is not supported;
* a task whose worker dies (SIGKILL, OOM, lost node) is retried by Ray (``max_retries``) and,
  since ``run_one`` resumes a run folder holding a checkpoint of the same config, continues
  from its last checkpoint; a run with a ``result.json`` is read back, never trained again;
* a run is trained only while its task holds an exclusive ``fcntl.flock`` on
  ``<runs_dir>/.locks/<out_name>.lock``; the kernel (or the NFS server) releases it when the
  holder dies, so a retry is never blocked by a dead one, and a second driver on the same
  runs folder waits for the first driver's run and then reads its result.

``ray`` is optional (``pip install 'cnnlab[ray]'``): it is imported only when a map starts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json
from cnnlab.experiments.executor import finished, finished_all, run_dir, run_one
from cnnlab.experiments.runlines import FailureLog, failure_summary, held_out, run_label

if TYPE_CHECKING:
    from cnnlab.training.trainer import RunResult, TrainConfig

INSTALL = "pip install 'cnnlab[ray]'"
LOCKS = ".locks"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`CnnlabError` saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise CnnlabError(f"--executor ray needs the 'ray' package ({e}); install it with "
                          f"{INSTALL}, or use --executor local") from None
    return ray


def lock_path(cfg: TrainConfig) -> Path:
    """``<runs_dir>/.locks/<out_name>.lock``: beside the run folder, not in it, since a run
    that starts over replaces its folder (and would delete a lock held inside it)."""
    root = Path(cfg.runs_dir).resolve()
    return root / LOCKS / f"{run_dir(cfg).relative_to(root)}.lock"


@contextmanager
def claim(cfg: TrainConfig, wait: bool = True) -> Iterator[None]:
    """Hold the run's exclusive lock for the body (``wait=False``: raise BlockingIOError if
    another process holds it). The file records who holds it (host, pid, since)."""
    path = lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        # written in place, not through the atomic writer: the lock lives on this inode, and
        # a rename would give the next process another file to lock
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.time()}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def holder(cfg: TrainConfig) -> dict[str, Any] | None:
    """Who holds the run's lock now (``{"host", "pid", "since"}``), ``None`` if nobody."""
    path = lock_path(cfg)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:  # the holder is writing its name this instant
                return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _task(cfg: TrainConfig, threads: int,
          train_fn: Callable[[TrainConfig], RunResult] | None,
          fresh: bool, data_env: str | None) -> tuple[dict[str, Any], bool]:
    """Ray task body: under the run's lock, read a result another driver finished meanwhile,
    else train (resuming a checkpoint of the same config). Returns (result, trained).
    ``data_env``: the driver's ``$CNNLAB_DATA``, used where the worker's node sets none."""
    if data_env:
        os.environ.setdefault("CNNLAB_DATA", data_env)
    with claim(cfg):
        done = finished(cfg)
        if done is not None:
            return asdict(done), False
        return run_one(cfg, threads, train_fn, fresh), True


def _one_line(err: BaseException) -> str:
    """The last line of an error: a task's own exception, or Ray's word on a lost worker."""
    lines = str(err).strip().splitlines()
    return lines[-1] if lines else type(err).__name__


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA after the first run"
    return f"ETA {seconds / 60:.1f} min" if seconds >= 90 else f"ETA {seconds:.0f} s"


class RayExecutor:
    """Runs configs as Ray tasks on the cluster at ``address`` (``"auto"``, ``"HOST:PORT"``,
    or ``None``: the cluster this machine already runs, else a new local one).

    ``threads_per_run`` CPUs (torch threads) and ``gpus_per_run`` GPUs (fractions share a GPU)
    per run; ``max_retries`` retries of a task whose worker died; ``fresh`` a worker process
    per run (its own peak memory, as in the local executor). ``trained`` and ``cpu_s`` count
    what this executor trained, as :class:`~cnnlab.experiments.executor.LocalExecutor` does.
    ``ray_options`` go to ``ray.remote`` as they are (``resources``, ``scheduling_strategy``,
    ``runtime_env``, ...).
    """

    def __init__(self, address: str | None = None, threads_per_run: int = 1,
                 gpus_per_run: float = 0.0, max_retries: int = 3, fresh: bool = True,
                 train_fn: Callable[[TrainConfig], RunResult] | None = None,
                 log: Callable[[str], None] | None = None, progress_every: float = 30.0,
                 ray_options: dict[str, Any] | None = None):
        if threads_per_run < 1:
            raise CnnlabError(f"--threads-per-run must be >= 1, not {threads_per_run}")
        if gpus_per_run < 0:
            raise CnnlabError(f"--gpus-per-run must be >= 0, not {gpus_per_run}")
        self.address = address
        self.threads_per_run = threads_per_run
        self.gpus_per_run = gpus_per_run
        self.max_retries = max_retries
        self.fresh = fresh
        self.train_fn = train_fn
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.names: dict[str, list[str]] = {}  # out_name -> the jobs' names, for the console
        self.progress_every = progress_every
        self.ray_options = dict(ray_options or {})
        self.trained = 0
        self.cpu_s = 0.0
        self.failed: list[str] = []  # out_names of runs that failed in the last map

    def connect(self) -> Any:
        """Join the cluster (once per process); one-line error if there is none there."""
        ray = import_ray()
        if not ray.is_initialized():
            if self.address is None:
                # a local cluster: runs at nice 0 like LocalExecutor's, not Ray's default 15
                # (a nice-15 worker next to any busy process gets ~2% of a core)
                os.environ.setdefault("RAY_worker_niceness", "0")
            try:
                ray.init(address=self.address, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CnnlabError(f"cannot join the Ray cluster at {self.address or 'local'}: "
                                  f"{first}; start one with `ray start --head`, fix --address,"
                                  " or, if the cluster uses token authentication, set "
                                  "RAY_AUTH_MODE=token (see docs/scale-out.md)") from None
        return ray

    @property
    def threads(self) -> int:
        return self.threads_per_run

    @property
    def jobs(self) -> int:
        """Runs the cluster can hold at once (its CPUs, or GPUs, over one run's share)."""
        res = self.connect().cluster_resources()
        slots = int(res.get("CPU", 1) // self.threads_per_run)
        if self.gpus_per_run:
            slots = min(slots, int(res.get("GPU", 0) // self.gpus_per_run))
        return max(1, slots)

    def prepare(self, cfg: TrainConfig) -> TrainConfig:
        """The config as a worker on another node needs it: absolute paths (a worker's working
        directory is not the driver's), its threads, and the CPU unless it was given a GPU.
        All these fields are result-free, so the resume rule sees the same run."""
        data_dir = cfg.data_dir
        device = cfg.device
        if device == "auto" and not self.gpus_per_run:
            device = "cpu"
        return replace(cfg, runs_dir=str(Path(cfg.runs_dir).resolve()),
                       data_dir=str(Path(data_dir).resolve()) if data_dir else None,
                       threads=cfg.threads or self.threads_per_run, device=device)

    def map(self, configs: list[TrainConfig]) -> list[RunResult]:
        from cnnlab.training.trainer import RunResult

        results, broken = finished_all(configs, self.log)
        todo = [i for i, r in enumerate(results) if r is None and i not in broken]
        self.failed = [str(configs[i].out_name) for i in broken]
        if not todo and not broken:
            return results  # type: ignore[return-value]
        ray = self.connect()
        opts = {"num_cpus": self.threads_per_run, "num_gpus": self.gpus_per_run,
                "max_retries": self.max_retries, "max_calls": 1 if self.fresh else 0,
                **self.ray_options}
        task = ray.remote(**opts)(_task)
        prepared = {i: self.prepare(configs[i]) for i in todo}
        data_env = os.environ.get("CNNLAB_DATA")
        data_env = str(Path(data_env).resolve()) if data_env else None
        refs = {task.remote(prepared[i], prepared[i].threads, self.train_fn, self.fresh,
                            data_env): i for i in todo}
        pending, failures = list(refs), FailureLog()
        errors = [(run_label(self.names, configs[i]), msg) for i, msg in broken.items()]
        t0 = last = time.perf_counter()
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=self.progress_every)
            for ref in ready:
                i = refs[ref]
                name = configs[i].out_name
                try:
                    out, trained = ray.get(ref)
                except ray.exceptions.RayError as e:
                    msg = _one_line(getattr(e, "cause", None) or e)
                    errors.append((run_label(self.names, configs[i]), msg))
                    self.failed.append(str(name))
                    self.log(failures.line(run_label(self.names, configs[i]), msg))
                    continue
                res = results[i] = RunResult(**out)
                if trained:
                    self.trained += 1
                    info = read_json(run_dir(prepared[i]) / "executor.json", {})
                    self.cpu_s += info.get("cpu_s", 0.0)
                how = f"{res.train_time:.1f} s training" if trained else "another driver's run"
                self.log(f"  {run_label(self.names, configs[i])}: {held_out(configs[i])} "
                         f"{res.test_acc:.2%}, {how} ({res.stopped})")
            now = time.perf_counter()
            if ready or now - last >= self.progress_every:
                last = now
                self.log("  ray: " + self.progress([prepared[refs[r]] for r in pending],
                                                  len(todo), len(errors) - len(broken), now - t0))
        if errors:
            raise CnnlabError(f"{len(errors)} of {len(todo) + len(broken)} runs failed on Ray ("
                              f"{failure_summary(errors)}); the other runs are saved, and "
                              "running the same command again trains only the missing ones")
        return results  # type: ignore[return-value]

    @staticmethod
    def progress(pending: list[TrainConfig], total: int, failed: int, elapsed: float) -> str:
        """``done/total, running, queued, failed, ETA``; running = pending runs whose lock is
        held (by a task of this map or another driver's)."""
        running = sum(holder(c) is not None for c in pending)
        done = total - len(pending) - failed
        eta = elapsed / done * len(pending) if done else None
        return (f"{done}/{total} done, {running} running, {len(pending) - running} queued, "
                f"{failed} failed; {_eta(eta)}")
