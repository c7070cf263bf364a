"""Files cnnlab reads back are validated like user input (issue 24, kind 4): ``result.json``,
the Optuna journal, configs, PNG images, run names that are not UTF-8. Each is one line
naming the file (or, in a report, skipped with a warning), never a ``TypeError``; one broken
``result.json`` does not stop the other runs of an experiment. Plus a hypothesis fuzz of
result, journal and config files (the spec fuzz is in ``test_robust_spec.py``)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_executor import _configs, fake_train

from cnnlab.cli.main import main
from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import load_mapping
from cnnlab.experiments.executor import LocalExecutor, finished
from cnnlab.experiments.results import check_result, read_result

GOOD = {"run_dir": "runs/r", "iterations": 30, "train_acc": 0.9, "test_acc": 0.85,
        "train_loss": 0.3, "test_loss": 0.4, "wall_time": 1.5, "train_time": 1.0,
        "time_to_target": None, "iteration_to_target": None, "param_count": 1000,
        "images_per_s": 100.0, "stopped": "completed",
        "history": [{"iteration": 30, "test_acc": 0.85}]}

BAD_RESULTS = [
    {**GOOD, "test_acc": "high"}, {}, [1, 2], "text", None, 3,
    {**GOOD, "test_acc": 1.5}, {**GOOD, "iterations": -1}, {**GOOD, "iterations": True},
    {**GOOD, "param_count": 2.5}, {**GOOD, "history": "none"}, {**GOOD, "history": [1]},
    {**GOOD, "history": [{"iteration": "x"}]}, {**GOOD, "history": [[1]]},
    {**GOOD, "stopped": 3},
    {**GOOD, "time_to_target": "soon"}, {**GOOD, "wall_time": float("inf")},
    {**GOOD, "extra": 1}, {k: v for k, v in GOOD.items() if k != "test_loss"},
]


@pytest.mark.parametrize("data", BAD_RESULTS, ids=range(len(BAD_RESULTS)))
def test_bad_result_is_one_error_naming_the_file(tmp_path: Path, data) -> None:
    f = tmp_path / "result.json"
    f.write_text(json.dumps(data))
    with pytest.raises(CnnlabError, match=str(f)) as exc:
        read_result(f)
    assert "\n" not in str(exc.value)


def test_good_and_diverged_results_are_accepted(tmp_path: Path) -> None:
    assert check_result(GOOD, "x").test_acc == 0.85
    nan = {**GOOD, "test_acc": float("nan"), "train_loss": float("nan"), "history": []}
    (tmp_path / "result.json").write_text(json.dumps(nan))  # NaN, as json writes it
    assert read_result(tmp_path / "result.json").stopped == "completed"


def test_one_broken_result_does_not_stop_the_experiment(tmp_path: Path) -> None:
    """A finished run whose result.json says ``"test_acc": "high"`` fails alone, naming the
    file; the other runs train; following the advice (delete it) trains it again."""
    cfgs = _configs(tmp_path, 3)
    LocalExecutor(jobs=1, train_fn=fake_train, log=lambda m: None, batch=False).map(cfgs[1:2])
    bad = Path(finished(cfgs[1]).run_dir) / "result.json"
    bad.write_text(json.dumps({**json.loads(bad.read_text()), "test_acc": "high"}))
    lines: list[str] = []
    ex = LocalExecutor(jobs=1, train_fn=fake_train, log=lines.append, batch=False)
    with pytest.raises(CnnlabError, match=rf"1 of 3 .*{bad}.*test_acc 'high'.*delete it"):
        ex.map(cfgs)
    assert ex.trained == 2 and finished(cfgs[0]) and finished(cfgs[2])
    assert any("r1: FAILED" in line for line in lines)
    bad.unlink()  # the advice
    again = LocalExecutor(jobs=1, train_fn=fake_train, log=lambda m: None, batch=False)
    results = again.map(cfgs)
    assert again.trained == 1 and all(isinstance(r.test_acc, float) for r in results)


@pytest.mark.parametrize("data", [{"test_acc": "high"}, {}, [1, 2]])
def test_report_skips_a_bad_result_with_a_warning(tmp_path: Path, data,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("good", "bad"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "result.json").write_text(json.dumps(GOOD))
    bad = tmp_path / "runs" / "bad" / "result.json"
    bad.write_text(json.dumps({**GOOD, **data} if isinstance(data, dict) and data else data))
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped {bad}" in err and err.count("\n") == 1


# ----------------------------------------------------------------------- Optuna journal


def _journal(tmp_path: Path) -> Path:
    pytest.importorskip("optuna")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "s.optuna.jsonl"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", directions=["minimize", "maximize"],
                                storage=JournalStorage(JournalFileBackend(str(path))))
    for _ in range(3):
        t = study.ask()
        t.suggest_float("x", 0, 1)
        study.tell(t, [1.0, 0.5])
    return path


JOURNAL_DAMAGE = {
    "garbage line": lambda d: d + b"garbage line\n",
    "garbage inside": lambda d: d[:50] + b"\nxx\n" + d[50:],
    "binary": lambda d: bytes(range(256)) * 2,
    "a list": lambda d: b"[1, 2]\n",
    "unknown op": lambda d: d + b'{"op_code": 99}\n',
    "record without ids": lambda d: d + b'{"op_code": 5, "worker_id": "x"}\n',
}


@pytest.mark.parametrize("damage", list(JOURNAL_DAMAGE))
def test_damaged_optuna_journal_is_one_line(tmp_path: Path, damage: str) -> None:
    from cnnlab.experiments.search import optuna_search as search_optuna

    path = _journal(tmp_path)
    path.write_bytes(JOURNAL_DAMAGE[damage](path.read_bytes()))
    with pytest.raises(CnnlabError, match=f"Optuna journal {path}: damaged") as exc:
        search_optuna.open_study(path, "s")
    assert "\n" not in str(exc.value) and "delete it" in str(exc.value)


def test_journal_cut_in_half_keeps_its_whole_lines(tmp_path: Path) -> None:
    """A kill mid-append leaves half a line: optuna skips it, the earlier trials remain."""
    from cnnlab.experiments.search import optuna_search as search_optuna

    path = _journal(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 10])
    assert 1 <= len(search_optuna.open_study(path, "s").trials) <= 3


def test_journal_that_is_not_a_plain_file_is_refused(tmp_path: Path) -> None:
    from cnnlab.experiments.search import optuna_search as search_optuna

    pytest.importorskip("optuna")
    path = tmp_path / "s.optuna.jsonl"
    path.symlink_to("/dev/zero")
    with pytest.raises(CnnlabError, match="symbolic link"):
        search_optuna.open_study(path, "s")


# ----------------------------------------------------------------------- PNG bombs


def _png(path: Path, w: int, h: int, rows: int | None = None) -> None:
    """A grey PNG of ``w x h`` zeros written row by row (never held in memory); ``rows``
    cuts the data short (a header claiming more than the file holds)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    z, line, idat = zlib.compressobj(9), b"\0" * (w + 1), bytearray()
    for _ in range(h if rows is None else rows):
        idat += z.compress(line)
    idat += z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0,
                     0, 0, 0)) + chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("w", "h", "rows"), [(5000, 5000, None), (100000, 100000, 1),
                                               (1 << 30, 2, 0)])
def test_png_bomb_is_one_line(tmp_path: Path, w: int, h: int, rows,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from cnnlab.ref.images import MAX_PIXELS

    f = tmp_path / "bomb.png"
    _png(f, w, h, rows)
    assert f.stat().st_size < 200_000 and w * h > MAX_PIXELS
    assert main(["filter", str(f), "--kernel", "box"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(f) in err and "pixels" in err


def test_png_under_the_cap_is_filtered(tmp_path: Path, capsys) -> None:
    _png(tmp_path / "ok.png", 4, 3)
    assert main(["filter", str(tmp_path / "ok.png"), "--kernel", "box"]) == 0
    assert capsys.readouterr().out.count("\n") == 3


# ----------------------------------------------------------------------- non-UTF-8 names


def test_run_name_not_utf8_is_one_line_or_skipped(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    for name in (b"good", b"caf\xe9"):
        d = Path(os.fsdecode(bytes(runs) + b"/" + name))
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(GOOD))
        (d / "metrics.jsonl").write_text('{"kind": "eval", "iteration": 1, "test_acc": 0.5}\n')
    bad = os.fsdecode(bytes(runs) + b"/caf\xe9")
    assert main(["report", str(runs), "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert "caf\\xe9: the name is not valid UTF-8" in err and "warning" in err
    assert main(["plot", bad, "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid UTF-8" in err
    assert main(["train", "--out-name", "caf\udce9", "--runs-dir", str(runs)]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


# ----------------------------------------------------------------------- fuzz

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4), max_leaves=12)
MUTATED_RESULT = st.builds(
    lambda base, key, value, drop: {**{k: v for k, v in base.items() if k != drop},
                                    **({key: value} if key else {})},
    st.just(GOOD), st.sampled_from([None, *GOOD]), JSONISH, st.sampled_from([None, *GOOD]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(MUTATED_RESULT, JSONISH))
def test_fuzz_result_files_only_cnnlab_errors(data) -> None:
    try:
        res = check_result(data, "result.json")
    except CnnlabError as e:
        assert "result.json" in str(e) and "\n" not in str(e)
        return
    f"{res.test_acc:.2%} {res.train_time:.1f} {res.iterations:d}"  # what the executor prints
    assert asdict(res).keys() >= {"test_acc", "history"}


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_config_files_only_cnnlab_errors(tmp_path: Path, raw: bytes) -> None:
    for suffix in (".toml", ".json"):
        f = tmp_path / f"c{suffix}"
        f.write_bytes(raw)
        try:
            assert isinstance(load_mapping(f, "--config"), dict)
        except CnnlabError as e:
            assert str(f) in str(e) and "\n" not in str(e)


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _journal(tmp_path_factory.mktemp("journal")).read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6), st.binary(max_size=40), st.integers(0, 10**6))
def test_fuzz_journal_only_cnnlab_errors(tmp_path: Path, journal_bytes: bytes, at: int,
                                         junk: bytes, cut: int) -> None:
    from cnnlab.experiments.search import optuna_search as search_optuna

    at, cut = at % (len(journal_bytes) + 1), cut % (len(journal_bytes) + 1)
    f = tmp_path / "f.optuna.jsonl"
    f.unlink(missing_ok=True)
    (tmp_path / "f.optuna.jsonl.lock").unlink(missing_ok=True)
    f.write_bytes((journal_bytes[:at] + junk + journal_bytes[at:])[:max(cut, at)])
    try:
        search_optuna.open_study(f, "s")
    except CnnlabError as e:
        assert str(f) in str(e) and "\n" not in str(e)
