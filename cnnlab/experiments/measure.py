"""Measurements of a recipe beyond its training runs: the optional ``[measure]`` table.

A recipe's ``[measure]`` names a ``kind`` from :data:`KINDS` plus that kind's options (and a
``quick`` table of overrides for ``--quick``). :func:`run_measure` runs it after the recipe's
training jobs, handing it the finished run folders; its numbers go into ``experiment.json``
under ``"measure"`` (NaN/inf as null) and its figures into ``<recipe folder>/plots``.
:func:`cnnlab.experiments.report.measure_text.describe` turns them into findings (sentences and
tables) when the report is written.

Kinds (the TTIC sheet; the measurements themselves live in :mod:`cnnlab.ttic`):

* ``video_macs`` -- Problem 1 per conv of ``video3d``: analyzer vs formula vs forward hooks;
* ``bottleneck`` -- Problem 3: multiplication counts, variance at init, gradient vs depth, and
  each run replayed with its first and last residual blocks watched (update ratios);
* ``pyramid_scales`` -- Problem 4: each trained run tested at single scales.

A measurement is repeated only when its options or the runs it read changed: a second
``run_experiment`` reads the result back from ``experiment.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json

VERSION = 1  # bump when a measurement's code changes what it returns


@dataclass(frozen=True)
class Option:
    """One option of a measure kind: its type (``int``, ``num``, ``gamma`` -- a number or an
    expression such as ``"1/sqrt2"`` --, ``str``, or ``list[<type>]``) and default."""

    type: str
    default: Any


@dataclass
class Context:
    """What a measurement gets: the recipe's name and folder, its finished job records
    (``group``, ``seed``, ``run_dir``, ``result``), whether this is ``--quick``."""

    recipe: str
    out: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    quick: bool = False
    data_dir: str | None = None

    def figures(self, paths: list[Path]) -> list[str]:
        """Figure paths relative to the recipe folder (the folder may move)."""
        return sorted({str(Path(p).relative_to(self.out)) for p in paths})


@dataclass(frozen=True)
class Kind:
    run: Callable[[dict[str, Any], Context], dict[str, Any]]
    options: dict[str, Option]


# ------------------------------------------------------------------------ options


def _gamma(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        from cnnlab.ir.spec import parse_value

        try:
            out = parse_value(v)
        except Exception:
            return None
        return float(out) if isinstance(out, int | float) and not isinstance(out, bool) else None
    return None


def _scalar(v: Any, typ: str) -> tuple[bool, Any]:
    if typ == "int":
        return isinstance(v, int) and not isinstance(v, bool), v
    if typ == "num":
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        return ok, float(v) if ok else v
    if typ == "gamma":
        g = _gamma(v)
        return g is not None, g
    if typ == "str":
        return isinstance(v, str), v
    if typ == "bool":
        return isinstance(v, bool), v
    raise ValueError(typ)


TYPE_WORDS = {"int": "an integer", "num": "a number", "gamma": "a number or e.g. '1/sqrt2'",
              "str": "a string", "bool": "true or false"}
LIST_WORDS = {"int": "integers", "num": "numbers", "gamma": "numbers (or e.g. '1/sqrt2')",
              "str": "strings", "bool": "booleans"}


def _value(v: Any, typ: str, where: str) -> Any:
    if typ.startswith("list["):
        inner = typ[5:-1]
        if not isinstance(v, list):
            raise CnnlabError(f"{where} must be a list of {LIST_WORDS[inner]}, got {v!r}")
        return [_value(x, inner, f"{where}[{i}]") for i, x in enumerate(v)]
    ok, out = _scalar(v, typ)
    if not ok:
        raise CnnlabError(f"{where} must be {TYPE_WORDS[typ]}, got {v!r}")
    return out


def options(spec: dict[str, Any], recipe: str, quick: bool = False) -> tuple[str, dict]:
    """``(kind, resolved options)`` of a ``[measure]`` table: defaults, the table's keys, then
    (with ``quick``) its ``quick`` table. Any bad key or value is one :class:`CnnlabError`
    line naming the recipe and the key."""
    where = f"recipe {recipe}: [measure]"
    if not isinstance(spec, dict):
        raise CnnlabError(f"{where} must be a table, got {spec!r}")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise CnnlabError(f"{where} kind must be one of {', '.join(sorted(KINDS))}, "
                          f"got {kind!r}")
    known = KINDS[kind].options
    extra = spec.get("quick", {})
    if not isinstance(extra, dict):
        raise CnnlabError(f"{where} quick must be a table of options, got {extra!r}")
    out = {k: o.default for k, o in known.items()}
    for table, layer in (("", spec), ("quick.", extra)):
        for key, value in layer.items():
            if key in ("kind", "quick") and not table:
                continue
            if key not in known:
                raise CnnlabError(f"{where} {table}{key}: unknown option of kind {kind!r}; "
                                  f"known: {', '.join(sorted(known))}")
            checked = _value(value, known[key].type, f"{where} {table}{key}")
            if not table or quick:
                out[key] = checked
    return kind, out


def check(spec: dict[str, Any] | None, recipe: str) -> None:
    """Validate a recipe's ``[measure]`` table (both forms) without running anything."""
    if spec:
        options(spec, recipe, quick=False)


# ------------------------------------------------------------------------ running


def finite(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def _key(kind: str, opts: dict[str, Any], quick: bool, runs: list[dict[str, Any]]) -> str:
    basis = {"version": VERSION, "kind": kind, "options": opts, "quick": quick,
             "runs": [[r.get("out_name"), r.get("result")] for r in runs]}
    text = json.dumps(finite(basis), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_measure(recipe: Any, records: list[dict[str, Any]], out: Path, quick: bool = False,
                data_dir: str | None = None) -> dict[str, Any] | None:
    """Run ``recipe.measure`` on the finished runs among ``records``; ``None`` without one.

    Returns the ``"measure"`` entry of ``experiment.json``: kind, resolved options, result,
    seconds taken and a key of what it read; an entry of the previous ``experiment.json`` in
    ``out`` with the same key is returned as it is (nothing is measured twice).
    """
    if not recipe.measure:
        return None
    kind, opts = options(recipe.measure, recipe.name, quick)
    runs = [r for r in records if r.get("run_dir") and r.get("result")]
    key = _key(kind, opts, quick, runs)
    prev = read_json(Path(out) / "experiment.json", {})
    if (prev.get("measure") or {}).get("key") == key:
        return prev["measure"]
    t0 = time.perf_counter()
    result = KINDS[kind].run(opts, Context(recipe.name, Path(out), runs, quick, data_dir))
    return finite({"kind": kind, "options": opts, "key": key, "result": result,
                   "wall_s": time.perf_counter() - t0})


# ------------------------------------------------------------------------ the kinds


def video_macs(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Problem 1 per layer of ``video3d``, and (``clips > 0``) a figure of a few clips."""
    from cnnlab.ttic.video3d import macs_table

    res = macs_table(opts["frames"], opts["size"], opts["batch"])
    res["figures"] = []
    if opts["clips"] > 0:
        from cnnlab.data import datasets as data
        from cnnlab.ttic.plots import plot_clips

        x = data.load(opts["clips_dataset"], ctx.data_dir).x_test
        res["figures"] = ctx.figures(plot_clips(x, ctx.out / "plots", n=opts["clips"]))
    return res


def bottleneck(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Problem 3 (a)-(c); ``probes > 0`` replays every run of the recipe with probes."""
    from cnnlab.ttic import bottleneck as bn
    from cnnlab.ttic.plots import plot_bottleneck

    n, nb = opts["width"], opts["bottleneck"]
    reports = [bn.macs_report(opts["macs_depth"], n, b) for b in opts["bottlenecks"]]
    out: dict[str, Any] = {
        "macs": [asdict(r) | {"cheaper": r.bottleneck_cheaper} for r in reports],
        "init": [asdict(bn.init_statistics(opts["init_depth"], g, n, nb, branch=b,
                                           samples=opts["init_samples"]))
                 for g in opts["gammas"] for b in ("synthetic", "relu")],
        "grad_depth": [], "train": []}
    for g in opts["grad_gammas"]:
        for mode in ("linear", "init"):
            r = bn.grad_vs_depth(opts["grad_depths"], g, n, nb, mode=mode,
                                 batch=opts["grad_batch"])
            out["grad_depth"].append(asdict(r) | {"log_gamma": r.log_gamma, "ratios": r.ratios})
    if opts["probes"] > 0:
        for rec in ctx.runs:
            p = bn.probe_replay(rec["run_dir"], opts["probes"])
            out["train"].append(asdict(p) | {
                "label": rec["group"], "seed": rec["seed"], "grad_ratio": p.grad_ratio,
                "update_ratio": p.update_ratio, "run_test_acc": rec["result"].get("test_acc")})
    out["figures"] = ctx.figures(plot_bottleneck(finite(out), ctx.out / "plots"))
    return out


def pyramid_scales(opts: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Problem 4: every trained run (or those of the ``variants`` labels) at single scales."""
    from cnnlab.analysis.analyze import analyze_graph
    from cnnlab.ir.spec import parse
    from cnnlab.ttic.multiscale import scale_test_set
    from cnnlab.ttic.plots import plot_pyramid
    from cnnlab.ttic.pyramid import accuracy_per_scale, load_trained

    labels = opts["variants"] or list(dict.fromkeys(r["group"] for r in ctx.runs))
    missing = [lb for lb in labels if not any(r["group"] == lb for r in ctx.runs)]
    if not labels:
        raise CnnlabError(f"recipe {ctx.recipe}: [measure] pyramid_scales: no finished run")
    if missing:
        raise CnnlabError(f"recipe {ctx.recipe}: [measure] variants: no finished run of "
                          f"{', '.join(map(repr, missing))}")
    scales = opts["scales"]
    tests: dict[tuple, list[Any]] = {}
    out: dict[str, Any] = {"scales": scales, "test_size": opts["test_size"], "models": {}}
    for label in labels:
        accs, trained = [], []
        for rec in (r for r in ctx.runs if r["group"] == label):
            t = load_trained(rec["run_dir"])
            src = (t.dataset_info.get("source", "mnist"),
                   int(t.dataset_info.get("canvas", t.input_shape[-1])))
            if src not in tests:
                tests[src] = [scale_test_set(s, opts["test_size"], source=src[0],
                                             data_dir=ctx.data_dir, canvas=src[1])
                              for s in scales]
            accs.append(accuracy_per_scale(t, tests[src]))
            trained.append((t, rec))
        t, rec = trained[0]
        out.setdefault("train_scales", list(t.dataset_info.get("train_scales") or [0.5, 1.0]))
        out["models"][label] = {
            "model": t.model, "spec": t.spec, "seeds": len(accs), "normalize": t.normalize,
            "params": sum(p.numel() for p in t.net.parameters()),
            "params_analyzer": (analyze_graph(parse(t.spec), t.input_shape).total.params
                                if t.spec else None),
            "test_acc": [r["result"].get("test_acc") for _, r in trained],
            "acc_per_scale": [sum(a) / len(a) for a in zip(*accs, strict=True)]}
    out["figures"] = ctx.figures(plot_pyramid(out, ctx.out / "plots"))
    return out


def _kinds() -> dict[str, Kind]:
    nbs = [32, 64, 127, 128, 129, 192]
    scales = [0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0]
    return {
        "video_macs": Kind(video_macs, {
            "frames": Option("int", 8), "size": Option("int", 64), "batch": Option("int", 1),
            "clips": Option("int", 3), "clips_dataset": Option("str", "moving-mnist")}),
        "bottleneck": Kind(bottleneck, {
            "width": Option("int", 256), "bottleneck": Option("int", 64),
            "macs_depth": Option("int", 8), "bottlenecks": Option("list[int]", nbs),
            "init_depth": Option("int", 12), "init_samples": Option("int", 4096),
            "gammas": Option("list[gamma]", [1.0, 2 ** -0.5]),
            "grad_depths": Option("list[int]", list(range(2, 13))),
            "grad_gammas": Option("list[gamma]", [1.0, 2 ** -0.5, 0.5]),
            "grad_batch": Option("int", 256), "probes": Option("int", 30)}),
        "pyramid_scales": Kind(pyramid_scales, {
            "scales": Option("list[num]", scales), "test_size": Option("int", 2000),
            "variants": Option("list[str]", [])}),
    }


KINDS: dict[str, Kind] = _kinds()
