"""Waiting in tests without wall-clock deadlines that an idle machine meets and a busy one
misses: wait on the *condition* (a file appears, a thread or process ends), and fail early
only for a real reason (the worker died first). The one time limit, :data:`LIMIT_S`, is a
hang guard far above any honest run (15 minutes; ``CNNLAB_TEST_LIMIT_S`` overrides it), so
the machine's load never decides the outcome.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

#: the hang guard of every wait in the tests (seconds)
LIMIT_S = float(os.environ.get("CNNLAB_TEST_LIMIT_S", "900"))


def wait_for(cond: Callable[[], object], what: str, alive: Callable[[], bool] | None = None,
             why_dead: Callable[[], str] | None = None, poll: float = 0.005) -> None:
    """Return once ``cond()`` is true; fail if ``alive()`` turns false first (with
    ``why_dead()`` as the message) or after :data:`LIMIT_S` (a hang)."""
    end = time.monotonic() + LIMIT_S
    while not cond():
        if alive is not None and not alive():
            if cond():  # it happened just before the worker ended
                return
            raise AssertionError(f"{what}: the worker ended first"
                                 + (f" ({why_dead()})" if why_dead else ""))
        if time.monotonic() > end:
            raise AssertionError(f"{what}: nothing after {LIMIT_S:.0f} s (a hang)")
        time.sleep(poll)


def join(t: threading.Thread) -> None:
    """Wait for ``t`` to end (hang guard :data:`LIMIT_S`)."""
    t.join(timeout=LIMIT_S)
    assert not t.is_alive(), f"{t.name} still running after {LIMIT_S:.0f} s (a hang)"


def communicate(p: subprocess.Popen) -> tuple[str, str]:
    """``p.communicate()`` with the hang guard :data:`LIMIT_S`."""
    return p.communicate(timeout=LIMIT_S)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with the hang guard."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S, **kw)
