"""Metrics of a run: TensorBoard events, ``metrics.jsonl`` and a progress bar.

Tags (ETH Problem 4 asks for accuracy and loss summaries, a ``step_time`` averaged over the
last n steps, and the regularizer's value without lambda):

* ``accuracy/train``, ``accuracy/test``, ``loss/train``, ``loss/test`` -- at each evaluation
  (train = a fixed subset of the training set, in eval mode, so dropout is off);
* ``batch/accuracy``, ``batch/loss`` -- mean over the mini-batches since the last log;
* ``time/train`` -- training seconds so far (steps only, all sessions), at each evaluation;
* ``step_time`` (seconds per step), ``lr``, ``regularizer`` -- every ``log_every`` steps.

Graph, histograms and images: :mod:`cnnlab.training.tbviews`.

``metrics.jsonl`` holds the same numbers, one JSON object per line with ``kind`` "train" or
"eval", so plots and reports never need TensorBoard.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import open_append, write_text

EVAL_TAGS = {"train_acc": "accuracy/train", "test_acc": "accuracy/test",
             "train_loss": "loss/train", "test_loss": "loss/test", "train_time": "time/train"}
TRAIN_TAGS = {"batch_acc": "batch/accuracy", "batch_loss": "batch/loss",
              "step_time": "step_time", "lr": "lr", "regularizer": "regularizer"}


def read_metrics(path: Path | str) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` (a run folder or the file itself).

    An unreadable file or a line that is not a JSON record with an integer ``iteration`` is
    a :class:`CnnlabError` naming the file and the line (a torn last line -- a run killed
    while writing it -- is dropped)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CnnlabError(f"{path}: unreadable ({e})") from None
    lines = text.split("\n")
    if lines and not text.endswith("\n"):
        lines[-1] = ""  # torn by a kill mid-write
    out = []
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise CnnlabError(f"{path}, line {no}: not JSON ({e})") from None
        it = rec.get("iteration") if isinstance(rec, dict) else None
        if isinstance(it, bool) or not isinstance(it, int):
            raise CnnlabError(f"{path}, line {no}: not a metrics record (no integer iteration)")
        out.append(rec)
    return out


#: without a terminal, a progress line at least this often (seconds)
EVERY_S = 30.0


class Progress:
    """Progress of a run: a one-line bar on a terminal; without a terminal (a log file, a
    batch job) a plain line at least every ``every`` seconds -- iteration, the accuracy so
    far, speed and ETA -- so a long run is never silent. ``enabled`` True forces the bar,
    False silences both."""

    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None,
                 every: float | None = None, start: int = 0):
        self.stream = stream or sys.stderr
        tty = self.stream.isatty()
        self.enabled = tty if enabled is None else enabled
        self.lines = enabled is None and not tty  # plain lines instead of the bar
        self.every = EVERY_S if every is None else every
        self.total = max(total, 1)
        self.last = 0.0
        self.status = ""
        self.t0 = time.monotonic()
        self.next_line = self.t0 + self.every
        self.it0 = start  # the speed counts from here (a resumed run's first iteration)

    def due(self) -> bool:
        """Whether a plain line is due (the loop then calls :meth:`update` between its logging
        steps); cheap: one clock read."""
        return self.lines and time.monotonic() >= self.next_line

    def update(self, it: int, status: str | None = None, force: bool = False) -> None:
        if status is not None:
            self.status = status
        now = time.monotonic()
        if self.lines:
            if now >= self.next_line:
                self.next_line = now + self.every
                self.stream.write(self.line(it, now) + "\n")
                self.stream.flush()
            return
        if not self.enabled or (not force and now - self.last < 0.25):
            return
        self.last = now
        frac = min(it / self.total, 1.0)
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r[{bar:<30}] {it}/{self.total} {self.status}\033[K")
        self.stream.flush()

    def line(self, it: int, now: float) -> str:
        """``iteration 1200/20000 (6%), <status>, 12.0 it/s, ETA 23 min``."""
        done = it - self.it0
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - it) / rate if rate > 0 else float("inf")
        when = ("?" if eta == float("inf") else f"{eta:.0f} s" if eta < 120 else
                f"{eta / 60:.0f} min" if eta < 7200 else f"{eta / 3600:.1f} h")
        status = f", {self.status}" if self.status else ""
        return (f"iteration {it}/{self.total} ({it / self.total:.0%}){status}, "
                f"{rate:.1f} it/s, ETA {when}")

    def close(self) -> None:
        if self.enabled and not self.lines:
            self.stream.write("\n")
            self.stream.flush()


def _quiet_writer_thread_errors() -> None:
    """Keep TensorBoard's background writer thread from printing a traceback when the disk
    fails under it (read-only, full): the same ``OSError`` is raised again in the training
    thread at the writer's next call, which the CLI turns into its one line."""
    previous = threading.excepthook
    if getattr(previous, "cnnlab_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(
                args.exc_value, OSError):
            return
        previous(args)

    hook.cnnlab_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class RunLog:
    """Writes one run's metrics to TensorBoard and ``metrics.jsonl``.

    On resume from iteration ``start``, records after ``start`` are dropped from the JSONL file
    and TensorBoard is told to purge them (``purge_step=start + 1``: the points *at* ``start``
    were written before the checkpoint and stay), so curves never fold back.
    """

    def __init__(self, run_dir: Path, start: int = 0, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        if start and self.path.exists():
            keep = [r for r in read_metrics(self.path) if r["iteration"] <= start]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif self.path.exists():
            self.path.unlink()
        self.file = open_append(self.path)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            _quiet_writer_thread_errors()
            self.writer = SummaryWriter(log_dir=str(run_dir),
                                        purge_step=start + 1 if start else None)

    def _write(self, kind: str, iteration: int, values: dict[str, float],
               tags: dict[str, str]) -> None:
        rec = {"kind": kind, "iteration": iteration, **values}
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        if self.writer is not None:
            for k, v in values.items():
                if k in tags and v is not None:
                    self.writer.add_scalar(tags[k], v, iteration)

    def train(self, iteration: int, **values: float) -> None:
        self._write("train", iteration, values, TRAIN_TAGS)

    def eval(self, iteration: int, **values: float) -> None:
        self._write("eval", iteration, values, EVAL_TAGS)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
