"""The report as a PDF: headless Chromium prints the HTML page, else matplotlib's PdfPages.

Chromium's ``--print-to-pdf`` gives the page as a browser lays it out. Without Chromium,
:func:`pdf_matplotlib` writes a plainer PDF from the same sections: a monospaced text page per
question (its text, findings, parameter steps and tables), then its figures.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from cnnlab.common.files import atomic_write, write_bytes
from cnnlab.common.plotting import pyplot

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def chromium() -> str | None:
    """The path of an installed Chromium or Chrome, else ``None``."""
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def pdf_chromium(exe: str, html_path: Path, pdf_path: Path, timeout: float = 120) -> bool:
    """Print ``html_path`` to ``pdf_path`` with the browser ``exe``; whether a PDF came out.

    The browser prints into a private temporary folder; the PDF then replaces ``pdf_path``
    through the atomic writer (so only a plain file is ever replaced)."""
    with tempfile.TemporaryDirectory() as profile:
        printed = Path(profile) / "out.pdf"
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={printed}", html_path.resolve().as_uri()]
        try:
            subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        if not printed.is_file() or printed.stat().st_size == 0:
            return False
        write_bytes(pdf_path, printed.read_bytes())
    return True


#: page sizes in inches for the matplotlib fallback
PAPER_INCHES = {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}


def _theory_lines(t: dict[str, Any]) -> list[str]:
    """One sheet's theory answers as lines of monospaced text."""
    lines = [f"{t['sheet']}: {t['title']}", ""]
    for it in t["items"]:
        lines += [it["question"]]
        for par in it.get("paragraphs", []):
            lines += textwrap.wrap(par, 95)
        lines += (it.get("pre") or "").split("\n") if it.get("pre") else []
        if it.get("table"):
            lines += [" | ".join(it["table"]["header"])]
            lines += [" | ".join(map(str, row)) for row in it["table"]["rows"]]
        if it.get("command"):
            lines += [f"Reproduce: {it['command']}"]
        lines.append("")
    return lines


def _text_lines(s: dict[str, Any]) -> list[str]:
    """One question as lines of monospaced text."""
    r, f = s["recipe"], s["findings"]
    lines = [f"{r['sheet']} {r.get('question', '')}: {r['title']}", ""]
    for par in (r.get("text") or "").split("\n"):
        lines += textwrap.wrap(par, 95) or [""]
    lines.append("")
    for t in f.sentences:
        lines += textwrap.wrap("- " + t, 95)
    for q, text in f.answers:
        lines += [""] + textwrap.wrap(f"{q} {text}", 95)
    for ps in f.params:
        lines += ["", f"Parameters of {ps.get('label', ps['model'])}: {ps['total']:,}"]
        lines += [textwrap.shorten("  " + x, 110) for x in ps["steps"]]
    for title, tbl in f.tables:
        lines += ["", title, " | ".join(tbl["header"])]
        lines += [" | ".join(map(str, row)) for row in tbl["rows"]]
    return lines


def pdf_matplotlib(sections: list[dict[str, Any]], pdf_path: Path, paper: str = "a4",
                   title: str = "cnnlab report", authors: tuple[str, ...] | list[str] = (),
                   theory: list[dict[str, Any]] | None = None) -> None:
    """Fallback PDF from the report's sections (:func:`cnnlab.experiments.report.page.section`):
    pages of monospaced text (title, authors, theory answers, then per question its
    findings, answers, tables and parameter steps), two figures to a page after each
    question; every page ``paper``-sized (``a4`` or ``letter``).
    """
    size = PAPER_INCHES[paper]
    head = [title, ", ".join(authors), ""] if authors else [title, ""]
    theory_lines = [x for t in theory or [] for x in _theory_lines(t)]
    blocks = [(_text_lines(s), s["plots"]) for s in sections]
    if theory_lines or not blocks:
        blocks.insert(0, (head + theory_lines, []))
    else:  # the title heads the first question's page: no page for the title alone
        blocks[0] = (head + blocks[0][0], blocks[0][1])
    atomic_write(pdf_path, lambda fh: _flow(blocks, fh, size))


LINE_IN = 7 * 1.25 / 72  # one line of 7-point text, in inches
FIG_IN = 3.9             # one figure with its title, in inches


def _flow(blocks: list[tuple[list[str], list[tuple[str, str]]]], pdf_path: Any,
          size: tuple[float, float]) -> None:
    """Lay the text lines and figures of ``blocks`` out top to bottom on pages of ``size``,
    a new page only when the next line or figure does not fit (no page holds a heading
    alone). A question starts on a new page when less than a quarter of one is left."""
    from matplotlib.backends.backend_pdf import PdfPages

    plt = pyplot()
    w, h = size
    top, bottom = h - 0.5, 0.5
    with PdfPages(pdf_path) as pdf:
        fig, y = None, top

        def new_page() -> None:
            nonlocal fig, y
            if fig is not None:
                pdf.savefig(fig)
                plt.close(fig)
            fig, y = plt.figure(figsize=size), top

        for lines, plots in blocks:
            if fig is None or y - bottom < (h - 1) / 4:
                new_page()
            wide = int((w - 1) * 72 / (7 * 0.6))  # characters of 7-pt monospace per line
            lines = [part for line in lines for part in (
                textwrap.wrap(line, wide, subsequent_indent="    ", drop_whitespace=False)
                if len(line) > wide else [line])]
            for line in lines:
                if y - LINE_IN < bottom:
                    new_page()
                fig.text(0.5 / w, y / h, line, va="top", family="monospace", fontsize=7)
                y -= LINE_IN
            for name, b64 in plots:
                if y - FIG_IN < bottom:
                    new_page()
                img = plt.imread(io.BytesIO(base64.b64decode(b64)), format="png")
                ax = fig.add_axes((0.5 / w, (y - FIG_IN) / h, (w - 1) / w, (FIG_IN - 0.3) / h))
                ax.imshow(img)
                ax.set_axis_off()
                ax.set_title(name, fontsize=9)
                y -= FIG_IN
        if fig is not None:
            pdf.savefig(fig)
            plt.close(fig)
