"""The report's PDF checked as a person would read it: every page rendered to pixels
(pypdfium2), the page size, the page count, no blank or nearly empty page, every embedded
figure decoded at its size, the authors and the configuration table on the page. Chromium
prints the PDF where installed (`.ci/run` installs it); the matplotlib fallback is checked
the same way."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_report import make_experiment

from cnnlab.experiments.report import page as report

pdfium = pytest.importorskip("pypdfium2", reason="pip install pypdfium2 (the test extra)")

SIZES = {"a4": (595, 842), "letter": (612, 792)}


def pages(pdf_path: Path) -> list[dict]:
    """Per page: size in points, the share of its height that holds ink, the decoded images
    (width, height), the text."""
    doc = pdfium.PdfDocument(pdf_path)
    out = []
    for page in doc:
        gray = np.asarray(page.render(scale=0.5).to_pil().convert("L"))
        rows = np.where((gray < 230).any(axis=1))[0]
        span = (rows.max() - rows.min()) / gray.shape[0] if len(rows) else 0.0
        images = []
        for obj in page.get_objects():
            if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE:
                bm = obj.get_bitmap()
                images.append((bm.width, bm.height))
        text = page.get_textpage().get_text_range()
        out.append({"size": tuple(round(v) for v in page.get_size()), "span": span,
                    "images": images, "text": text})
    return out


def check(info: list[dict], paper: str, figures: int) -> None:
    assert info, "no pages"
    for i, p in enumerate(info):
        assert p["size"] == SIZES[paper], (i, p["size"])
        assert p["span"] > 0.05, f"page {i + 1} is blank"
        if i < len(info) - 1:  # only the last page may be short
            assert p["span"] > 0.4, f"page {i + 1} is nearly empty ({p['span']:.0%} inked)"
    decoded = [wh for p in info for wh in p["images"]]
    assert len(decoded) == figures
    assert all(w >= 300 and h >= 150 for w, h in decoded), decoded


def _chromium() -> None:
    if report.chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_chromium_pdf_pages(tmp_path: Path, paper: str) -> None:
    _chromium()
    make_experiment(tmp_path)
    written = report.write([tmp_path / "runs"], tmp_path / "r.html", pdf=True,
                           title="Assignment 1", authors=["A. Student", "B. Student"],
                           paper=paper)
    html = written[0].read_text()
    figures = len(re.findall(r'src="data:image/png;base64,', html))
    assert figures == 2 and "<details" not in html
    info = pages(written[1])
    check(info, paper, figures)
    assert 1 <= len(info) <= 4
    first = info[0]["text"]
    assert "Assignment 1" in first and "A. Student, B. Student" in first
    # the first page holds the title, the contents and the question's text and findings
    assert "Linear vs. non-linear" in first and "Findings" in first
    text = "".join(p["text"] for p in info)
    assert "Configuration" in text and "shared by every run" in text
    assert "iterations" in text  # a key of the configuration table, printed


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_matplotlib_pdf_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              paper: str) -> None:
    make_experiment(tmp_path)
    monkeypatch.setattr(report, "chromium", lambda: None)
    written = report.write([tmp_path / "runs"], tmp_path / "r.html", pdf=True,
                           authors=["A. Student"], paper=paper)
    info = pages(written[1])
    check(info, paper, 2)
    assert "A. Student" in info[0]["text"]


def test_a_bad_paper_size_is_a_clear_error(tmp_path: Path) -> None:
    from cnnlab.common.errors import CnnlabError

    make_experiment(tmp_path)
    with pytest.raises(CnnlabError, match="--paper a5: not a paper size; choose one of a4"):
        report.write([tmp_path / "runs"], tmp_path / "r.html", paper="a5")


def test_measurement_figures_are_embedded_not_listed(tmp_path: Path) -> None:
    """A measurement's figures (TTIC) go into the page as PNGs; one that is gone, not a PNG
    or outside the recipe folder is named, never read."""
    from cnnlab.common.plotting import pyplot

    folder = tmp_path / "runs" / "ttic_x"
    (folder / "plots").mkdir(parents=True)
    fig = pyplot().figure(figsize=(4, 3))
    fig.savefig(folder / "plots" / "bottleneck_variance.png")
    (folder / "plots" / "fake.png").write_text("not a png")
    (tmp_path / "secret.png").write_bytes(report.PNG_MAGIC + b"x")
    doc = {"_path": str(folder / "experiment.json")}
    missing: list[str] = []
    got = report.measure_figures(
        doc, ["plots/bottleneck_variance.png", "plots/gone.png", "plots/fake.png",
              "../../secret.png"], missing)
    assert [t for t, _ in got] == ["bottleneck variance"]
    assert got[0][1].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    assert [m.split(":")[0] for m in missing] == [
        "figure plots/gone.png", "figure plots/fake.png", "figure ../../secret.png"]


@pytest.mark.parametrize("n_groups", [2, 12])
def test_legends_print_at_a_readable_size(n_groups: int) -> None:
    """Figures are printed at about their own width (16 cm on A4), so the legend's point size
    scaled by 16 cm over its width is its size on paper: at least 7.5 pt, also with the 12
    curves of the TTIC bottleneck."""
    from test_stats_findings import BASE, group

    fig = report.figure([group(f"g{i}", BASE) for i in range(n_groups)], "test_acc")
    legend = fig.axes[0].get_legend()
    sizes = [t.get_fontsize() for t in legend.get_texts()]
    scale = (16 / 2.54) / fig.get_size_inches()[0]  # CSS: figure{width:16cm} in print
    assert len(sizes) == n_groups and min(sizes) * scale >= 7.5
    from cnnlab.common.plotting import pyplot

    pyplot().close(fig)


def test_cli_paper_title_and_authors(tmp_path: Path) -> None:
    from cnnlab.cli.main import main

    make_experiment(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out), "--paper", "letter",
                 "--title", "Ex1", "--author", "Yann LeCun", "--author", "Alex K"]) == 0
    html = out.read_text()
    assert "@page{size:letter;" in html and "<h1>Ex1</h1>" in html
    assert "<p class=authors>Yann LeCun, Alex K</p>" in html
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert "@page{size:A4;" in out.read_text() and "class=authors" not in out.read_text()
