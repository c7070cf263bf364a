"""The inner training loop: device-resident data, index-permutation batches, timing, resume.

:class:`Loop` owns everything that changes while training (weights, optimizer, RNG streams,
the data permutation and position, timers) and can snapshot and restore all of it, which is
what makes ``--resume`` exact on CPU. :mod:`cnnlab.training.trainer` sets it up and writes the run
folder.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.common.errors import CnnlabError
from cnnlab.data.augment import Augment
from cnnlab.data.datasets import Dataset
from cnnlab.training import checkpoint
from cnnlab.training.optim import fc_layers, l2_raw, lr_at, make_optimizer

if TYPE_CHECKING:
    from cnnlab.training.runlog import Progress, RunLog
    from cnnlab.training.trainer import TrainConfig


class TrainingDiverged(CnnlabError):
    """The loss became NaN/inf; the run stopped and its last good checkpoint is kept."""

    def __init__(self, message: str, iteration: int, checkpoint: Path | None):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


@dataclass
class Outcome:
    iteration: int
    stopped: str


#: A stop request (the experiment executor's workers set it on SIGTERM): the training loops
#: finish the current step, write a checkpoint at it and raise :class:`StopRequested`, so
#: the run resumes from exactly there and nothing is lost.
STOP = threading.Event()


class StopRequested(KeyboardInterrupt):
    """The loop stopped on :data:`STOP` after checkpointing the iteration it had reached."""


@dataclass(frozen=True)
class Due:
    """What a training loop does after iteration ``it`` (both loops, :class:`Loop` and the
    batched one, decide it here): log the window, evaluate, checkpoint, stop on request."""

    log: bool
    eval: bool
    ckpt: bool
    halt: bool


def due_after(it: int, total: int, log_every: int, eval_every: int, ckpt_every: int,
              stop_at: int | None, bar: Any) -> Due | None:
    """The work due after iteration ``it`` of ``total``, or ``None`` when the loop just goes
    on (the common case, kept cheap). A stop request (:data:`STOP`) always checkpoints, so
    the run resumes from exactly where it stopped."""
    at_end = it == total
    log = it % log_every == 0 or at_end
    ev = it % eval_every == 0 or at_end
    ckpt = it % ckpt_every == 0 or at_end
    halt = STOP.is_set()
    if not (log or ev or ckpt or it == stop_at or halt or bar.due()):
        return None
    return Due(log, ev, ckpt or halt, halt)


def loss_and_correct(out: torch.Tensor, y: torch.Tensor, ds: Dataset,
                     reduction: str = "mean",
                     label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (mean over heads) and the number of correct examples.

    Two-head outputs (HUJI 5.2) are ``(N, 2*C)`` logits read as two C-way heads; an example
    is correct when the predicted digits' sum equals the true sum (``score == "sum"``).
    """
    n = out.shape[0]
    logits = out.reshape(n, ds.heads, ds.num_classes).float()
    target = y.reshape(n, ds.heads)
    loss = F.cross_entropy(logits.reshape(-1, ds.num_classes), target.reshape(-1),
                           reduction=reduction, label_smoothing=label_smoothing)
    if reduction == "sum":
        loss = loss / ds.heads
    pred = logits.argmax(-1)
    if ds.score == "sum":
        ok = pred.sum(1) == target.sum(1)
    else:
        ok = (pred == target).all(1)
    return loss, ok.sum()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively and faster than fp32: CUDA with bf16; a CPU
    whose oneDNN has bf16 kernels (AVX512-BF16/AMX) *and* where they measured faster
    (:func:`cnnlab.training.bf16_probe.bf16_pays`). Elsewhere bf16 autocast is emulated or
    slower, and ``precision="auto"`` trains in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return False
        except (AttributeError, RuntimeError):
            return False
        from cnnlab.training.bf16_probe import bf16_pays

        return bf16_pays()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, ds: Dataset, batch: int,
             device: torch.device, precision: str = "fp32") -> tuple[float, float]:
    """(mean loss, accuracy) of ``net`` on ``x, y`` in eval mode (dropout off: keep_prob 1)."""
    was_training = net.training
    net.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    with torch.inference_mode(), autocast(device, precision):
        for i in range(0, x.shape[0], batch):
            loss, ok = loss_and_correct(net(x[i:i + batch]), y[i:i + batch], ds, "sum")
            loss_sum += loss
            correct += ok
    net.train(was_training)
    n = max(x.shape[0], 1)
    return float(loss_sum) / n, float(correct) / n


class Loop:
    def __init__(self, cfg: TrainConfig, ds: Dataset, net: nn.Module, device: torch.device,
                 total: int, steps_per_epoch: int, fill: float = 0.0):
        self.cfg, self.ds, self.device = cfg, ds, device
        self.total, self.steps_per_epoch = total, steps_per_epoch
        self.precision = resolve_precision(cfg.precision, device)
        self.net = net.to(device)
        channels_last = cfg.channels_last == "on" or (
            cfg.channels_last == "auto" and device.type == "cuda")
        if channels_last and ds.x_train.dim() == 4:
            self.net = self.net.to(memory_format=torch.channels_last)
            ds.x_train = ds.x_train.contiguous(memory_format=torch.channels_last)
            ds.x_test = ds.x_test.contiguous(memory_format=torch.channels_last)
        self.step_net = torch.compile(self.net) if cfg.compile else self.net
        self.opt = make_optimizer(cfg.optimizer, [p for p in net.parameters() if p.requires_grad],
                                  cfg.lr, cfg.momentum)
        self.fc = fc_layers(net)
        if cfg.l2 and not self.fc:
            l2_raw(self.fc)  # raises the "no fully connected layer" error
        self.aug = None
        if cfg.augment and cfg.augment_mode == "batch":
            self.aug = Augment.parse(cfg.augment, fill=fill)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        n = ds.x_train.shape[0]
        self.batch = min(cfg.batch_size, n)
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 2))
        pick = pick[:cfg.train_eval_size].to(device)
        self.x_tr_eval, self.y_tr_eval = ds.x_train[pick], ds.y_train[pick]
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.acc_loss = torch.zeros((), device=device)
        self.acc_correct = torch.zeros((), device=device, dtype=torch.long)
        self.acc_n = 0
        self.train_time = 0.0
        self.session_steps, self.session_time = 0, 0.0
        self.time_to_target: float | None = None
        self.iteration_to_target: int | None = None
        self.history: list[dict[str, float]] = []
        self.last_ckpt: Path | None = None
        self.check_each_step = device.type == "cpu"  # .item() is free on CPU, a sync on GPU

    @property
    def images_per_s(self) -> float:
        return self.session_steps * self.batch / self.session_time if self.session_time else 0.0

    # ----------------------------------------------------------------- one step

    def _indices(self) -> torch.Tensor:
        n = self.ds.x_train.shape[0]
        if self.perm is None or self.pos + self.batch > n:
            self.perm = torch.randperm(n, generator=self.data_gen).to(self.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx

    def step(self, it: int) -> torch.Tensor:
        cfg = self.cfg
        lr = lr_at(cfg.schedule, cfg.lr, it, self.total, self.steps_per_epoch, cfg.warmup,
                   cfg.step_gamma)
        for g in self.opt.param_groups:
            g["lr"] = lr
        idx = self._indices()
        xb, yb = self.ds.x_train[idx], self.ds.y_train[idx]
        if self.aug is not None:
            xb = self.aug(xb, self.aug_gen)
        with autocast(self.device, self.precision):
            out = self.step_net(xb)
        loss, correct = loss_and_correct(out, yb, self.ds, "mean", cfg.label_smoothing)
        objective = loss + cfg.l2 * l2_raw(self.fc) if cfg.l2 else loss
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(objective).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            objective.backward()
            self.opt.step()
        self.acc_loss += loss.detach()
        self.acc_correct += correct
        self.acc_n += xb.shape[0]
        return loss

    # ----------------------------------------------------------------- the loop

    def run(self, start: int, log: RunLog, bar: Progress, ckpt_dir: Path,
            stop_at: int | None = None) -> Outcome:
        cfg = self.cfg
        ckpt_every = cfg.checkpoint_every or cfg.eval_every
        win_time, win_steps = 0.0, 0
        it = start
        stopped = "completed"
        t = time.perf_counter()
        while it < self.total:
            loss = self.step(it)
            it += 1
            win_steps += 1
            self.session_steps += 1
            if self.check_each_step and not math.isfinite(loss.item()):
                self._diverged(it)
            due = due_after(it, self.total, cfg.log_every, cfg.eval_every, ckpt_every,
                            stop_at, bar)
            if due is None:
                continue
            do_log, do_eval, do_ckpt, halt = due.log, due.eval, due.ckpt, due.halt
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t
            win_time += dt
            self.train_time += dt
            self.session_time += dt
            if do_log:
                self._log_train(it, win_time / max(win_steps, 1), log)
                win_time, win_steps = 0.0, 0
            if do_eval and self._evaluate(it, log):
                stopped = "target"
            if do_ckpt or stopped == "target":
                self._checkpoint(it, ckpt_dir)
            last = self.history[-1] if self.history else {}
            held = "validation" if cfg.validation else "test"  # what the eval set is
            bar.update(it, f"loss {last['test_loss']:.4f} {held} acc {last['test_acc']:.2%}"
                       if "test_acc" in last else "", force=do_eval)
            if stopped == "target":
                break
            if halt:
                raise StopRequested(f"stopped on request at iteration {it} (checkpointed)")
            if stop_at is not None and it >= stop_at:
                raise KeyboardInterrupt(f"stopped at iteration {it}")
            t = time.perf_counter()
        return Outcome(it, stopped)

    def _diverged(self, it: int) -> None:
        where = f"; the last good checkpoint is {self.last_ckpt}" if self.last_ckpt else ""
        raise TrainingDiverged(f"loss became NaN/inf at iteration {it}: training stopped{where}"
                               "; lower --lr or add --batch-norm", it, self.last_ckpt)

    def _log_train(self, it: int, step_time: float, log: RunLog) -> None:
        n = max(self.acc_n, 1)
        batches = max(round(self.acc_n / self.batch), 1)
        loss = float(self.acc_loss) / batches
        if not math.isfinite(loss):
            self._diverged(it)
        with torch.no_grad():
            reg = float(l2_raw(self.fc)) if self.fc else None
        log.train(it, batch_loss=loss, batch_acc=float(self.acc_correct) / n,
                  step_time=step_time, lr=self.opt.param_groups[0]["lr"], regularizer=reg)
        self.acc_loss.zero_()
        self.acc_correct.zero_()
        self.acc_n = 0

    def _evaluate(self, it: int, log: RunLog) -> bool:
        cfg = self.cfg
        bs, dev, prec = cfg.eval_batch_size, self.device, self.precision
        tr_loss, tr_acc = evaluate(self.net, self.x_tr_eval, self.y_tr_eval, self.ds, bs, dev,
                                   prec)
        te_loss, te_acc = evaluate(self.net, self.ds.x_test, self.ds.y_test, self.ds, bs, dev,
                                   prec)
        return self.record_eval(it, log, tr_loss, tr_acc, te_loss, te_acc)

    # ------------------------------------------- public steps for a batched trainer

    def next_indices(self) -> torch.Tensor:
        """The next mini-batch's ``(batch,)`` indices: this seed's permutation, epoch by epoch."""
        return self._indices()

    def log_train(self, it: int, step_time: float, log: RunLog) -> None:
        """Log the batch metrics accumulated in ``acc_*`` (the net must hold current weights)."""
        self._log_train(it, step_time, log)

    def save_checkpoint(self, it: int, ckpt_dir: Path) -> None:
        """An exact-resume checkpoint of the net, optimizer and streams as they are now."""
        self._checkpoint(it, ckpt_dir)

    def record_eval(self, it: int, log: RunLog, tr_loss: float, tr_acc: float, te_loss: float,
                    te_acc: float, grads: dict[str, torch.Tensor | None] | None = None) -> bool:
        """Append and log one evaluation; True when it reaches ``target_acc`` first.

        With TensorBoard on, the weight and gradient histograms and the first layer's filters
        go with it (``grads``: the last step's gradients by parameter name, default each
        parameter's ``.grad``)."""
        cfg = self.cfg
        rec = {"iteration": it, "train_acc": tr_acc, "train_loss": tr_loss, "test_acc": te_acc,
               "test_loss": te_loss, "ratio": te_acc / tr_acc if tr_acc else math.nan,
               "train_time": self.train_time}
        self.history.append(rec)
        log.eval(it, **{k: v for k, v in rec.items() if k != "iteration"})
        if log.writer is not None:
            from cnnlab.training.tbviews import log_eval_views

            log_eval_views(log.writer, self.net, it, self.ds.input_shape, grads)
        if (cfg.target_acc is not None and self.time_to_target is None
                and te_acc >= cfg.target_acc):
            self.time_to_target, self.iteration_to_target = self.train_time, it
            return True
        return False

    # ----------------------------------------------------------------- snapshots

    def _checkpoint(self, it: int, ckpt_dir: Path) -> None:
        if not math.isfinite(float(self.acc_loss)):
            self._diverged(it)
        tensors: dict[str, Any] = {
            "rng.torch": torch.get_rng_state(), "rng.data": self.data_gen.get_state(),
            "rng.aug": self.aug_gen.get_state(), "acc.loss": self.acc_loss.detach().cpu(),
            "acc.correct": self.acc_correct.detach().cpu()}
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.perm is not None:
            tensors["perm"] = self.perm.cpu()
        meta = {"pos": self.pos, "acc_n": self.acc_n, "train_time": self.train_time,
                "time_to_target": self.time_to_target,
                "iteration_to_target": self.iteration_to_target, "history": self.history,
                "scaler": self.scaler.state_dict() if self.scaler else None}
        self.last_ckpt = checkpoint.save(ckpt_dir, self.net, self.opt,
                                         checkpoint.Snapshot(it, tensors, meta))

    def restore(self, path: Path) -> int:
        snap = checkpoint.restore(path, self.net, self.opt, self.device)
        t, m = snap.tensors, snap.meta
        torch.set_rng_state(t["rng.torch"])
        self.data_gen.set_state(t["rng.data"])
        self.aug_gen.set_state(t["rng.aug"])
        if "rng.cuda" in t and self.device.type == "cuda":
            torch.cuda.set_rng_state(t["rng.cuda"], self.device)
        self.perm = t["perm"].to(self.device) if "perm" in t else None
        self.acc_loss = t["acc.loss"].to(self.device)
        self.acc_correct = t["acc.correct"].to(self.device)
        self.pos, self.acc_n = m["pos"], m["acc_n"]
        self.train_time = m["train_time"]
        self.time_to_target, self.iteration_to_target = m["time_to_target"], m[
            "iteration_to_target"]
        self.history = m["history"]
        if self.scaler is not None and m.get("scaler"):
            self.scaler.load_state_dict(m["scaler"])
        self.last_ckpt = path
        return snap.iteration
