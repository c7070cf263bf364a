"""The report: one self-contained HTML file (plots inline as base64 PNG) and optionally a PDF.

Per question: the sheet's text, the configurations, tables, plots and the findings of
:mod:`.findings`. Input is experiment folders (``experiment.json``), folders
holding them, or plain run folders (``result.json``), which are reported together as "other runs".
The page is rendered from the jinja2 templates in ``templates/`` (package data) with every value
escaped; the PDF comes from :mod:`cnnlab.experiments.report.pdf` (Chromium, else matplotlib).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import check_plain, check_utf8_name, read_json, write_text
from cnnlab.common.plotting import pyplot
from cnnlab.experiments.report import findings as fnd
from cnnlab.experiments.report.pdf import (  # noqa: F401 (CHROMIUM_FLAGS: re-exported)
    CHROMIUM_FLAGS,
    chromium,
    pdf_chromium,
    pdf_matplotlib,
)
from cnnlab.experiments.results import check_result, read_result

# every run has its own: not shown in the configuration tables (seeds are averaged over),
# nor are the trainer's RESULT_FREE_KEYS (where and how a run was executed)
HIDDEN_IDENTITY_KEYS = frozenset({"out_name", "seed"})
PLOT_LABELS = {"test_acc": "test accuracy", "train_acc": "train accuracy",
               "test_error": "test error", "train_loss": "train loss (eval)",
               "test_loss": "test loss", "ratio": "test / train accuracy",
               "batch_loss": "mini-batch loss", "regularizer": "regularizer (without lambda)",
               "step_time": "seconds per step"}
#: the figures are printed at about their own size (one per row, 16 cm wide on A4), so a
#: legend in LEGEND_PT points reads as that many points on paper
FIGSIZE = (6.4, 3.4)
LEGEND_PT = 9
PAPERS = ("a4", "letter")


# ------------------------------------------------------------------------ input


def _adhoc(run_dirs: list[Path]) -> dict[str, Any]:
    """Plain run folders as one experiment document, compared against the first."""
    jobs = []
    for d in run_dirs:
        res = asdict(read_result(d / "result.json"))
        cfg = read_json(d / "config.json", {})
        jobs.append({"group": d.name, "seed": cfg.get("seed", 0), "kind": "variant",
                     "values": {}, "out_name": d.name, "run_dir": str(d), "result": res})
    return {"recipe": {"name": "runs", "title": "Runs", "sheet": "Other runs",
                       "question": "", "text": "", "order": 10**6,
                       "findings": {"kind": "compare",
                                    "plots": ["train_acc", "test_acc", "train_loss"]}},
            "jobs": jobs, "searches": [], "_root": str(run_dirs[0].parent)}


def _readable_run(folder: Path) -> None:
    """Raise a CnnlabError naming the file when a run folder cannot be reported on."""
    from cnnlab.training.runlog import read_metrics

    for name in ("env.json", "config.json"):
        if not isinstance(read_json(folder / name, {}), dict):
            raise CnnlabError(f"{folder / name}: not a JSON table")
    if (folder / "metrics.jsonl").is_file():
        read_metrics(folder)


def _check_doc(doc: Any, f: Path) -> list[str]:
    """Validate an experiment document in place: drop the jobs whose run cannot be read;
    return one warning per dropped job. Raises a CnnlabError if the document itself is bad."""
    if not isinstance(doc, dict) or not isinstance(doc.get("recipe"), dict) or not isinstance(
            doc.get("jobs"), list):
        raise CnnlabError(f"{f}: not an experiment record (recipe, jobs)")
    if not isinstance(doc.get("searches", []), list):
        raise CnnlabError(f"{f}: searches is not a list")
    root = f.parent.parent
    warnings, keep = [], []
    for i, rec in enumerate(doc["jobs"]):
        try:
            if not isinstance(rec, dict) or not isinstance(rec.get("out_name"), str) or not \
                    isinstance(rec.get("result", {}), dict):
                raise CnnlabError(f"{f}: jobs[{i}] is not a job record")
            if rec.get("result"):
                check_result(rec["result"], f"{f}: jobs[{i}].result")
            folder = root / rec["out_name"]
            if not folder.is_dir() and isinstance(rec.get("run_dir"), str):
                folder = Path(rec["run_dir"])
            if folder.is_dir():
                _readable_run(folder)
        except CnnlabError as e:
            warnings.append(str(e))
            continue
        keep.append(rec)
    doc["jobs"] = keep
    return warnings


def collect(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Experiment documents found under ``paths``, in the sheets' order.

    A document or run that cannot be read (bad ``experiment.json``, ``result.json``,
    ``config.json`` or ``metrics.jsonl``) is skipped with a warning on stderr naming the file;
    the skipped ones are listed under the document's ``_skipped`` key (and the last
    document's when the file itself was unreadable)."""
    docs, loose, skipped = [], [], []
    for p in map(Path, paths):
        if not p.exists():
            raise CnnlabError(f"{p}: no such file or folder")
        found = [p] if p.name == "experiment.json" else sorted(
            f for f in p.rglob("experiment.json") if not _hidden(f, p))
        for f in found:
            try:
                check_utf8_name(f)
                doc = read_json(f)
                doc_skipped = _check_doc(doc, f)
            except CnnlabError as e:
                skipped.append(str(e))
                continue
            skipped += doc_skipped
            doc["_path"] = str(f)
            doc["_skipped"] = doc_skipped
            docs.append(doc)
        if not found:
            runs = [p] if (p / "result.json").is_file() else sorted(
                r.parent for r in p.rglob("result.json") if not _hidden(r, p))
            for r in runs:
                try:
                    check_utf8_name(r, "run")
                    read_result(r / "result.json")
                    _readable_run(r)
                except CnnlabError as e:
                    skipped.append(str(e))
                    continue
                loose.append(r)
    for msg in skipped:
        print(f"cnnlab: warning: skipped {msg}", file=sys.stderr)
    if not docs and not loose:
        extra = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
        raise CnnlabError(f"no experiment.json or finished run (result.json) under "
                          f"{', '.join(map(str, paths))}{extra}")
    docs.sort(key=lambda d: (_order(d), str(d["recipe"].get("name", ""))))
    if loose:
        docs.append(_adhoc(loose))
        docs[-1]["_skipped"] = [m for m in skipped if m not in
                                {w for d in docs[:-1] for w in d["_skipped"]}]
    return docs


def _hidden(f: Path, root: Path) -> bool:
    """Under a dot-folder (a run moved aside by --overwrite, a checkpoint being written)."""
    return any(part.startswith(".") for part in f.relative_to(root).parts[:-1])


def _order(doc: dict[str, Any]) -> float:
    v = doc["recipe"].get("order", 1000)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else 1000


# ------------------------------------------------------------------------ plots


def figure(groups: list[fnd.Group], plot: str) -> Any | None:
    """Mean curve over seeds per group (± std band); ``"train_acc+test_acc"`` draws several
    metrics on one axis (train dashed). ``None`` when no run logged the metric.
    """
    plt = pyplot()
    metrics = plot.split("+")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=100)
    drawn, positive = 0, True
    for gi, g in enumerate(groups):
        for metric in metrics:
            its, mean, std = g.curve(metric)
            if not its:
                continue
            label = g.label if len(metrics) == 1 else f"{g.label}: {PLOT_LABELS.get(metric)}"
            style = "--" if metric.startswith("train") and len(metrics) > 1 else "-"
            ax.plot(its, mean, style, color=f"C{gi % 10}", label=label, lw=1.5,
                    marker="o" if len(its) <= 12 else None, ms=3)
            if len(g.runs) > 1:
                lo = [m - s for m, s in zip(mean, std, strict=True)]
                hi = [m + s for m, s in zip(mean, std, strict=True)]
                ax.fill_between(its, lo, hi, color=f"C{gi % 10}", alpha=0.2, lw=0)
            positive = positive and all(v > 0 for v in mean)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    title = " and ".join(PLOT_LABELS.get(m, m) for m in metrics)
    ax.set_xlabel("iteration", fontsize=LEGEND_PT)
    ax.set_ylabel(title if len(metrics) == 1 else "accuracy" if "acc" in plot else plot,
                  fontsize=LEGEND_PT)
    ax.tick_params(labelsize=LEGEND_PT - 1)
    if positive and metrics[0] in ("regularizer", "batch_loss", "train_loss", "test_loss",
                                   "test_error"):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=LEGEND_PT + 1)
    ax.grid(alpha=0.3)
    # many curves: the legend goes beside the axes, in columns, so it never hides a curve
    if drawn > 6:
        ax.legend(fontsize=LEGEND_PT - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  ncol=1 + drawn // 14, frameon=False)
    else:
        ax.legend(fontsize=LEGEND_PT, loc="best")
    fig.tight_layout()
    return fig


def png_base64(fig: Any) -> str:
    """``fig`` as a base64 PNG (for a ``data:`` URI); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------ sections

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def measure_figures(doc: dict[str, Any], names: list[str], missing: list[str]
                    ) -> list[tuple[str, str]]:
    """(title, base64 PNG) of the figures a recipe's measurement wrote into its folder;
    one that is gone, outside the folder or not a PNG is named in ``missing`` instead."""
    if "_path" not in doc:
        return []
    folder = Path(doc["_path"]).parent.resolve()
    out = []
    for name in names:
        path = (folder / name).resolve()
        data = b""
        if path.is_relative_to(folder) and path.is_file():
            data = path.read_bytes()
        if not data.startswith(PNG_MAGIC):
            missing.append(f"figure {name}: not found as a PNG in {folder}")
            continue
        title = Path(name).stem.replace("_", " ")
        out.append((title, base64.b64encode(data).decode("ascii")))
    return out


def evaluation_plots(doc: dict[str, Any], groups: list[fnd.Group], missing: list[str]
                     ) -> list[tuple[str, str]]:
    """(title, base64 PNG) of ``cnnlab evaluate``'s figures for the run that the recipe's
    ``[findings] evaluate`` names (a variant label; its lowest seed): the confusion matrix,
    the misclassified digits and the first layer's filters (issue 23: "the report includes
    them for the baseline"). A run that cannot be evaluated (gone, unfinished, its data
    elsewhere) is named in ``missing`` with the reason instead."""
    label = ((doc["recipe"].get("findings") or {}).get("evaluate"))
    if not label:
        return []
    runs = [r for g in groups if g.label == label for r in g.runs if r.get("run_dir")]
    if not runs:
        missing.append(f"evaluation of {label}: no finished run of it in this experiment")
        return []
    run = min(runs, key=lambda r: (r.get("seed") or 0, str(r["run_dir"])))
    from cnnlab.training.evaluation import evaluate_run, evaluation_figures

    try:
        ev = evaluate_run(run["run_dir"])
    except CnnlabError as e:
        missing.append(f"evaluation of {label}: {e}")
        return []
    seed = f" seed {run['seed']}" if run.get("seed") is not None else ""
    titles = {"confusion": "confusion matrix", "misclassified": "misclassified examples",
              "filters": "first-layer filters"}
    out = []
    for name, fig in evaluation_figures(ev).items():
        title = (f"{label}{seed}: {titles.get(name, name)} ({ev.split} set, accuracy "
                 f"{ev.accuracy:.2%} of {ev.examples:,})")
        out.append((title, png_base64(fig)))
    pyplot().close("all")
    return out


def _configs(groups: list[fnd.Group]) -> tuple[dict, dict]:
    """(keys shared by every run, per-group keys that differ: groups that differ in none are
    left out), from the saved config.json, without the keys that do not change a result.
    """
    from cnnlab.training.trainer import RESULT_FREE_KEYS  # lazily: the trainer imports torch

    hidden = RESULT_FREE_KEYS | HIDDEN_IDENTITY_KEYS
    per: dict[str, dict[str, Any]] = {}
    for g in groups:
        if g.runs:
            cfg = read_json(Path(g.runs[0]["run_dir"]) / "config.json", {})
            per[g.label] = {k: v for k, v in cfg.items() if k not in hidden}
    if not per:
        return {}, {}
    keys = set().union(*per.values())
    common = {k: next(iter(per.values())).get(k) for k in sorted(keys)
              if len({json.dumps(c.get(k)) for c in per.values()}) == 1}
    diff = {label: d for label, c in per.items()
            if (d := {k: v for k, v in c.items() if k not in common})}
    return common, diff


def _load_note(loads: list[tuple[float, int | None]]) -> str:
    """A warning when the runs shared the machine: their wall-clock timings are inflated."""
    if not loads:
        return ""
    load = sum(x for x, _ in loads) / len(loads)
    cores = max(c or 1 for _, c in loads)
    if load <= cores:
        return ""
    return (f" Timings are wall clock on a shared machine: mean load average {load:.1f} on "
            f"{cores} cores at the end of the runs, so times per step are inflated; compare "
            "them within this question only.")


def section(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything a renderer needs for one question: texts, tables, figures (as PNG)."""
    recipe = doc["recipe"]
    f = fnd.analyze(doc)
    groups = f.groups
    plots = []
    for metric in (recipe.get("findings") or {}).get("plots", ["test_acc"]):
        fig = figure(groups, metric)
        if fig is not None:
            title = " and ".join(PLOT_LABELS.get(m, m) for m in metric.split("+"))
            plots.append((title, png_base64(fig)))
    if any(s.get("kind") == "optuna" for s in doc.get("searches", [])):  # HUJI 3's frontier
        from cnnlab.experiments.report.frontier import figure as frontier_figure

        fig = frontier_figure(doc, fnd.root_of(doc))
        if fig is not None:
            plots.insert(0, ("accuracy vs parameters: every probe, Pareto fronts",
                             png_base64(fig)))
    missing: list[str] = []
    plots += measure_figures(doc, f.figures, missing)
    plots += evaluation_plots(doc, groups, missing)
    root = fnd.root_of(doc)
    job_groups = fnd.groups(doc.get("jobs", []), root)
    common, diff = _configs(groups or job_groups)
    runs = [r for g in job_groups for r in g.runs]
    runs += [r for sr in doc.get("searches", []) for g in fnd.groups(sr.get("trace", []), root)
             for r in g.runs]
    train_s = sum(r.get("train_time") or 0 for r in runs)
    cpu_s = sum(r.get("cpu_s") or 0 for r in runs)
    loads = [(r["load_avg"], r["cores"]) for r in runs if r.get("load_avg") is not None]
    skipped = [f"{g.label}: {g.skipped}" for g in job_groups if g.skipped] + missing
    return {"recipe": recipe, "findings": f, "plots": plots, "common": common, "diff": diff,
            "n_runs": len(runs), "train_s": train_s, "cpu_s": cpu_s, "loads": loads,
            "load_note": _load_note(loads), "skipped": skipped,
            "quick": doc.get("quick", False), "seeds": doc.get("seeds")}


# ------------------------------------------------------------------------ HTML


def _escape(value: Any) -> Any:
    """Every ``{{ value }}`` of the templates: escaped as :func:`html.escape` does (``&#x27;``
    for a quote, as the report always wrote it), HTML from the templates (macros) left as is.
    """
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlab.experiments.report", "templates"), autoescape=True,
        finalize=_escape, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.filters["json"] = json.dumps
    env.filters["thousands"] = "{:,}".format
    return env


def page(sections: list[dict[str, Any]], title: str = "cnnlab report",
         authors: tuple[str, ...] | list[str] = (), paper: str = "a4",
         theory: list[dict[str, Any]] | None = None) -> str:
    """The HTML page of sections from :func:`section` (``templates/report.html.j2``):
    ``authors`` under the title, ``paper`` (``a4`` or ``letter``) the printed page size,
    ``theory`` the answer sections of :mod:`cnnlab.experiments.report.theory` before the practical
    ones."""
    if paper not in PAPERS:
        raise CnnlabError(f"--paper {paper}: not a paper size; choose one of {', '.join(PAPERS)}")
    stamp = time.strftime("%Y-%m-%d %H:%M")
    text = _templates().get_template("report.html.j2").render(
        title=title, stamp=stamp, sections=sections, authors=list(authors),
        paper="A4" if paper == "a4" else "letter", theory=theory or [])
    return text + "\n"


def render_html(docs: list[dict[str, Any]], title: str = "cnnlab report") -> str:
    """The HTML page of experiment documents (from :func:`collect`)."""
    return page([section(d) for d in docs], title)


def write(paths: list[str | Path], out: str | Path, pdf: bool = False,
          title: str = "cnnlab report", authors: tuple[str, ...] | list[str] = (),
          paper: str = "a4", theory: list[dict[str, Any]] | None = None,
          sheet: str | None = None) -> list[Path]:
    """Write the HTML report (and PDF); returns the files written. With ``theory`` (the
    sheets' theory answers) and no ``paths``, the document holds the theory alone; ``sheet``
    (``huji``, ``eth``, ``sheet3``, ``ttic``) keeps that sheet's experiments only."""
    out = Path(out)
    check_plain(out, "--out")  # before any work: only a plain file is ever replaced
    if pdf:
        check_plain(out.with_suffix(".pdf"), "--pdf")
    docs = collect(paths) if paths or not theory else []
    if sheet and sheet != "all":
        from cnnlab.experiments.report.theory import MARKS

        docs = [d for d in docs if any(m in str(d["recipe"].get("sheet", ""))
                                       for m in MARKS[sheet])]
        if not docs and paths:
            print(f"cnnlab: warning: no experiment of the {sheet} sheet under "
                  f"{', '.join(map(str, paths))}; the document holds the theory answers only",
                  file=sys.stderr)
    sections = [section(d) for d in docs]
    out.parent.mkdir(parents=True, exist_ok=True)
    # an older report is replaced only on success
    write_text(out, page(sections, title, authors, paper, theory))
    written = [out]
    if pdf:
        pdf_path = out.with_suffix(".pdf")
        exe = chromium()
        if exe is None or not pdf_chromium(exe, out, pdf_path):
            try:
                pdf_matplotlib(sections, pdf_path, paper, title, authors, theory or [])
            except Exception as e:  # any backend failure: say which ways were tried
                raise CnnlabError(f"--pdf: Chromium is not installed or failed, and the "
                                  f"matplotlib fallback failed too ({e})") from None
        written.append(pdf_path)
    return written
