"""The one atomic writer and the one TOML/JSON loader.

Writers never leave a half-written file: the bytes go to a temporary file in the same folder,
which then replaces the target in one ``os.replace`` (atomic on POSIX and Windows), so a crash,
Ctrl-C or a full disk leaves the old file or the new one, never a mix. Folders (checkpoints)
are written the same way with :func:`replace_dir`.

The loader reads ``.toml`` or ``.json`` by suffix and turns every failure (missing, unreadable,
not UTF-8, bad syntax, not a table) into one :class:`CnnlabError` line that names the file.

Only plain files are written and read: :func:`check_plain` refuses an output path that is a
device node, FIFO, socket, folder or symbolic link (``os.replace`` would put a file in its
place: ``--out /dev/full`` run as root replaced the device), and the readers refuse anything
but a regular file of at most :data:`MAX_READ` bytes (a config that is ``/dev/zero`` would be
read until memory runs out).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cnnlab.common.errors import CnnlabError

#: the most a reader takes in (configs, records, result files); more is not a cnnlab file
MAX_READ = 64 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def check_plain(path: str | Path, what: str = "") -> None:
    """Raise unless ``path`` is absent or a regular file (a symbolic link is refused, not
    followed): the only things :func:`atomic_write` may replace. ``what`` prefixes the error
    (e.g. ``"--out"``)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        return  # unreadable or a bad name: the write itself gives the OS-error line
    if stat.S_ISREG(st.st_mode):
        return
    where = f"{what} {path}" if what else str(path)
    if stat.S_ISLNK(st.st_mode):
        raise CnnlabError(f"{where}: is a symbolic link (to {os.readlink(path)}); cnnlab "
                          "replaces only plain files -- remove the link or give another name")
    raise CnnlabError(f"{where}: is {_kind(st.st_mode)}, not a regular file; cnnlab writes "
                      "only plain files -- give a file name")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then move it onto ``path``.

    ``path`` must be absent or a regular file (:func:`check_plain`), checked before the
    work and again just before the move."""
    path = Path(path)
    check_plain(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        check_plain(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask can only be read by setting it


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    atomic_write(path, lambda fh: fh.write(data))


def write_text(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    """Atomically write ``data`` as JSON (values JSON cannot hold are written as strings)."""
    write_text(path, json.dumps(data, indent=indent, default=str) + "\n")


def open_append(path: str | Path) -> IO[str]:
    """``path`` opened for appending text (created if absent); only a regular file, never
    through a symbolic link (a log such as ``metrics.jsonl``)."""
    check_plain(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 0o666)
    return os.fdopen(fd, "a", encoding="utf-8")


def remove(path: Path) -> None:
    """Delete a folder cnnlab wrote, or just the link if ``path`` is a symbolic link (never
    what it points at); absent is fine."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)


def replace_dir(final: Path, fill: Callable[[Path], Any]) -> Path:
    """Build a folder with ``fill(tmp)`` beside ``final``, then move it onto ``final``.

    A symbolic link at ``final`` is replaced by the folder (the folder it points at is left
    alone); a device, FIFO or socket there is refused."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}")
    if not final.is_symlink() and final.exists() and not final.is_dir():
        check_plain(final)
    remove(tmp)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        remove(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """A ``.json`` or (any other suffix) TOML file as a dict; errors name ``what`` and the file."""
    p = Path(path)
    where = f"{what} {p}" if what != "file" else str(p)
    try:
        text = read_plain(p, where).decode("utf-8")
    except IsADirectoryError:
        raise CnnlabError(f"{where}: is a folder, expected a .toml or .json file") from None
    except OSError as e:
        raise CnnlabError(f"cannot read {where}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CnnlabError(f"{where}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except ValueError as e:  # a NUL byte in the name
        raise CnnlabError(f"cannot read {where!r}: {e}") from None
    kind = "JSON" if p.suffix == ".json" else "TOML"
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise CnnlabError(f"{where}: not valid {kind}: {e}") from None
    except RecursionError:
        raise CnnlabError(f"{where}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise CnnlabError(f"{where}: expected a {kind} table of keys, got "
                          f"{type(data).__name__}")
    return data


def read_plain(path: Path, where: str | None = None, limit: int = MAX_READ) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (symbolic links followed); a
    device, FIFO or socket, or a larger file, is one :class:`CnnlabError` naming it."""
    where = where or str(path)
    st = os.stat(path)  # OSError (missing, permission) is the caller's to word
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(st.st_mode):
        raise CnnlabError(f"{where}: is {_kind(st.st_mode)}, not a regular file; give a file")
    if st.st_size > limit:
        raise CnnlabError(f"{where}: {st.st_size:,} bytes, more than the {limit:,} cnnlab "
                          "reads from such a file; is it the right file?")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise CnnlabError(f"{where}: more than the {limit:,} bytes cnnlab reads from such a "
                          "file; is it the right file?")
    return data


def check_utf8_name(path: str | Path, what: str = "") -> None:
    """Raise unless ``path``'s name is valid UTF-8 (a name read from the disk with undecodable
    bytes holds surrogates: it cannot be printed, drawn or written into a report)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        where = f"{what} {shown}" if what else shown
        raise CnnlabError(f"{where}: the name is not valid UTF-8; rename it (e.g. with "
                          "convmv or mv) to use it with cnnlab") from None


_MISSING: Any = object()


def read_json(path: str | Path, default: Any = _MISSING) -> Any:
    """A JSON file's content. An absent file gives ``default`` if one is given, else an error;
    an unreadable or invalid one always gives a :class:`CnnlabError` naming the file."""
    p = Path(path)
    if default is not _MISSING and not p.is_file():
        return default
    try:
        return json.loads(read_plain(p).decode("utf-8"))
    except FileNotFoundError:
        raise CnnlabError(f"{p}: no such file") from None
    except RecursionError:
        raise CnnlabError(f"{p}: JSON nested too deeply to read") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise CnnlabError(f"{p}: unreadable JSON ({e}); delete it or rerun what wrote it") from None
