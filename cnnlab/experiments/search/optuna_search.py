"""HUJI 3.1/3.2 as a real search: the fewest parameters that still reach a target accuracy.

A ``[[searches]]`` entry with a ``space`` table (:mod:`cnnlab.experiments.search.space`) is an
Optuna study with two objectives, the analyzer's parameter count (minimised) and the mean
*validation* accuracy over ``seeds`` (maximised), and the constraint
``mean accuracy >= target`` handed to the sampler (multi-objective TPE with constraints, so
the feasible side of the frontier is where it looks). Every probe trains on the training set
minus ``validation`` held-out examples and is judged on those; the test set is never seen
while choosing.

Batches of ``batch`` trials per search are asked (``study.ask()``), their runs go to the
executor in one ``map`` call for all searches of the recipe (a Ray executor can take the same
list), and the mean accuracies are told back. A round trains every new trial on the first
seed, then the other seeds only for those that can still win (first-seed accuracy within
``screen_margin`` of the target and fewer parameters than the best trial meeting it so far);
only a trial trained on every seed can meet the target.

The study lives in a journal file next to the runs (``<runs>/<recipe>/<label>.optuna.jsonl``)
and every probe in run folders named by its point (a digest of the sampled values), so an
interrupted search continues: trials it had asked but not told are asked again first, and
their finished runs are read back by the executor's resume rule.

Then the winner (fewest parameters among trials meeting the target; ties by accuracy) is
retrained from scratch on ``final_seeds`` (new seeds) with ``validation = 0``, and only those
runs' test accuracy is reported (:mod:`cnnlab.experiments.report.frontier`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import check_plain
from cnnlab.experiments.recipe import Job, Recipe, group_config, opts_string, slug, train_config
from cnnlab.experiments.search.space import check_space, param_count, suggest

DEFAULTS = {"trials": 24, "batch": 4, "seeds": 3, "final_seeds": None,
            "validation": 5000, "sampler_seed": 0, "enqueue": [], "screen_margin": 0.01,
            "final": {}}


def _acc(res: dict[str, Any] | None) -> float:
    """A run's last evaluation accuracy (validation in the search); 0 if it diverged."""
    acc = (res or {}).get("test_acc")
    return 0.0 if acc is None or math.isnan(acc) else float(acc)


def _seed_list(v: Any, where: str) -> list[int]:
    seeds = list(range(v)) if isinstance(v, int) else list(v)
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise CnnlabError(f"{where}: seeds must be a count or a list of integers")
    return seeds


INSTALL = "pip install 'cnnlab[search]'"


def import_optuna(where: str) -> Any:
    """The ``optuna`` module, or a one-line :class:`CnnlabError` saying how to install it."""
    try:
        import optuna
    except ImportError as e:
        raise CnnlabError(f"{where} searches with Optuna, which is not installed ({e}); "
                          f"install it with {INSTALL}") from None
    return optuna


#: what optuna raises on a damaged journal: a garbage or binary line (JSONDecodeError,
#: UnicodeDecodeError), a record of the wrong shape (TypeError, KeyError, AssertionError)
JOURNAL_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, AssertionError)


def open_study(path: Path, label: str) -> Any:
    """The two-objective study ``label`` in the journal file ``path`` (created if absent).

    The journal must be a plain file (it is appended to); a damaged one (a garbage or binary
    line, a record of the wrong shape) is one line naming it. A line cut off by a kill is not
    damage: optuna skips it."""
    optuna = import_optuna(f"Optuna journal {path}")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_plain(path, "Optuna journal")
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        study = optuna.create_study(study_name=label, storage=storage, load_if_exists=True,
                                    directions=["minimize", "maximize"])
        study.trials  # noqa: B018 - reads the whole journal: damage shows here
    except JOURNAL_ERRORS as e:
        msg = " ".join(str(e).split())[:120]
        raise CnnlabError(f"Optuna journal {path}: damaged ({type(e).__name__}: {msg}); "
                          "restore it from a copy, or delete it to start the search over (its "
                          "finished runs are read back, not trained again)") from None
    return study


class OptunaSearch:
    """One ``[[searches]]`` entry with a ``space``: its study, its probes, its winner."""

    def __init__(self, recipe: Recipe, search: dict[str, Any], runs_dir: str | Path,
                 quick: bool = False, seeds: int | None = None):
        optuna = import_optuna(f"recipe {recipe.name}, search {search.get('label', '?')}")

        sheet = getattr(recipe, "budget", "cpu") == "sheet" and not quick
        spec = {**DEFAULTS, **search, **(search.get("quick", {}) if quick else {}),
                **(search.get("sheet", {}) if sheet else {})}
        self.where = f"recipe {recipe.name}, search {spec['label']}"
        check_space(spec["space"], self.where)
        self.recipe, self.quick, self.spec = recipe, quick, spec
        self.label, self.target = spec["label"], float(spec["target"])
        self.space = spec["space"]
        self.n_trials, self.batch = int(spec["trials"]), max(1, int(spec["batch"]))
        self.seeds = list(range(seeds)) if seeds else _seed_list(spec["seeds"], self.where)
        # new seeds for the winner's retraining: as many as the search used, at least 3
        n_final = len(self.seeds) if quick else max(3, len(self.seeds))
        self.final_seeds = _seed_list(spec.get("final_seeds") or list(range(100, 100 + n_final)),
                                      self.where)
        if set(self.seeds) & set(self.final_seeds):
            raise CnnlabError(f"{self.where}: final_seeds must be new seeds, not among the "
                              f"search's {self.seeds}")
        self.validation = int(spec["validation"])
        self.screen_margin = float(spec["screen_margin"])
        if self.validation < 1:
            raise CnnlabError(f"{self.where}: validation must be >= 1 (the search chooses on "
                              "held-out training examples, never on test)")
        self.storage_path = Path(runs_dir) / recipe.name / f"{slug(self.label)}.optuna.jsonl"
        self.storage_path.parent.mkdir(parents=True, exist_ok=True)
        self.study = open_study(self.storage_path, self.label)
        trials = len(self.study.trials)
        # a resumed session must not replay the random draws of the first: offset the seed
        # by the trials already in the study
        self.study.sampler = optuna.samplers.TPESampler(
            seed=int(spec["sampler_seed"]) + trials, multivariate=True,
            constant_liar=True, n_startup_trials=min(6, self.n_trials))
        # enqueued points not yet in the study (a recipe may add some to a resumed search)
        seen = [t.params for t in self.study.trials] + [
            t.system_attrs.get("fixed_params", {}) for t in self.study.trials]
        room = self.n_trials - len(self.study.trials)
        for point in spec["enqueue"]:
            flat = self._flat(point)
            if flat not in seen and room > 0:
                room -= 1
                self.study.enqueue_trial(flat)
                seen.append(flat)
        self.probes: list[dict[str, Any]] = []  # the round in flight
        self.runs_dir = runs_dir

    @staticmethod
    def _flat(point: dict[str, Any]) -> dict[str, Any]:
        """An enqueued point with tuple options (``widths = [3, 6, 8]``) as ``widths.0``..."""
        out: dict[str, Any] = {}
        for k, v in point.items():
            if isinstance(v, list):
                out.update({f"{k}.{i}": x for i, x in enumerate(v)})
            else:
                out[k] = v
        return out

    # ---------------------------------------------------------------- rounds

    def _states(self) -> tuple[int, list[Any]]:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE or "why" in t.user_attrs for t in trials)
        stale = [t for t in trials if t.state == TrialState.RUNNING]
        return done, stale

    @property
    def done(self) -> bool:
        n, stale = self._states()
        return n >= self.n_trials and not stale and not self.probes

    def _config(self, overlay: dict[str, Any], seed: int, validation: int) -> dict[str, Any]:
        cfg = group_config(self.recipe, self.quick, [self.spec.get("set", {})],
                           [overlay, {"validation": validation}])
        return {**cfg, "seed": seed}

    def _group(self, overlay: dict[str, Any], prefix: str = "") -> str:
        """Run folders are named by the point, not the trial number: a point asked again
        (an interrupted session's trial, re-queued) finds its finished runs."""
        digest = hashlib.sha1(json.dumps(overlay, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.label} {prefix}{digest}"

    def jobs(self) -> list[Job]:
        """The next step's runs. A round has two steps: (1) new trials (an interrupted
        session's first) on the first seed; (2) the other seeds, only for the trials that can
        still win: first-seed accuracy within ``screen_margin`` of the target and fewer
        parameters than the best trial meeting the target so far."""
        from optuna.trial import TrialState

        if self.probes:
            return self._dedup([j for p in self.probes if self._promising(p)
                                for j in p["all"][1:]])
        n_done, stale = self._states()
        for t in stale:  # asked but never told: fail it and ask the same point again
            self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            self.study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
        for _ in range(max(len(stale), min(self.batch, self.n_trials - n_done))):
            trial = self.study.ask()
            overlay = suggest(trial, self.space)
            cfg = self._config(overlay, self.seeds[0], self.validation)
            params = param_count(cfg.get("spec") or cfg.get("model", ""),
                                 cfg.get("model_opts", {}))
            probe = {"trial": trial, "overlay": overlay, "param_count": params, "all": [],
                     "results": {}, "step": 1}
            if params is not None:
                group = self._group(overlay)
                probe["all"] = [Job(self.recipe.name, group, s,
                                    self._config(overlay, s, self.validation),
                                    {"trial": trial.number, **overlay}, "search")
                                for s in self.seeds]
            self.probes.append(probe)
        return self._dedup([p["all"][0] for p in self.probes if p["all"]])

    @staticmethod
    def _dedup(jobs: list[Job]) -> list[Job]:
        """One run per folder: two trials of the same point in a round share their runs."""
        seen: dict[str, Job] = {}
        for j in jobs:
            seen.setdefault(j.out_name, j)
        return list(seen.values())

    def _promising(self, probe: dict[str, Any]) -> bool:
        if not probe["all"] or len(probe["all"]) < 2:
            return False
        acc0 = _acc(probe["results"].get(probe["all"][0].out_name))
        best = min((t["param_count"] for t in self.trials() if t.get("feasible")),
                   default=math.inf)
        return acc0 >= self.target - self.screen_margin and probe["param_count"] < best

    def advance(self, jobs: list[Job], results: list[Any]) -> None:
        """Record a step's results (``results`` of :meth:`jobs`, in order); after the last
        step of the round, tell the study every trial's outcome."""
        from optuna.trial import TrialState

        by_name = {j.out_name: asdict(r) for j, r in zip(jobs, results, strict=True)}
        for probe in self.probes:
            probe["results"].update({j.out_name: by_name[j.out_name] for j in probe["all"]
                                     if j.out_name in by_name})
        first = all(p["step"] == 1 for p in self.probes)
        for p in self.probes:
            p["step"] = 2
        if first and any(self._promising(p) for p in self.probes):
            return  # step 2: the other seeds of the promising trials
        for probe in self.probes:
            trial = probe["trial"]
            if not probe["all"]:
                trial.set_user_attr("why", "cannot be built (a window larger than its input)")
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            ran = [j for j in probe["all"] if j.out_name in probe["results"]]
            accs = [_acc(probe["results"][j.out_name]) for j in ran]
            mean = sum(accs) / len(accs)
            # feasible when <= 0: the sampler models the feasible region (Trial.set_constraint)
            trial.set_constraint("accuracy", self.target - mean)
            trial.set_user_attr("val_accs", accs)
            trial.set_user_attr("seeds", [j.seed for j in ran])
            trial.set_user_attr("group", probe["all"][0].group)
            self.study.tell(trial, [float(probe["param_count"]), mean])
        self.probes = []

    # ---------------------------------------------------------------- the winner

    def trials(self) -> list[dict[str, Any]]:
        """Every finished trial: its point, parameters and validation accuracies."""
        from optuna.trial import FixedTrial, TrialState

        out = []
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.WAITING:
                continue  # enqueued, never asked (the trial budget ran out first)
            overlay = suggest(FixedTrial(t.params), self.space)
            row = {"number": t.number, "overlay": overlay,
                   "model_opts": opts_string(overlay.get("model_opts", {}))}
            if t.state == TrialState.COMPLETE:
                mean = float(t.values[1])
                out.append({**row, "state": "complete", "param_count": int(t.values[0]),
                            "mean_val_acc": mean, "val_accs": t.user_attrs.get("val_accs"),
                            "seeds": t.user_attrs.get("seeds"),
                            "group": t.user_attrs.get("group"),
                            # only a mean over every search seed can meet the target
                            "feasible": (mean >= self.target
                                         and t.user_attrs.get("seeds") == self.seeds)})
            elif "why" in t.user_attrs:
                out.append({**row, "state": t.user_attrs["why"]})
        return out

    def winner(self) -> dict[str, Any] | None:
        ok = [t for t in self.trials() if t.get("feasible")]
        return min(ok, key=lambda t: (t["param_count"], -t["mean_val_acc"])) if ok else None

    def final_jobs(self) -> list[Job]:
        """The winner retrained from scratch on new seeds, on the full training set."""
        w = self.winner()
        if w is None:
            return []
        group = self._group(w["overlay"], "final-")
        overlay = {**w["overlay"], **self.spec.get("final", {})}
        return [Job(self.recipe.name, group, s, self._config(overlay, s, 0),
                    {"trial": w["number"], **w["overlay"]}, "final") for s in self.final_seeds]

    def _records(self, group: str, seeds: list[int], kind: str,
                 values: dict[str, Any]) -> list[dict[str, Any]]:
        from cnnlab.common.files import read_json
        from cnnlab.experiments.results import check_result
        from cnnlab.training.rundir import run_path

        out = []
        for seed in seeds:
            name = Job(self.recipe.name, group, seed, {}).out_name
            folder = run_path(self.runs_dir, name)
            res = read_json(folder / "result.json", {})
            if res:
                res = asdict(check_result(res, folder / "result.json"))
            res.pop("history", None)
            out.append({"group": group, "seed": seed, "kind": kind, "values": values,
                        "out_name": name, "run_dir": str(folder), "result": res})
        return out

    def summary(self) -> dict[str, Any]:
        """Everything the report needs: the trials, the winner, every run as a record."""
        trials = self.trials()
        trace = [r for t in trials if t.get("group")
                 for r in self._records(t["group"], t["seeds"] or self.seeds, "search",
                                        {"trial": t["number"], **t["overlay"]})]
        w = self.winner()
        finals = [] if w is None else self._records(
            self._group(w["overlay"], "final-"), self.final_seeds, "final",
            {"trial": w["number"], **w["overlay"]})
        return {"label": self.label, "kind": "optuna", "param": self.spec["param"],
                "values": self.spec["values"], "target": self.target,
                "model": (self.spec.get("set") or {}).get("model"), "space": self.space,
                "seeds": self.seeds, "final_seeds": self.final_seeds,
                "validation": self.validation, "n_trials": self.n_trials,
                "budget": {k: v for k, v in self._config({}, 0, 0).items()
                           if k in ("iterations", "batch_size", "optimizer", "lr", "epochs")},
                "sampler": "optuna TPESampler (multi-objective, constraints, constant liar)",
                "storage": str(self.storage_path), "trials": trials,
                "winner": w, "found": w["param_count"] if w else None,
                "trace": trace + finals, "final": finals}


def run_optuna_searches(recipe: Recipe, specs: list[dict[str, Any]], executor: Any,
                        runs_dir: str | Path, quick: bool = False, seeds: int | None = None,
                        data_dir: str | None = None) -> list[dict[str, Any]]:
    """Run the Optuna searches of ``recipe`` side by side (one executor call per round for
    all of them), then retrain their winners on new seeds (one more call)."""
    active = [OptunaSearch(recipe, s, runs_dir, quick, seeds) for s in specs]
    while any(not s.done for s in active):
        rounds = [(s, s.jobs()) for s in active if not s.done]
        flat = [j for _, jobs in rounds for j in jobs]
        results = iter(executor.map([train_config(j, runs_dir, data_dir) for j in flat])
                       if flat else [])
        for s, jobs in rounds:
            s.advance(jobs, [next(results) for _ in jobs])
    flat = [j for s in active for j in s.final_jobs()]
    if flat:
        executor.map([train_config(j, runs_dir, data_dir) for j in flat])
    out = [s.summary() for s in active]
    _save_frontier(out, Path(runs_dir), recipe.name)
    return out


def _save_frontier(summaries: list[dict[str, Any]], runs_dir: Path, name: str) -> None:
    """``<runs>/<recipe>/frontier.png|svg``: every probe, the Pareto fronts, the winners."""
    from cnnlab.common.plotting import pyplot, save_figure
    from cnnlab.experiments.report.frontier import figure

    fig = figure({"searches": summaries}, runs_dir)
    if fig is not None:
        save_figure(fig, runs_dir / name / "frontier")
        pyplot().close(fig)
