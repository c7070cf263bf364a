"""Recipes: the sheets' practical questions as TOML files, expanded into training configs.

A recipe (``cnnlab/recipes/<name>.toml``, format in docs/experiments.md) lists variants,
sweeps (grids) and searches over :class:`~cnnlab.training.trainer.TrainConfig` keys. :func:`expand`
turns it into :class:`Job`s (one per configuration and seed); :mod:`cnnlab.experiments.run` runs
them through an :class:`~cnnlab.experiments.executor.Executor` and writes ``experiment.json``
next to the runs, which is all the report needs.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.common.config import check_range
from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import load_mapping
from cnnlab.experiments.recipe_types import MAX_RUNS, RECIPE_RANGES, check_types

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
RECIPE_KEYS = {"title", "source", "sheet", "question", "text", "seeds", "order", "base", "quick",
               "variants", "sweeps", "searches", "analyze", "findings", "measure"}
VARIANT_KEYS = {"label", "quick", "sheet", "requires"}
SWEEP_KEYS = {"label", "quick", "sheet", "requires", "set", "grid"}
SEARCH_KEYS = {"label", "param", "values", "target", "set", "quick", "sheet", "requires",
               # an Optuna search over a family (cnnlab.experiments.search.optuna_search)
               "space", "trials", "batch", "seeds", "final_seeds", "validation", "enqueue",
               "sampler_seed", "screen_margin", "final"}
FINDINGS_KEYS = {"kind", "metric", "baseline", "param", "plots", "table", "speed", "threshold",
                 "every", "describe", "evaluate"}
FINDINGS_KINDS = {"curves", "compare", "sweep", "search"}
# What a smoke run never needs: plots and TensorBoard cost seconds per run.
QUICK_DEFAULTS = {"plots": False, "tensorboard": False}
#: Budget profiles: ``cpu`` (the recipe's ``[base]`` and ``seeds``, sized for ``run all`` on 2
#: CPU cores) and ``sheet`` (the ``[sheet]`` overlay: the sheets' own numbers, for a GPU or a
#: cluster; ``seeds`` there, else :data:`SHEET_SEEDS`).
BUDGETS = ("cpu", "sheet")
SHEET_SEEDS = 5


@dataclass
class Recipe:
    name: str
    title: str
    sheet: str  # the sheet's name (TOML ``source``; a string ``sheet`` is read as well)
    question: str
    text: str = ""
    seeds: int = 1
    order: int = 1000
    base: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    analyze: dict[str, Any] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    measure: dict[str, Any] = field(default_factory=dict)  # cnnlab.experiments.measure
    sheet_budget: dict[str, Any] = field(default_factory=dict)  # the TOML [sheet] table
    path: str = ""
    budget: str = "cpu"  # the profile being run (set by cnnlab.experiments.run, not in TOML)

    def seeds_for(self, budget: str) -> int:
        """Seeds per configuration in ``budget`` (``cpu``: ``seeds``; ``sheet``: its own)."""
        return int(self.sheet_budget.get("seeds", SHEET_SEEDS)) if budget == "sheet" else self.seeds


@dataclass
class Job:
    """One training run of a recipe: a group (variant, sweep point, search probe) and a seed."""

    recipe: str
    group: str
    seed: int
    config: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    kind: str = "variant"
    requires: str | None = None

    @property
    def out_name(self) -> str:
        return f"{self.recipe}/{slug(self.group)}-s{self.seed}"


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-.").lower()
    return s or "run"


# ------------------------------------------------------------------------ loading


def _check_keys(data: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise CnnlabError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                          f"{', '.join(sorted(known))}")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe by name (``huji_q2``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = RECIPE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise CnnlabError(f"no recipe {str(name_or_path)!r}; known: {', '.join(recipe_names())}")
    data = load_mapping(path, "recipe")
    _check_keys(data, RECIPE_KEYS, str(path))
    check_types(data, path)
    data = _sheet_split(data, path)
    for key in ("title", "sheet", "question"):
        if key not in data:
            raise CnnlabError(f"{path}: missing key {key!r}")
    for i, v in enumerate(data.get("variants", [])):
        _check_keys(v, VARIANT_KEYS | set(_train_keys()), f"{path}: variant {i}")
        if "label" not in v:
            raise CnnlabError(f"{path}: variant {i} needs a label")
    for i, sw in enumerate(data.get("sweeps", [])):
        _check_keys(sw, SWEEP_KEYS, f"{path}: sweep {i}")
        if not sw.get("grid"):
            raise CnnlabError(f"{path}: sweep {i} needs a grid = {{ key = [values] }}")
    for i, s in enumerate(data.get("searches", [])):
        _check_keys(s, SEARCH_KEYS, f"{path}: search {i}")
        for key in ("label", "param", "values", "target"):
            if key not in s:
                raise CnnlabError(f"{path}: search {i} needs {key!r}")
    findings = data.get("findings", {})
    _check_keys(findings, FINDINGS_KEYS, f"{path}: [findings]")
    if findings.get("kind", "compare") not in FINDINGS_KINDS:
        raise CnnlabError(f"{path}: [findings] kind must be one of {sorted(FINDINGS_KINDS)}")
    _check_keys(data.get("analyze", {}), {"models"}, f"{path}: [analyze]")
    if "measure" in data:
        from cnnlab.experiments.measure import check

        check(data["measure"], path.stem)
    recipe = Recipe(name=path.stem, path=str(path), **data)
    try:
        _check_expansion(recipe, path)
    except (TypeError, AttributeError, ValueError, KeyError) as e:  # a shape check_types
        raise CnnlabError(f"{path}: malformed recipe ({type(e).__name__}: {e}); "  # misses
                          "see docs/experiments.md for the format") from None
    return recipe


def _check_expansion(recipe: Recipe, path: Path) -> None:
    # unknown TrainConfig keys and clashing run names fail here, not mid-experiment
    for quick, budget in ((False, "cpu"), (True, "cpu"), (False, "sheet")):
        jobs = expand(recipe, quick=quick, seeds=1, budget=budget)
        for s in recipe.searches:
            spec = {**s, **(s.get("quick", {}) if quick else {}),
                    **(s.get("sheet", {}) if budget == "sheet" and not quick else {})}
            jobs += [Job(recipe.name, f"{spec['label']} {value_label(spec['param'], v)}", 0,
                         group_config(recipe, quick, [spec.get("set", {})],
                                      [{spec["param"]: v}], budget)) for v in spec["values"]]
        for job in jobs:
            train_config(job, "runs")
        names = [j.out_name for j in jobs]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise CnnlabError(f"{path}: labels give the same run folder: {', '.join(clash)}")


def _sheet_split(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The sheet's name is ``source = "..."`` (or, in older files, ``sheet = "..."``); a
    ``[sheet]`` table is the sheet budget profile: TrainConfig keys and ``seeds``."""
    data = dict(data)
    table = data.get("sheet")
    if isinstance(table, dict):
        if "source" not in data:
            raise CnnlabError(f"{path}: with a [sheet] budget table, name the sheet with "
                              "source = \"...\" (TOML cannot hold both as 'sheet')")
        _check_keys(table, set(_train_keys()) | {"seeds"}, f"{path}: [sheet]")
        seeds = table.get("seeds", SHEET_SEEDS)
        if not isinstance(seeds, int) or isinstance(seeds, bool):
            raise CnnlabError(f"{path}: [sheet] seeds must be an integer >= 1, got {seeds!r}")
        check_range("seeds", seeds, RECIPE_RANGES["seeds"], f"{path}: [sheet]")
        data["sheet_budget"] = data.pop("sheet")
    if "source" in data:
        if "sheet" in data:
            raise CnnlabError(f"{path}: give the sheet's name once, as source = \"...\"")
        data["sheet"] = data.pop("source")
    return data


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise CnnlabError(f"unknown budget {budget!r}; known: {', '.join(BUDGETS)}")
    return budget


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def all_recipes() -> list[Recipe]:
    return sorted((load_recipe(n) for n in recipe_names()), key=lambda r: (r.order, r.name))


def _train_keys() -> list[str]:
    import dataclasses

    from cnnlab.training.trainer import TrainConfig

    return [f.name for f in dataclasses.fields(TrainConfig)]


# ------------------------------------------------------------------------ expansion


def _set(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` or ``model_opts.<option>`` in a config under construction."""
    if key.startswith("model_opts."):
        opts = cfg.setdefault("model_opts", {})
        if isinstance(opts, str):
            opts = cfg["model_opts"] = parse_opts(opts)
        opts[key.split(".", 1)[1]] = value
    else:
        cfg[key] = copy.deepcopy(value)


def _overlay(cfg: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if key == "model_opts" and isinstance(value, dict):
            for k, v in value.items():
                _set(cfg, f"model_opts.{k}", v)
        else:
            _set(cfg, key, value)


def parse_opts(text: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in filter(None, (s.strip() for s in text.split(","))))


def opts_string(opts: dict[str, Any] | str) -> str:
    """``{"widths": [16, 32, 128], "conv2": True}`` -> ``"widths=16x32x128,conv2=true"``."""
    if isinstance(opts, str):
        return opts

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list | tuple):
            return "x".join(str(x) for x in v)
        return str(v)

    return ",".join(f"{k}={fmt(v)}" for k, v in opts.items())


def value_label(key: str, value: Any) -> str:
    short = key.split(".", 1)[1] if key.startswith("model_opts.") else key
    return f"{short}={opts_string({'x': value})[2:]}"


def group_config(recipe: Recipe, quick: bool, own: list[dict[str, Any]],
                 last: list[dict[str, Any]], budget: str | None = None) -> dict[str, Any]:
    """``[base]``, the group's own keys, ``[quick]`` (or ``[sheet]`` in the sheet profile),
    then ``last`` (swept values, the group's quick/sheet table): a variant's own budget never
    leaks into a --quick or sheet run. ``budget`` defaults to ``recipe.budget``.
    """
    budget = check_budget(budget or recipe.budget)
    cfg: dict[str, Any] = {"progress": "off"}
    _overlay(cfg, recipe.base)
    for layer in own:
        _overlay(cfg, layer)
    if quick:
        _overlay(cfg, QUICK_DEFAULTS)
        _overlay(cfg, recipe.quick)
    elif budget == "sheet":
        _overlay(cfg, {k: v for k, v in recipe.sheet_budget.items() if k != "seeds"})
    for layer in last:
        _overlay(cfg, layer)
    return cfg


def _thin(values: list[Any], quick: bool) -> list[Any]:
    """--quick keeps the first and last value of a swept list: the ends of the range."""
    return [values[0], values[-1]] if quick and len(values) > 2 else list(values)


def _own_layer(entry: dict[str, Any], quick: bool, budget: str) -> dict[str, Any]:
    """A variant's or sweep's own ``quick``/``sheet`` table for this run."""
    if quick:
        return entry.get("quick", {})
    return entry.get("sheet", {}) if budget == "sheet" else {}


def check_run_count(recipe: Recipe, quick: bool, n_seeds: int) -> int:
    """The number of runs :func:`expand` would make, counted before any is made; more than
    :data:`MAX_RUNS` is one error naming the count."""
    configs = len(recipe.variants)
    for sw in recipe.sweeps:
        configs += math.prod(len(_thin(list(v), quick)) for v in sw["grid"].values())
    runs = configs * n_seeds
    if runs > MAX_RUNS:
        raise CnnlabError(f"recipe {recipe.name}: {configs:,} configuration(s) x {n_seeds:,} "
                          f"seed(s) = {runs:,} runs, over the limit of {MAX_RUNS:,} per "
                          "recipe; use fewer sweep values or seeds (--seeds N)")
    return runs


def expand(recipe: Recipe, quick: bool = False, seeds: int | None = None,
           budget: str | None = None) -> list[Job]:
    """The variant and sweep jobs of ``recipe`` in ``budget`` (default ``recipe.budget``;
    searches are run by :mod:`cnnlab.experiments.search.run`)."""
    budget = check_budget(budget or recipe.budget)
    n_seeds = seeds if seeds is not None else (1 if quick else recipe.seeds_for(budget))
    check_run_count(recipe, quick, n_seeds)
    jobs: list[Job] = []
    for v in recipe.variants:
        own = {k: val for k, val in v.items() if k not in VARIANT_KEYS}
        cfg = group_config(recipe, quick, [own], [_own_layer(v, quick, budget)], budget)
        jobs += [Job(recipe.name, v["label"], s, {**cfg, "seed": s}, {}, "variant",
                     v.get("requires")) for s in range(n_seeds)]
    for sw in recipe.sweeps:
        grid = {k: _thin(list(vals), quick) for k, vals in sw["grid"].items()}
        for combo in itertools.product(*grid.values()):
            values = dict(zip(grid, combo, strict=True))
            label = sw.get("label")
            label = (label.format(**{k.replace("model_opts.", ""): v for k, v in values.items()})
                     if label else ", ".join(value_label(k, v) for k, v in values.items()))
            cfg = group_config(recipe, quick, [sw.get("set", {})],
                               [values, _own_layer(sw, quick, budget)], budget)
            jobs += [Job(recipe.name, label, s, {**cfg, "seed": s}, values, "sweep",
                         sw.get("requires")) for s in range(n_seeds)]
    return jobs


def train_config(job: Job, runs_dir: str | Path, data_dir: str | None = None) -> Any:
    """The complete :class:`TrainConfig` of ``job`` inside ``runs_dir``."""
    from cnnlab.training.trainer import TrainConfig

    cfg = dict(job.config)
    if "model_opts" in cfg:
        cfg["model_opts"] = opts_string(cfg["model_opts"])
    cfg.update(out_name=job.out_name, runs_dir=str(runs_dir))
    if data_dir:
        cfg["data_dir"] = data_dir
    return TrainConfig.from_dict(cfg, where=f"recipe {job.recipe}, {job.group}")


def available(requires: str | None) -> bool:
    if requires is None:
        return True
    if requires == "cuda":
        import torch

        return torch.cuda.is_available()
    raise CnnlabError(f"unknown requirement {requires!r} (known: cuda)")
