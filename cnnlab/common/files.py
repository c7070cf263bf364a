"""The one atomic writer and the one TOML/JSON loader.

Writers never leave a half-written file: the bytes go to a temporary file in the same folder,
which then replaces the target in one ``os.replace`` (atomic on POSIX and Windows), so a crash,
Ctrl-C or a full disk leaves the old file or the new one, never a mix. Folders (checkpoints)
are written the same way with :func:`replace_dir`.

The loader reads ``.toml`` or ``.json`` by suffix and turns every failure (missing, unreadable,
not UTF-8, bad syntax, not a table) into one :class:`CnnlabError` line that names the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cnnlab.common.errors import CnnlabError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then move it onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
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


def replace_dir(final: Path, fill: Callable[[Path], Any]) -> Path:
    """Build a folder with ``fill(tmp)`` beside ``final``, then move it onto ``final``."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if final.exists():
            shutil.rmtree(final)
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
        text = p.read_bytes().decode("utf-8")
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


_MISSING: Any = object()


def read_json(path: str | Path, default: Any = _MISSING) -> Any:
    """A JSON file's content. An absent file gives ``default`` if one is given, else an error;
    an unreadable or invalid one always gives a :class:`CnnlabError` naming the file."""
    p = Path(path)
    if default is not _MISSING and not p.is_file():
        return default
    try:
        return json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CnnlabError(f"{p}: no such file") from None
    except RecursionError:
        raise CnnlabError(f"{p}: JSON nested too deeply to read") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        raise CnnlabError(f"{p}: unreadable JSON ({e}); delete it or rerun what wrote it") from None
