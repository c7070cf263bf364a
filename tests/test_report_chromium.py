"""The report as a browser shows it: headless Chromium loads the HTML, runs its script and
decodes the inline images; the dumped DOM is checked for title, heading, a table value and a
decoded image. Skips (with the reason) where Chromium is not installed: `.ci/run` installs it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import make_experiment
from waiting import LIMIT_S

from cnnlab.experiments.report import page as report

CHROMIUM = "/usr/bin/chromium"


def _chromium() -> str:
    exe = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not exe:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    return exe


def test_chromium_renders_title_heading_table_and_images(tmp_path: Path) -> None:
    exe = _chromium()
    make_experiment(tmp_path)
    out = tmp_path / "report.html"
    report.write([tmp_path / "runs"], out)
    cmd = [exe, *report.CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=5000", "--dump-dom", out.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S)
    dom = proc.stdout
    assert "<title>cnnlab report</title>" in dom, proc.stderr[-2000:]
    assert "<h3>2 Linear vs. non-linear</h3>" in dom
    doc = json.loads((tmp_path / "runs" / "huji_q2" / "experiment.json").read_text())
    accs = [j["result"]["test_acc"] for j in doc["jobs"] if j["group"] == "non-linear"]
    assert f"<td>{100 * sum(accs) / 2:.2f} ± " in dom
    # set by the images' onload and the page's load handler: the PNGs really decoded
    sizes = re.findall(r'data-decoded="(\d+)x(\d+)"', dom)
    assert len(sizes) == 2 and all(int(w) > 100 and int(h) > 100 for w, h in sizes)
    assert re.search(r'data-images-decoded="2"', dom)


def test_pdf_through_chromium(tmp_path: Path) -> None:
    _chromium()
    make_experiment(tmp_path)
    written = report.write([tmp_path / "runs"], tmp_path / "r.html", pdf=True)
    assert written[1].read_bytes().startswith(b"%PDF")
