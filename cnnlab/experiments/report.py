"""The report: one self-contained HTML file (plots inline as base64 PNG) and optionally a PDF.

Per question: the sheet's text, the configurations, tables, plots and the findings of
:mod:`cnnlab.experiments.findings`. Input is experiment folders (``experiment.json``), folders
holding them, or plain run folders (``result.json``), which are reported together as "other runs".
The PDF comes from headless Chromium's ``--print-to-pdf`` when it is installed, else from
matplotlib's PdfPages (text pages and the same figures).
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import read_json
from cnnlab.experiments import findings as fnd

CONFIG_NOISE = {"out_name", "runs_dir", "seed", "threads", "data_dir", "progress", "resume",
                "overwrite", "plots", "tensorboard", "device"}
PLOT_LABELS = {"test_acc": "test accuracy", "train_acc": "train accuracy",
               "test_error": "test error", "train_loss": "train loss (eval)",
               "test_loss": "test loss", "ratio": "test / train accuracy",
               "batch_loss": "mini-batch loss", "regularizer": "regularizer (without lambda)",
               "step_time": "seconds per step"}
CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


# ------------------------------------------------------------------------ input


def _adhoc(run_dirs: list[Path]) -> dict[str, Any]:
    """Plain run folders as one experiment document, compared against the first."""
    jobs = []
    for d in run_dirs:
        res = json.loads((d / "result.json").read_text())
        cfg = read_json(d / "config.json")
        jobs.append({"group": d.name, "seed": cfg.get("seed", 0), "kind": "variant",
                     "values": {}, "out_name": d.name, "run_dir": str(d), "result": res})
    return {"recipe": {"name": "runs", "title": "Runs", "sheet": "Other runs",
                       "question": "", "text": "", "order": 10**6,
                       "findings": {"kind": "compare",
                                    "plots": ["train_acc", "test_acc", "train_loss"]}},
            "jobs": jobs, "searches": [], "_root": str(run_dirs[0].parent)}


def collect(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Experiment documents found under ``paths``, in the sheets' order."""
    docs, loose = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise CnnlabError(f"{p}: no such file or folder")
        found = [p] if p.name == "experiment.json" else sorted(p.rglob("experiment.json"))
        for f in found:
            doc = json.loads(f.read_text())
            doc["_path"] = str(f)
            docs.append(doc)
        if not found:
            runs = [p] if (p / "result.json").is_file() else sorted(
                r.parent for r in p.rglob("result.json"))
            loose += runs
    if not docs and not loose:
        raise CnnlabError(f"no experiment.json or finished run (result.json) under "
                          f"{', '.join(map(str, paths))}")
    docs.sort(key=lambda d: (d["recipe"].get("order", 1000), d["recipe"].get("name", "")))
    if loose:
        docs.append(_adhoc(loose))
    return docs


# ------------------------------------------------------------------------ plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(groups: list[fnd.Group], plot: str) -> Any | None:
    """Mean curve over seeds per group (± std band); ``"train_acc+test_acc"`` draws several
    metrics on one axis (train dashed). ``None`` when no run logged the metric.
    """
    plt = _pyplot()
    metrics = plot.split("+")
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
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
    ax.set_xlabel("iteration")
    ax.set_ylabel(title if len(metrics) == 1 else "accuracy" if "acc" in plot else plot)
    if positive and metrics[0] in ("regularizer", "batch_loss", "train_loss", "test_loss",
                                   "test_error"):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def png_base64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------ sections


def _configs(doc: dict[str, Any], groups: list[fnd.Group]) -> tuple[dict, dict]:
    """(keys shared by every run, per-group keys that differ), from the saved config.json."""
    per: dict[str, dict[str, Any]] = {}
    for g in groups:
        if g.runs:
            cfg = read_json(Path(g.runs[0]["run_dir"]) / "config.json")
            per[g.label] = {k: v for k, v in cfg.items() if k not in CONFIG_NOISE}
    if not per:
        return {}, {}
    keys = set().union(*per.values())
    common = {k: next(iter(per.values())).get(k) for k in sorted(keys)
              if len({json.dumps(c.get(k)) for c in per.values()}) == 1}
    diff = {label: {k: v for k, v in c.items() if k not in common} for label, c in per.items()}
    return common, diff


def _table_html(title: str, tbl: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in tbl["header"])
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in tbl["rows"])
    cap = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


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
    root = fnd.root_of(doc)
    job_groups = fnd.groups(doc.get("jobs", []), root)
    common, diff = _configs(doc, groups or job_groups)
    runs = [r for g in job_groups for r in g.runs]
    runs += [r for sr in doc.get("searches", []) for g in fnd.groups(sr.get("trace", []), root)
             for r in g.runs]
    train_s = sum(r.get("train_time") or 0 for r in runs)
    cpu_s = sum(r.get("cpu_s") or 0 for r in runs)
    loads = [(r["load_avg"], r["cores"]) for r in runs if r.get("load_avg") is not None]
    skipped = [f"{g.label}: {g.skipped}" for g in job_groups if g.skipped]
    return {"recipe": recipe, "findings": f, "plots": plots, "common": common, "diff": diff,
            "n_runs": len(runs), "train_s": train_s, "cpu_s": cpu_s, "loads": loads,
            "skipped": skipped, "quick": doc.get("quick", False), "seeds": doc.get("seeds")}


def _section_html(s: dict[str, Any], idx: int) -> str:
    r, f = s["recipe"], s["findings"]
    q = html.escape(f"{r.get('question', '')} {r['title']}".strip())
    out = [f'<section id="q{idx}"><h3>{q}</h3>']
    if r.get("text"):
        out.append(f"<blockquote>{html.escape(r['text'])}</blockquote>")
    quick = " <b>(--quick smoke run: tiny budgets, not the answer)</b>" if s["quick"] else ""
    out.append(f"<p class=meta>{s['n_runs']} runs, {s['seeds']} seed(s) per configuration, "
               f"{s['train_s']:.0f} s in training steps and {s['cpu_s']:.0f} CPU-seconds "
               f"for the whole runs (evaluation and start-up included).{quick}{_load(s)}</p>")
    if f.sentences:
        out.append("<h4>Findings</h4><ul class=findings>" + "".join(
            f"<li>{html.escape(t)}</li>" for t in f.sentences) + "</ul>")
    for ps in f.params:
        label = html.escape(ps.get("label", ps["model"]))
        out.append(f"<h4>Parameters of {label} (input {ps['input']}): {ps['total']:,}</h4>"
                   f"<p><code>{html.escape(ps['spec'])}</code></p><ol>" + "".join(
                       f"<li>{html.escape(x)}</li>" for x in ps["steps"]) +
                   f"</ol><p>Total: {ps['total']:,} free parameters.</p>")
    for title, tbl in f.tables:
        out.append(_table_html(title, tbl))
    if s["skipped"]:
        out.append("<p>Skipped: " + html.escape("; ".join(s["skipped"])) + "</p>")
    for title, b64 in s["plots"]:
        out.append(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                   f'{b64}" onload="this.dataset.decoded=this.naturalWidth+\'x\'+'
                   f'this.naturalHeight"><figcaption>{html.escape(title)}</figcaption>'
                   "</figure>")
    if s["common"]:
        rows = [[k, json.dumps(v)] for k, v in s["common"].items()]
        out.append("<details><summary>Configuration</summary>" + _table_html(
            "shared by every run", {"header": ["key", "value"], "rows": rows}))
        drows = [[label, ", ".join(f"{k}={json.dumps(v)}" for k, v in d.items())]
                 for label, d in s["diff"].items() if d]
        if drows:
            out.append(_table_html("per configuration", {"header": ["configuration",
                                                                    "differs in"],
                                                         "rows": drows}))
        out.append("</details>")
    out.append("</section>")
    return "\n".join(out)


def _load(s: dict[str, Any]) -> str:
    """A warning when the runs shared the machine: their wall-clock timings are inflated."""
    if not s["loads"]:
        return ""
    load = sum(x for x, _ in s["loads"]) / len(s["loads"])
    cores = max(c or 1 for _, c in s["loads"])
    if load <= cores:
        return ""
    return (f" Timings are wall clock on a shared machine: mean load average {load:.1f} on "
            f"{cores} cores at the end of the runs, so times per step are inflated; compare "
            "them within this question only.")


CSS = """body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #aaa}
blockquote{white-space:pre-wrap;background:#f4f4f4;padding:.6em 1em;margin:0;font-size:.9em}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}caption{text-align:left;
font-weight:bold}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;width:49%;
margin:.5em 0}img{width:100%}
.meta{color:#555;font-size:.85em}section{page-break-inside:avoid}"""


def render_html(docs: list[dict[str, Any]], title: str = "cnnlab report") -> str:
    sections = [section(d) for d in docs]
    body, toc, sheet = [], [], None
    for i, s in enumerate(sections):
        if s["recipe"]["sheet"] != sheet:
            sheet = s["recipe"]["sheet"]
            body.append(f"<h2>{html.escape(sheet)}</h2>")
        body.append(_section_html(s, i))
        toc.append(f'<li><a href="#q{i}">{html.escape(sheet)}: '
                   f'{html.escape(str(s["recipe"].get("question", "")))} '
                   f'{html.escape(s["recipe"]["title"])}</a></li>')
    stamp = time.strftime("%Y-%m-%d %H:%M")
    script = ("<script>window.addEventListener('load',function(){var n=0;"
              "document.querySelectorAll('img').forEach(function(i){if(i.complete&&"
              "i.naturalWidth>0)n++;});document.body.dataset.imagesDecoded=n;});</script>")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class=meta>Generated {stamp} from "
            f"{len(docs)} experiment(s). Numbers are means ± sample standard deviations over "
            f"seeds.</p><ol>{''.join(toc)}</ol>{''.join(body)}{script}</body></html>\n")


# ------------------------------------------------------------------------ PDF


def chromium() -> str | None:
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def pdf_chromium(html_path: Path, pdf_path: Path, timeout: float = 120) -> bool:
    exe = chromium()
    if exe is None:
        return False
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()]
        try:
            subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return pdf_path.is_file() and pdf_path.stat().st_size > 0


def pdf_matplotlib(docs: list[dict[str, Any]], pdf_path: Path) -> None:
    """Fallback PDF: a text page per question (findings, tables, parameter steps) + figures."""
    import textwrap

    from matplotlib.backends.backend_pdf import PdfPages

    plt = _pyplot()
    with PdfPages(pdf_path) as pdf:
        for d in docs:
            s = section(d)
            r, f = s["recipe"], s["findings"]
            lines = [f"{r['sheet']} {r.get('question', '')}: {r['title']}", ""]
            for par in (r.get("text") or "").split("\n"):
                lines += textwrap.wrap(par, 95) or [""]
            lines.append("")
            for t in f.sentences:
                lines += textwrap.wrap("- " + t, 95)
            for ps in f.params:
                lines += ["", f"Parameters of {ps.get('label', ps['model'])}: {ps['total']:,}"]
                lines += [textwrap.shorten("  " + x, 110) for x in ps["steps"]]
            for title, tbl in f.tables:
                lines += ["", title, " | ".join(tbl["header"])]
                lines += [" | ".join(map(str, row)) for row in tbl["rows"]]
            for start in range(0, len(lines), 60):
                fig = plt.figure(figsize=(8.27, 11.69))
                fig.text(0.05, 0.97, "\n".join(lines[start:start + 60]), va="top",
                         family="monospace", fontsize=7)
                pdf.savefig(fig)
                plt.close(fig)
            for title, b64 in s["plots"]:
                img = plt.imread(io.BytesIO(base64.b64decode(b64)), format="png")
                fig = plt.figure(figsize=(8.27, 5))
                fig.figimage(img, xo=20, yo=20)
                fig.suptitle(title)
                pdf.savefig(fig)
                plt.close(fig)


def write(paths: list[str | Path], out: str | Path, pdf: bool = False,
          title: str = "cnnlab report") -> list[Path]:
    """Write the HTML report (and PDF); returns the files written."""
    docs = collect(paths)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(docs, title))
    written = [out]
    if pdf:
        pdf_path = out.with_suffix(".pdf")
        if not pdf_chromium(out, pdf_path):
            try:
                pdf_matplotlib(docs, pdf_path)
            except Exception as e:  # any backend failure: say which ways were tried
                raise CnnlabError(f"--pdf: Chromium is not installed or failed, and the "
                                  f"matplotlib fallback failed too ({e})") from None
        written.append(pdf_path)
    return written
