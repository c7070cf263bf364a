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


def _text_lines(s: dict[str, Any]) -> list[str]:
    """One question as lines of monospaced text."""
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
    return lines


def pdf_matplotlib(sections: list[dict[str, Any]], pdf_path: Path) -> None:
    """Fallback PDF from the report's sections (:func:`cnnlab.experiments.report.section`):
    a text page per question (findings, tables, parameter steps), then its figures.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    atomic_write(pdf_path, lambda fh: _pages(sections, fh, PdfPages))


def _pages(sections: list[dict[str, Any]], fh: Any, pdf_pages: Any) -> None:
    plt = pyplot()
    with pdf_pages(fh) as pdf:
        for s in sections:
            lines = _text_lines(s)
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
