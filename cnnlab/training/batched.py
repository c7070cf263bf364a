"""Many models at once: ``train_many(configs) -> list[RunResult]``.

Configurations that share an architecture and a schedule (equal :func:`batch_key`) but differ
in seed, lr, momentum, keep_prob, l2, label smoothing or the lr schedule train together in one
process: their parameters are stacked (:class:`~cnnlab.training.batched_model.StackedNets`,
``vmap(functional_call)``), and one step trains all K. Each model keeps what ``train()`` would
give it alone:

* initialisation: the net is built by ``build_model`` with its own seed;
* data order: its own :class:`~cnnlab.training.engine.Loop` draws its seed's permutation;
* dropout masks: from its own generator, started where ``train()``'s global one would be;
* optimizer state and hyper-parameters: :class:`~cnnlab.training.batched_optim.StackedOptimizer`.

So the final weights equal those of ``train()`` one by one up to float rounding (the batched
convolutions and matrix products sum in another order), and every run gets the run folder
``train()`` writes, through the same writers: ``config.json``, ``env.json`` (plus ``batched``:
the group), ``metrics.jsonl`` and TensorBoard at the same points, checkpoints a later
``train(..., resume=True)`` continues from, ``model.safetensors``, ``result.json``, plots.
Timings (``train_time``, ``step_time``, ``images_per_s``) are each run's share: the group's
time divided by K. A model whose loss becomes NaN/inf stops (its result says "diverged") and
the others go on.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import write_json
from cnnlab.training import rundir
from cnnlab.training.batched_key import (
    PER_MODEL,
    batch_key,
    batching_pays,
    group_configs,
    macs_per_example,
    unsupported,
)
from cnnlab.training.batched_model import StackedNets, stacked_loss
from cnnlab.training.batched_optim import StackedOptimizer
from cnnlab.training.engine import Loop, StopRequested, TrainingDiverged, due_after
from cnnlab.training.optim import lr_at
from cnnlab.training.runlog import Progress, RunLog
from cnnlab.training.threads import auto_threads
from cnnlab.training.trainer import (
    RunResult,
    TrainConfig,
    build_model,
    check_config,
    finish_run,
    open_run,
    prepare_data,
    resolve_device,
    schedule_length,
    write_run_header,
)

__all__ = ["PER_MODEL", "batch_key", "batching_pays", "diverged_result", "group_configs",
           "macs_per_example", "train_many", "unsupported"]

def diverged_result(run_dir: Path | str, err: Exception) -> RunResult:
    """The result of a run whose loss became NaN/inf: NaN metrics, ``stopped`` says why."""
    nan = math.nan
    return RunResult(run_dir=str(run_dir), iterations=int(getattr(err, "iteration", 0)),
                     train_acc=nan, test_acc=nan, train_loss=nan, test_loss=nan,
                     wall_time=0.0, train_time=0.0, time_to_target=None,
                     iteration_to_target=None, param_count=0, images_per_s=0.0,
                     stopped=f"diverged: {err}")


def _data_key(cfg: TrainConfig) -> int | None:
    # a subset or a held-out validation set is drawn with the run's seed
    return cfg.seed if (cfg.validation or cfg.train_size is not None) else None


def train_many(configs: list[TrainConfig], stop_at: int | None = None) -> list[RunResult]:
    """Train configs of one :func:`batch_key` together; results in the order given.

    ``stop_at`` aborts with KeyboardInterrupt after that many iterations, as ``train()``'s.
    """
    if not configs:
        return []
    keys = [batch_key(c) for c in configs]
    if keys[0] is None or any(k != keys[0] for k in keys):
        why = unsupported(configs[0]) or "architecture or shared settings differ"
        raise CnnlabError(f"train_many: these configs cannot train as one group ({why}); "
                          "group them with batch_key() or train them with train()")
    return _Group([check_config(replace(c)) for c in configs]).run(stop_at)


class _Group:
    """The state of one group: K runs' folders, loops and logs, the stacked nets."""

    def __init__(self, cfgs: list[TrainConfig]):
        self.t_wall = time.perf_counter()
        self.cfgs, self.k = cfgs, len(cfgs)
        c0 = cfgs[0]
        torch.set_num_threads(c0.threads or auto_threads())  # default: the free cores
        self.device = dev = resolve_device(c0.device)
        opened = [open_run(c) for c in cfgs]
        self.names = [o[0] for o in opened]
        self.dirs = [o[1] for o in opened]
        if len(set(self.dirs)) < self.k:
            raise CnnlabError("train_many: two configs name the same run folder; give each "
                              "its own out_name")
        data: dict[int | None, tuple[Any, float, float]] = {}
        self.data = []
        for c in cfgs:
            if _data_key(c) not in data:
                data[_data_key(c)] = prepare_data(c, dev)
            self.data.append(data[_data_key(c)])
        self.shared_data = len(data) == 1
        built, self.gens = [], []
        for c, (ds, _, _) in zip(cfgs, self.data, strict=True):
            built.append(build_model(c, ds))
            # train() draws the dropout masks from the global generator, seeded by the build
            gen = torch.Generator(device=dev)
            if dev.type == "cpu":
                gen.set_state(torch.get_rng_state())
            else:
                gen.manual_seed(c.seed)
            self.gens.append(gen)
        self.mdefs = [b[0] for b in built]
        self.nets = [b[1] for b in built]
        ds0 = self.data[0][0]
        self.total, self.spe = schedule_length(c0, ds0)
        for i, c in enumerate(cfgs):
            ds, mean, std = self.data[i]
            rundir.prepare(self.dirs[i], False, c.overwrite)
            write_run_header(self.dirs[i], c, self.names[i], dev, self.mdefs[i], ds,
                             self.total, self.spe, mean, std,
                             batched={"group": self.names, "index": i})
        self.loops = [Loop(c, d[0], n, dev, self.total, self.spe, fill=-d[1] / d[2])
                      for c, d, n in zip(cfgs, self.data, self.nets, strict=True)]
        self.batch = self.loops[0].batch
        self.stack = StackedNets(self.nets, ds0.x_train[:self.batch])
        self.opt = StackedOptimizer(c0.optimizer, self.stack.params,
                                    [c.momentum for c in cfgs])
        self.smooth = torch.tensor([c.label_smoothing for c in cfgs], device=dev)
        self.l2 = torch.tensor([c.l2 for c in cfgs], device=dev)
        self.alive = [True] * self.k
        self.errors: list[TrainingDiverged | None] = [None] * self.k
        self.lrs = [c.lr for c in cfgs]
        self.acc_loss = torch.zeros(self.k, device=dev)
        self.acc_correct = torch.zeros(self.k, device=dev, dtype=torch.long)
        self.acc_n = 0
        tr = [lp.x_tr_eval for lp in self.loops]
        self.shared_tr = all(torch.equal(t, tr[0]) for t in tr[1:])
        self.x_tr = tr[0] if self.shared_tr else torch.stack(tr)
        self.y_tr = (self.loops[0].y_tr_eval if self.shared_tr
                     else torch.stack([lp.y_tr_eval for lp in self.loops]))
        for i, lp in enumerate(self.loops):  # the stack is the one copy of the subsets
            lp.x_tr_eval = self.x_tr if self.shared_tr else self.x_tr[i]
        self.logs = [RunLog(d, 0, tensorboard=c.tensorboard)
                     for d, c in zip(self.dirs, cfgs, strict=True)]
        for log, net in zip(self.logs, self.nets, strict=True):
            if log.writer is not None:
                from cnnlab.training.tbviews import log_graph

                log_graph(log.writer, net, ds0.x_train[:1])

    # ----------------------------------------------------------------- one step

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        idx = [lp.next_indices() for lp in self.loops]
        if self.shared_data:
            ds = self.data[0][0]
            rows = torch.stack(idx)
            return ds.x_train[rows], ds.y_train[rows]
        xs = [d[0].x_train[i] for d, i in zip(self.data, idx, strict=True)]
        ys = [d[0].y_train[i] for d, i in zip(self.data, idx, strict=True)]
        return torch.stack(xs), torch.stack(ys)

    def step(self, it: int) -> torch.Tensor:
        self.lrs = [lr_at(c.schedule, c.lr, it, self.total, self.spe, c.warmup, c.step_gamma)
                    for c in self.cfgs]
        xb, yb = self._batch()
        masks = self.stack.draw_masks(self.gens)
        out = self.stack.forward(xb, masks)
        loss, correct = stacked_loss(out, yb, self.data[0][0], self.smooth)
        objective = loss + self.l2 * self.stack.l2_raw() if bool(self.l2.any()) else loss
        if not all(self.alive):
            keep = torch.tensor(self.alive, device=loss.device)
            objective = torch.where(keep, objective, torch.zeros_like(objective))
        for p in self.stack.params.values():
            p.grad = None
        objective.sum().backward()
        self.opt.step(self.lrs)
        self.acc_loss += loss.detach()
        self.acc_correct += correct
        self.acc_n += xb.shape[1]
        return loss.detach()

    # ----------------------------------------------------------------- the loop

    def run(self, stop_at: int | None) -> list[RunResult]:
        try:
            self._loop(stop_at)
        finally:
            for log in self.logs:
                log.close()
        return self._finish()

    def _loop(self, stop_at: int | None) -> None:
        c0 = self.cfgs[0]
        ckpt_every = c0.checkpoint_every or c0.eval_every
        bar = Progress(self.total, None if c0.progress == "auto" else c0.progress == "on")
        win_time, win_steps, it = 0.0, 0, 0
        self.counted = 0
        t = time.perf_counter()
        try:
            while it < self.total and any(self.alive):
                loss = self.step(it)
                it += 1
                win_steps += 1
                if self.device.type == "cpu":
                    for k, v in enumerate(loss.tolist()):
                        if self.alive[k] and not math.isfinite(v):
                            self._diverge(k, it)
                due = due_after(it, self.total, c0.log_every, c0.eval_every, ckpt_every,
                                stop_at, bar)
                if due is None:
                    continue
                do_log, do_eval, do_ckpt, halt = due.log, due.eval, due.ckpt, due.halt
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t
                win_time += dt
                for lp in self.loops:
                    lp.train_time += dt / self.k
                    lp.session_time += dt / self.k
                    lp.session_steps += it - self.counted
                self.counted = it
                if do_log:
                    self._each(self._log, it, win_time / self.k / win_steps)
                    self.acc_loss.zero_()
                    self.acc_correct.zero_()
                    self.acc_n = 0
                    win_time, win_steps = 0.0, 0
                if do_eval:
                    self._evaluate(it)
                if do_ckpt:
                    self._each(self._checkpoint, it)
                accs = [lp.history[-1]["test_acc"] for k, lp in enumerate(self.loops)
                        if self.alive[k] and lp.history]
                bar.update(it, f"{sum(self.alive)} models, mean test acc "
                               f"{sum(accs) / max(len(accs), 1):.2%}", force=do_eval)
                if halt:
                    raise StopRequested(f"stopped on request at iteration {it} (checkpointed)")
                if stop_at is not None and it >= stop_at:
                    raise KeyboardInterrupt(f"stopped at iteration {it}")
                t = time.perf_counter()
        finally:
            bar.close()
        self.iteration = it

    def _each(self, fn: Any, *args: Any) -> None:
        """``fn(k, loop_k, *args)`` for every model still training; NaN stops that model."""
        for k, lp in enumerate(self.loops):
            if self.alive[k]:
                try:
                    fn(k, lp, *args)
                except TrainingDiverged as e:
                    self._diverge(k, e.iteration, e)

    def _diverge(self, k: int, it: int, err: TrainingDiverged | None = None) -> None:
        if err is None:
            last = self.loops[k].last_ckpt
            where = f"; the last good checkpoint is {last}" if last else ""
            err = TrainingDiverged(f"loss became NaN/inf at iteration {it}: training stopped"
                                   f"{where}; lower --lr or add --batch-norm", it, last)
        self.alive[k], self.errors[k] = False, err
        self.logs[k].close()

    def _push(self, k: int, lp: Loop) -> None:
        """Give model k's loop the current weights, accumulators and lr (before it logs)."""
        self.stack.copy_into(k, lp.net)
        lp.acc_loss = self.acc_loss[k].clone()
        lp.acc_correct = self.acc_correct[k].clone()
        lp.acc_n = self.acc_n
        lp.opt.param_groups[0]["lr"] = self.lrs[k]

    def _log(self, k: int, lp: Loop, it: int, step_time: float) -> None:
        self._push(k, lp)
        lp.log_train(it, step_time, self.logs[k])

    def _checkpoint(self, k: int, lp: Loop, it: int) -> None:
        self._push(k, lp)
        self.opt.load_into(k, lp.opt, self.stack.names, self.lrs[k])
        if self.device.type == "cpu":
            torch.set_rng_state(self.gens[k].get_state())  # what train() saves as rng.torch
        lp.save_checkpoint(it, self.dirs[k] / "checkpoints")

    @torch.no_grad()
    def _evaluate(self, it: int) -> None:
        ds0 = self.data[0][0]
        self.stack.train(False)
        tr = self._eval_set(self.x_tr, self.y_tr, self.shared_tr, ds0)
        if self.shared_data:
            te = self._eval_set(ds0.x_test, ds0.y_test, True, ds0)
        else:
            te = self._eval_set(torch.stack([d[0].x_test for d in self.data]),
                                torch.stack([d[0].y_test for d in self.data]), False, ds0)
        self.stack.train(True)
        self._each(self._record_eval, it, tr, te)

    def _record_eval(self, k: int, lp: Loop, it: int, tr: tuple[list[float], list[float]],
                     te: tuple[list[float], list[float]]) -> None:
        grads = None
        if self.logs[k].writer is not None:  # the histograms need model k's own tensors
            self.stack.copy_into(k, lp.net)
            grads = {n: None if p.grad is None else p.grad[k]
                     for n, p in self.stack.params.items()}
        lp.record_eval(it, self.logs[k], tr[0][k], tr[1][k], te[0][k], te[1][k], grads)

    def _eval_set(self, x: torch.Tensor, y: torch.Tensor, shared: bool,
                  ds: Any) -> tuple[list[float], list[float]]:
        bs = self.cfgs[0].eval_batch_size
        n = x.shape[0] if shared else x.shape[1]
        loss_sum = torch.zeros(self.k, device=self.device)
        correct = torch.zeros(self.k, device=self.device, dtype=torch.long)
        for i in range(0, n, bs):
            xb = x[i:i + bs] if shared else x[:, i:i + bs]
            yb = y[i:i + bs] if shared else y[:, i:i + bs]
            loss, ok = stacked_loss(self.stack.forward(xb, None, shared_x=shared), yb, ds,
                                    reduction="sum")
            loss_sum += loss
            correct += ok
        n = max(n, 1)
        return (loss_sum / n).tolist(), (correct.double() / n).tolist()

    # ----------------------------------------------------------------- results

    def _finish(self) -> list[RunResult]:
        out = []
        wall = (time.perf_counter() - self.t_wall) / self.k
        for k, (c, lp) in enumerate(zip(self.cfgs, self.loops, strict=True)):
            if not self.alive[k]:
                res = diverged_result(self.dirs[k], self.errors[k] or RuntimeError("diverged"))
                write_json(self.dirs[k] / "result.json", asdict(res))
                out.append(res)
                continue
            self.stack.copy_into(k, lp.net)
            last = lp.history[-1] if lp.history else {}
            res = RunResult(
                run_dir=str(self.dirs[k]), iterations=self.iteration,
                train_acc=last.get("train_acc", math.nan), test_acc=last.get("test_acc", math.nan),
                train_loss=last.get("train_loss", math.nan),
                test_loss=last.get("test_loss", math.nan), wall_time=wall,
                train_time=lp.train_time, time_to_target=None, iteration_to_target=None,
                param_count=sum(p.numel() for p in lp.net.parameters()),
                images_per_s=lp.images_per_s, stopped="completed", history=lp.history)
            ds, mean, std = self.data[k]
            out.append(finish_run(self.dirs[k], c, lp.net, self.mdefs[k], ds, mean, std, res))
        return out
