"""Only plain files are written and read (issue 24, kinds 1 and 4): an output path that is a
device node, FIFO, socket, folder or symbolic link is refused with one line and left as it
was (``os.replace`` would put a file in its place: ``report --out /dev/full`` run as root
replaced the device); a file read as a config or record must be a regular file of bounded
size (``/dev/zero`` or a link to it would be read until memory runs out, a FIFO would hang)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.common import files
from cnnlab.common.errors import CnnlabError


def _device(p: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node (os.mknod) needs root")
    os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a second /dev/null


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()  # the socket file stays


def _folder(p: Path) -> None:
    p.mkdir()
    (p / "keep.txt").write_text("mine")


def _link_outside(p: Path) -> None:
    victim = p.parent.parent / "outside" / p.name
    victim.parent.mkdir(exist_ok=True)
    victim.write_text("not cnnlab's")
    p.symlink_to(victim)


KINDS: dict[str, Callable[[Path], None]] = {
    "device node": _device, "FIFO": _fifo, "socket": _socket, "folder": _folder,
    "symlink to outside": _link_outside,
}


def _fingerprint(p: Path) -> tuple:
    """What must not change: the kind of the entry, and what a folder or link holds."""
    st = os.lstat(p)
    inside: object = None
    if stat.S_ISDIR(st.st_mode):
        inside = sorted(x.name for x in p.iterdir())
    elif stat.S_ISLNK(st.st_mode):
        inside = (os.readlink(p), Path(os.readlink(p)).read_text())
    return stat.S_IFMT(st.st_mode), st.st_ino, inside


@pytest.fixture
def place(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


@pytest.mark.parametrize("kind", list(KINDS))
def test_atomic_writer_replaces_only_plain_files(place: Path, kind: str) -> None:
    target = place / "x.json"
    KINDS[kind](target)
    before = _fingerprint(target)
    for write in (lambda: files.write_text(target, "new"),
                  lambda: files.write_json(target, {"a": 1}),
                  lambda: files.open_append(target)):
        with pytest.raises(CnnlabError, match="not a regular file|symbolic link"):
            write()
    assert _fingerprint(target) == before
    assert sorted(p.name for p in place.iterdir()) == ["x.json"]  # no temporary file left


def test_atomic_writer_refuses_the_real_dev_null() -> None:
    with pytest.raises(CnnlabError, match="/dev/null: is a character device"):
        files.write_text("/dev/null", "x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_atomic_writer_still_replaces_a_plain_file(place: Path) -> None:
    (place / "x.txt").write_text("old")
    os.chmod(place / "x.txt", 0o640)
    files.write_text(place / "x.txt", "new")
    assert (place / "x.txt").read_text() == "new"
    assert stat.S_IMODE(os.stat(place / "x.txt").st_mode) == 0o640


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("command", ["report", "filter", "report-pdf"])
def test_cli_outputs_refuse_what_is_not_a_plain_file(
        place: Path, kind: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    (place / "m.csv").write_text("1,2,3\n4,5,6\n7,8,9\n")
    if command == "filter":
        target = place / "blur.png"
        argv = ["filter", str(place / "m.csv"), "--kernel", "box", "--out", str(target)]
    elif command == "report":
        target = place / "report.html"
        argv = ["report", str(place), "--out", str(target)]
    else:  # the PDF beside a plain HTML name
        target = place / "report.pdf"
        argv = ["report", str(place), "--out", str(place / "report.html"), "--pdf"]
    KINDS[kind](target)
    before = _fingerprint(target)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1, err
    assert str(target) in err
    assert _fingerprint(target) == before


def test_replace_dir_replaces_a_link_not_its_target(place: Path) -> None:
    outside = place.parent / "elsewhere"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (place / "step").symlink_to(outside, target_is_directory=True)
    files.replace_dir(place / "step", lambda tmp: (tmp / "new").write_text("n"))
    assert (outside / "precious").read_text() == "keep"
    assert not (place / "step").is_symlink() and (place / "step" / "new").is_file()


def test_figures_go_through_the_atomic_writer(place: Path) -> None:
    from cnnlab.common.plotting import pyplot, save_figure

    plt = pyplot()
    fig = plt.figure()
    _fifo(place / "fig.png")
    with pytest.raises(CnnlabError, match="FIFO"):
        save_figure(fig, place / "fig", formats=("png",))
    assert [p.name for p in save_figure(fig, place / "ok")] == ["ok.png", "ok.svg"]
    plt.close(fig)
    assert (place / "ok.png").read_bytes().startswith(b"\x89PNG")


# ----------------------------------------------------------------------- reading


def _zero_link(p: Path) -> None:
    p.symlink_to("/dev/zero")


def _big(p: Path) -> None:
    with p.open("wb") as fh:  # sparse: costs no disk
        fh.truncate(files.MAX_READ + 1)


READS: dict[str, Callable[[Path], None]] = {
    "link to /dev/zero": _zero_link, "FIFO": _fifo, "socket": _socket, "too large": _big,
    "device node": _device,
}


@pytest.mark.parametrize("kind", list(READS))
def test_readers_take_only_bounded_plain_files(place: Path, kind: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = place / "c.toml"
    READS[kind](cfg)
    for read in (lambda: files.load_mapping(cfg, "--config"), lambda: files.read_json(cfg)):
        with pytest.raises(CnnlabError, match=str(cfg)):
            read()
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cfg) in err and "Traceback" not in err


def test_config_that_is_dev_zero_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "/dev/zero"]) == 2
    err = capsys.readouterr().err
    assert err == "cnnlab: error: --config /dev/zero: is a character device, not a regular " \
                  "file; give a file\n"
