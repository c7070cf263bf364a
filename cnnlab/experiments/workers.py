"""The executor's worker processes: stopping them at once, and one lock per run.

Stopping: Ctrl-C or ``kill`` reaches the parent (workers ignore SIGINT), which cancels the
queued runs and sends each worker SIGTERM (:func:`stop_workers`). A worker inside a run sets
:data:`cnnlab.training.engine.STOP`: the training loop finishes its step, writes a checkpoint
at it and stops, so the next ``experiment run`` resumes exactly there; an idle worker exits.

Locking: a run is trained only under an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside
its folder (:func:`run_locks`), so two ``experiment run`` of one recipe never train a run
twice: the second finds the lock taken (:class:`RunBusy`), waits for it, then reads the
result back (or resumes the run, should the first process have stopped). The lock is the
kernel's: it goes away with the process that held it, even after kill -9.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

#: Set in a worker once a stop was requested: no new run starts in it.
_STOPPING = False
#: Whether a worker is inside a run (a stop then checkpoints it; an idle worker just exits).
_IN_RUN = False
#: Whether a worker is blocked waiting for another process's run lock (a stop ends the wait).
_WAITING = False
#: How long the parent waits for a stopped worker to checkpoint and exit: a safety net, not
#: a deadline (a step and a checkpoint take well under a second on the sheets' networks).
STOP_GRACE_S = 300.0


class RunBusy(Exception):
    """The run's lock is held by another process (it is training that run now)."""


def _on_stop_request(signum: int, frame: object) -> None:
    """SIGTERM in a worker: a run checkpoints at its next step and stops; a second SIGTERM,
    or one while waiting for a lock, interrupts at once; an idle worker exits."""
    global _STOPPING
    if not _IN_RUN:
        os._exit(128 + signum)
    engine = sys.modules.get("cnnlab.training.engine")  # never import in a signal handler
    if _STOPPING or _WAITING or engine is None:
        _STOPPING = True
        raise KeyboardInterrupt("stopped")
    _STOPPING = True
    engine.STOP.set()


#: The pool's stop event (a multiprocessing Event shared with the parent): a worker the
#: pool starts after a stop (it replaces exited ones) must not begin a queued run either.
_EVENT: Any = None


def worker_init(event: Any = None) -> None:
    """Workers leave Ctrl-C (SIGINT, sent to the whole terminal group) to the parent, which
    stops them with SIGTERM: one path for both, and no worker takes a queued run after it."""
    global _EVENT
    _EVENT = event
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_stop_request)


@contextlib.contextmanager
def in_run() -> Iterator[None]:
    """The body of one task in a worker; refused once a stop was requested."""
    global _IN_RUN
    if _STOPPING or _EVENT is not None and _EVENT.is_set():
        raise KeyboardInterrupt("stopped before this run started")
    _IN_RUN = True
    try:
        yield
    finally:
        _IN_RUN = False


def stop_workers(pool: ProcessPoolExecutor, futures: Iterable[Future], event: Any,
                 grace_s: float = STOP_GRACE_S) -> None:
    """Stop a pool at once: queued runs are cancelled (or, already handed to a worker, refused
    by :func:`in_run` through ``event``), running ones checkpoint their current step and exit;
    waits for them up to ``grace_s`` in all, then kills what is left."""
    event.set()
    for fut in futures:
        fut.cancel()  # the ones not yet handed to a worker
    end = time.monotonic() + grace_s
    signalled: set[int] = set()
    while True:  # the pool replaces an exited worker: stop the new ones too
        procs = [p for p in list((getattr(pool, "_processes", None) or {}).values())
                 if p.pid not in signalled]
        if not procs:
            break
        for proc in procs:
            signalled.add(proc.pid)
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(max(0.0, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        time.sleep(0.05)  # let the pool's manager notice (and maybe replace) them
    pool.shutdown(wait=True)  # its workers are gone: returns at once


def lock_path(folder: Path) -> Path:
    """``runs/recipe/.name.lock``: beside the run folder, not in it (a file in an empty run
    folder would make it look like an existing run)."""
    return folder.parent / f".{folder.name}.lock"


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f" (pid {int(path.read_text().split()[0])})"
    return ""


@contextlib.contextmanager
def run_locks(folders: list[Path], wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of every run in ``folders``; one held elsewhere raises
    :class:`RunBusy` (none is kept), or with ``wait`` is waited for."""
    global _WAITING
    held: list[int] = []
    try:
        for folder in folders:
            path = lock_path(folder)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            held.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise RunBusy(f"being trained by another cnnlab process{_holder(path)}"
                                  ) from None
                _WAITING = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                finally:
                    _WAITING = False
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        for fd in held:
            os.close(fd)  # closing releases the flock
