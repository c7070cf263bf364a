"""`cnnlab report --sheet`: the theory answers computed by the analyzer and `verify`, with the
errata and a command per answer. Oracles: the sheets' arithmetic written out here, and
fractions.Fraction for the exact ratios."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.experiments.report import page as report
from cnnlab.experiments.report import theory


def items(sheet: str) -> dict[str, dict]:
    [sec] = theory.answers(sheet)
    return {it["question"]: it for it in sec["items"]}


def text_of(it: dict) -> str:
    return " ".join(it.get("paragraphs", [])) + "\n" + it.get("pre", "")


def test_huji_counts_step_by_step() -> None:
    got = items("huji")
    p11 = got["Practical 1.1: the network's free parameters, step by step"]
    total = (5 * 5 * 1 * 32 + 32) + (5 * 5 * 32 * 64 + 64) + (64 * 4 * 4 * 1024 + 1024) + (
        1024 * 10 + 10)
    assert f"total: 832 + 51,264 + 1,049,600 + 10,250 = {total:,}" in p11["pre"]
    assert p11["command"] == "cnnlab analyze baseline"
    t41 = got["Theory 4.1: a convolutional layer of 96 5x5 filters on an RGB image"]
    assert f"= {96 * (5 * 5 * 3 + 1):,} parameters" in text_of(t41)
    t42 = got["Theory 4.2: a fully connected layer from 4x4x256 to the same size"]
    assert f"= {4096 * 4096 + 4096:,} parameters" in text_of(t42)
    t43 = got["Theory 4.3: constraints from 10,000 images in 1,000 categories"]
    assert "10,000,000 in all" in text_of(t43) and "9,990,000 are independent" in text_of(t43)


def test_every_answer_has_a_command_and_the_claims_pass() -> None:
    for sec in theory.answers("all"):
        for it in sec["items"]:
            assert it.get("command"), it["question"]
    claims = items("huji")["The sheet's claims, measured (cnnlab verify)"]
    rows = claims["table"]["rows"]
    assert rows and all(r[4] == "PASS" and r[5].startswith("cnnlab verify --only ")
                        for r in rows)
    assert all("HUJI" in r[1] for r in rows)


def test_eth_problem_2_exact_ratios_and_formulas() -> None:
    [it] = [v for k, v in items("eth").items() if k.startswith("Problem 2")]
    m, p, k = 128, 5, 16
    n = m - p + 1
    r = Fraction(k * (3 * p * p + 1), n * n * k * (3 * m * m + 1))
    assert r.numerator == 1 and f"conv/full = (Cp² + 1)/(n²(Cm² + 1)) = 1/{r.denominator:,}" \
        in it["pre"]
    assert "conv/local = 1/n² = 1/15,376" in it["pre"]
    assert it["command"] == "cnnlab analyze conv5x5x16 --input 3x128x128 --compare"


def test_sheet3_1c_shapes_and_fields() -> None:
    it = items("sheet3")["1(c): data shape and receptive field of each layer"]
    rows: dict[str, list[str]] = {}
    for line in it["pre"].splitlines():  # the table's row, not the step below it
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    # the sheet's solution row: data shape, then receptive field
    for name, shape, rf in (("conv1", "1x24x24x20", "5x5"), ("maxpool1", "1x12x12x20", "6x6"),
                            ("conv2", "1x8x8x50", "14x14"), ("maxpool2", "1x4x4x50", "16x16"),
                            ("conv3", "1x1x1x500", "28x28"), ("conv4", "1x1x1x10", "28x28")):
        assert shape in rows[name] and rows[name][rows[name].index(shape) + 1] == rf


def test_ttic_problems_1_and_3a_in_their_symbols() -> None:
    got = items("ttic")
    p1 = text_of(got["Problem 1: multiplies of a convolution on a batch"])
    macs = 4 * 16 * 16 * 3 * 3 * 8 * 3
    assert f"= {macs:,}; the analyzer counts {macs:,}" in p1
    p3 = text_of(got["Problem 3(a): multiplications of the bottleneck residual MLP"])
    assert f"= {2 * 256 * 64 * 4:,} (analyzer: {2 * 256 * 64 * 4:,})" in p3


@pytest.mark.parametrize("sheet, heading", [
    ("sheet3", "Erratum: Problem Sheet 3 Solutions (002)"),
    ("ttic", "Erratum: TTIC 31230 CNN Problems (003)"),
    ("huji", "Erratum: Wording: \"translation invariant\""),
    ("eth", "Erratum: Wording: \"translation invariant\"")])
def test_errata_per_sheet(sheet: str, heading: str) -> None:
    found = [it for q, it in items(sheet).items() if q.startswith(heading)]
    assert found
    if sheet in ("sheet3", "ttic"):
        tbl = found[0]["table"]
        assert tbl["header"][:3] == ["#", "where", "sheet prints"] and len(tbl["rows"]) >= 6
    assert "*invariant*" not in " ".join(found[0]["paragraphs"])


def test_errata_file_missing_says_where_to_look(tmp_path: Path) -> None:
    [it] = theory.errata("huji", tmp_path / "errata.md")
    assert "is not there" in it["paragraphs"][0]


def test_cli_sheet_report_alone_and_pdf(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "answers.html"
    assert main(["report", "--sheet", "eth", "--out", str(out), "--author", "A. Student",
                 "--author", "B. Student"]) == 0
    html = out.read_text()
    assert "<h1>ETH Deep Learning, exercise series 5: answers</h1>" in html
    assert "A. Student, B. Student" in html
    assert "Reproduce: <code>cnnlab analyze conv5x5x16 --input 3x128x128 --compare</code>" in html
    assert "1/9,944,428" in html and "experiment(s)" not in html
    if report.chromium() is not None:
        pytest.importorskip("pypdfium2")
        from test_report_pdf import check, pages

        written = report.write([], tmp_path / "all.html", pdf=True,
                               theory=theory.answers("all"), authors=["A. Student"])
        info = pages(written[1])
        check(info, "a4", 0)
        assert "A. Student" in info[0]["text"]


def test_cli_unknown_sheet_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["report", "--sheet", "mit", "--out", "x.html"])
    assert e.value.code == 2
    assert "invalid choice: 'mit'" in capsys.readouterr().err
