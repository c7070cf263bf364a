"""The executors' console lines, readable: a run by its recipe, variant and seed beside its
id (``huji_q2/linear seed 0 (by-id/31a6cdc3808152a2)``), its accuracy by the data it was
measured on ("validation" when training data was held out, else "test"), and failures that
share a cause reported once with the runs they hit."""

from __future__ import annotations

from typing import Any


def job_label(out_name: str) -> str:
    """``huji_q2/linear-s0`` (a job's own name) -> ``huji_q2/linear seed 0``."""
    head, sep, seed = out_name.rpartition("-s")
    return f"{head} seed {seed}" if sep and seed.isdigit() else out_name


def run_label(names: dict[str, list[str]], cfg: Any) -> str:
    """The jobs a config trains for (``names``: out_name -> job names), beside its id."""
    own = cfg.out_name or ""
    jobs = names.get(own)
    if not jobs:
        return own
    return f"{', '.join(job_label(j) for j in jobs)} ({own})"


def held_out(cfg: Any) -> str:
    """What a run's ``test_acc`` measures: "validation" (``validation`` > 0 training examples
    held out) or "test"."""
    return "validation" if getattr(cfg, "validation", 0) else "test"


def failure_summary(errors: list[tuple[str, str]], causes: int = 3) -> str:
    """``(name, message)`` pairs, those of one message joined (``a, b, c: no MNIST...``);
    the first ``causes`` messages, then how many more."""
    by_msg: dict[str, list[str]] = {}
    for name, msg in errors:
        by_msg.setdefault(msg, []).append(name)
    parts = [f"{', '.join(names)}: {msg}" for msg, names in by_msg.items()]
    more = len(parts) - causes
    return "; ".join(parts[:causes]) + (f"; and {more} more cause(s)" if more > 0 else "")


class FailureLog:
    """The first failure of a cause is logged in full, later ones point to it."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def line(self, name: str, msg: str) -> str:
        if msg in self.first:
            return f"  {name}: FAILED (the same cause as {self.first[msg]})"
        self.first[msg] = name
        return f"  {name}: FAILED ({msg}); the other runs go on"
