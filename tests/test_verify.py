"""``cnnlab verify``: the catalogue passes, output formats, exit codes, adding a claim."""

from __future__ import annotations

import json
import time

import pytest

from cnnlab.cli.main import main
from cnnlab.ref import verify

REQUIRED_SOURCES = ["ETH Ex.5 P1.1", "PS3 3(a)", "HUJI theory 2.1", "ETH Ex.5 P3", "PS3 2(a)",
                    "PS3 2(b)", "PS3 2(c)", "TTIC Problem 3(b)", "TTIC Problem 3(c)",
                    "PS3 3(b)", "PS3 3(c)", "HUJI theory 1.2.1", "PS3 3(d)",
                    "HUJI theory 1.2.2"]


def test_catalogue_covers_the_sheets_and_every_claim_passes():
    sources = " ".join(c.source for c in verify.CLAIMS)
    for s in REQUIRED_SOURCES:
        assert s in sources
    cpu = time.process_time()
    results = verify.run_claims()
    cpu = time.process_time() - cpu  # CPU seconds: the machine's load does not change them
    assert len(results) == len(verify.CLAIMS) >= 20
    failed = [(r.claim, r.measured) for r in results if r.status != "PASS"]
    assert failed == []
    assert cpu < 60  # generous: the command targets ~10 s of one core


def test_json_output(capsys):
    assert main(["verify", "--format", "json", "--only", "softmax", "9x9"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"claim", "source", "measured", "tolerance", "status"}
        assert row["status"] == "PASS"
    rf = next(r for r in rows if "9x9" in r["claim"])
    assert rf["measured"] == "9x9 (81 px)" and rf["source"] == "PS3 3(d)"
    sums = next(r for r in rows if "sum to 1" in r["claim"])
    assert isinstance(sums["measured"], float) and sums["measured"] <= 1e-12


def test_table_output(capsys):
    assert main(["verify", "--only", "n = k"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["claim", "source", "measured", "tolerance", "status"]
    assert "HUJI theory 1.2.2" in out and "PASS" in out and "1/1 claims pass" in out


def test_a_failing_or_crashing_claim_gives_non_zero_exit(monkeypatch, capsys):
    monkeypatch.setattr(verify, "CLAIMS", [])

    @verify.claim("one plus one is three", "nowhere 1(a)")
    def _wrong() -> verify.Check:
        return verify.near(1 + 1, 3, 0.1)

    @verify.claim("this check crashes", "nowhere 1(b)")
    def _crash() -> verify.Check:
        raise ZeroDivisionError("boom")

    @verify.claim("one plus one is two", "nowhere 1(c)")
    def _right() -> verify.Check:
        return verify.equals(1 + 1, 2)

    assert [c.name for c in verify.CLAIMS] == ["wrong", "crash", "right"]
    assert main(["verify", "--format", "json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["FAIL", "FAIL", "PASS"]
    assert rows[0]["measured"] == 2.0 and rows[0]["tolerance"] == "3 +- 0.1"
    assert rows[1]["measured"].startswith("error: ZeroDivisionError")
    assert main(["verify"]) == 1
    assert "1/3 claims pass" in capsys.readouterr().out


def test_list_and_unknown_filter(capsys):
    assert main(["verify", "--list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(verify.CLAIMS)
    assert main(["verify", "--only", "no-such-claim-xyz"]) == 2
    assert "no claim matches" in capsys.readouterr().err


@pytest.mark.parametrize("value,tol,ok", [(0.0, 0.0, True), (1e-9, 1e-12, False)])
def test_helpers(value, tol, ok):
    assert verify.at_most(value, tol).passed is ok
    assert verify.at_least(2.0, 1.0).passed and not verify.at_least(0.5, 1.0).passed
