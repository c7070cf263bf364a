"""The one atomic writer and the one TOML/JSON loader (cnnlab.common.files)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cnnlab.common.errors import CnnlabError
from cnnlab.common.files import (
    atomic_write,
    load_mapping,
    read_json,
    replace_dir,
    write_json,
    write_text,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_text(target, "old")

    def boom(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_written_files_get_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json(tmp_path / "atomic.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic.json").st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)
    assert read_json(tmp_path / "atomic.json") == {"a": 1}


def test_replace_dir_swaps_a_whole_folder(tmp_path: Path) -> None:
    final = tmp_path / "step-1"
    replace_dir(final, lambda d: (d / "a").write_text("1"))
    with pytest.raises(RuntimeError):
        replace_dir(final, lambda d: (_ for _ in ()).throw(RuntimeError("killed")))
    assert (final / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-1"]


@pytest.mark.parametrize("name, content, message", [
    ("a.toml", b"x = [1,\n", "a.toml: not valid TOML"),
    ("a.json", b"{", "a.json: not valid JSON"),
    ("a.json", b"[1, 2]", "a.json: expected a JSON table of keys, got list"),
    ("a.toml", b"x = '\xff'\n", "a.toml: not UTF-8 text"),
])
def test_loader_errors_name_the_file(tmp_path: Path, name: str, content: bytes,
                                     message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CnnlabError, match=message):
        load_mapping(tmp_path / name, "file")


def test_loader_reads_both_formats_and_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("lr = 0.1\n")
    (tmp_path / "a.json").write_text('{"lr": 0.1}')
    assert load_mapping(tmp_path / "a.toml") == load_mapping(tmp_path / "a.json") == {"lr": 0.1}
    with pytest.raises(CnnlabError, match="cannot read recipe .*missing.toml"):
        load_mapping(tmp_path / "missing.toml", "recipe")
    with pytest.raises(CnnlabError, match="is a folder"):
        load_mapping(tmp_path, "recipe")


def test_read_json_default_only_for_an_absent_file(tmp_path: Path) -> None:
    assert read_json(tmp_path / "none.json", {}) == {}
    with pytest.raises(CnnlabError, match="no such file"):
        read_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CnnlabError, match="bad.json: unreadable JSON"):
        read_json(tmp_path / "bad.json", {})
