"""The ``cnnlab`` command: a thin dispatcher over one module per sub-command.

A sub-command is one module ``cnnlab/cli/<name>.py`` that defines
``register(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``, and one entry
in :data:`COMMANDS` (name -> (module, one-line help)); another spelling of its name is one
entry in :data:`ALIASES`. ``register`` must not import torch (nor anything heavy): only the
named sub-command's module is imported, and ``cnnlab --help``, ``cnnlab CMD --help`` and every
argument error answer without torch (tests/test_cli_fast.py checks every command). Argument
errors are one line with a suggestion (:mod:`cnnlab.cli.args`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import importlib.util
import os
import signal
import sys
import threading
import warnings

from cnnlab.cli.args import Parser, normalize
from cnnlab.common.errors import CnnlabError, CnnlabWarning

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("cnnlab.cli.analyze", "per-layer shapes, receptive field, params, MACs, memory"),
    "verify": ("cnnlab.cli.verify", "check the sheets' claims numerically"),
    "filter": ("cnnlab.cli.filter", "apply a named or inline kernel to a CSV/NPY/PNG image"),
    "train": ("cnnlab.cli.train", "train a CNN on MNIST-family data"),
    "plot": ("cnnlab.cli.plot", "overlay the curves of finished runs"),
    "evaluate": ("cnnlab.cli.evaluate", "a finished run's accuracy per class, confusion matrix, "
                 "misclassified digits and filters"),
    "demo": ("cnnlab.cli.demo", "analyze the baseline, train it to 99% on MNIST, plot"),
    "experiment": ("cnnlab.cli.experiment", "list / run the sheets' experiments"),
    "search": ("cnnlab.cli.search", "a recipe's smallest-network searches (HUJI 3), resumable"),
    "report": ("cnnlab.cli.report", "turn finished runs into an HTML/PDF report"),
    "export": ("cnnlab.cli.export", "write an architecture as ONNX or Keras (model and code)"),
}

#: other spellings of a command's name -> the command
ALIASES: dict[str, str] = {"analyse": "analyze"}


def _available() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        if importlib.util.find_spec(mod) is not None:
            out[name] = (mod, help_)
    return out


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, import just that sub-command's module (fast start-up;
    ``only=""`` imports none: the top-level help)."""
    parser = Parser(prog="cnnlab", description="Analyze, verify and train convolutional networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in _available().items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_.replace("%", "%%"))
            continue
        p = sub.add_parser(name, help=help_.replace("%", "%%"), description=help_)
        importlib.import_module(mod).register(p)
        p.set_defaults(_module=mod)
    return parser


def join_dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--input -1x28x28`` -> ``--input=-1x28x28``: argparse takes a value that starts with
    '-' for an option (and says "expected one argument"), so the value would never reach the
    range check that explains what is wrong with it. Joined only after an option that takes
    one value, and only when the next word is not itself an option of the command."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None or not argv or argv[0] not in sub.choices:
        return argv
    cmd = sub.choices[argv[0]]
    takes_value = {s for a in cmd._actions if a.nargs is None and a.option_strings
                   for s in a.option_strings}
    out = argv[:1]
    i = 1
    while i < len(argv):
        word = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (word in takes_value and word.startswith("--") and nxt is not None
                and nxt.startswith("-") and nxt != "--"
                and nxt.split("=", 1)[0] not in cmd._option_string_actions):
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def os_error_message(e: OSError) -> str:
    """One line for an OS error: what failed (permission, read-only, disk full...) and the
    path, e.g. ``cannot write runs/a/config.json: No space left on device``."""
    what = e.strerror or str(e) or type(e).__name__
    hint = {errno.ENOSPC: "; free some disk space (the last complete checkpoint is kept)",
            errno.EDQUOT: "; free some space under your quota",
            errno.EROFS: "; choose a writable folder (e.g. --runs-dir)",
            errno.EACCES: "; check the file's permissions",
            errno.EPERM: "; check the file's permissions"}.get(e.errno or -1, "")
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    return f"{where}{what}{hint}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send) taken down the Ctrl-C path: ``finally``
    blocks run, metrics and TensorBoard files are flushed and closed, the last complete
    checkpoint stays the one ``--resume`` continues from (bit-exact)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """:class:`CnnlabWarning` as one line on stderr; other warnings as Python shows them."""
    if issubclass(category, CnnlabWarning):
        print(f"cnnlab: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


#: What continues a stopped command: only commands that keep work have advice, and each
#: names a flag that command has (tests/test_advice.py parses it with the real parser).
STOP_ADVICE: dict[str, str] = {
    "train": "; continue with --resume",
    "experiment": "; finished runs are kept: run the same command again to continue "
                  "(interrupted runs resume from their last checkpoint)",
    "search": "; run the same command again to continue the search",
}


def _debug() -> bool:
    return os.environ.get("CNNLAB_DEBUG", "") not in ("", "0")


def _subparser(parser: argparse.ArgumentParser, args: argparse.Namespace
               ) -> argparse.ArgumentParser:
    """The innermost parser ``args`` went through (``cnnlab experiment run``'s, say)."""
    while parser._subparsers is not None:
        action = next(a for a in parser._subparsers._group_actions
                      if isinstance(a, argparse._SubParsersAction))
        name = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
        if name not in action.choices:
            break
        parser = action.choices[name]
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with ``--snake_case`` flags accepted and an unrecognized
    flag reported by the sub-command it was given to, with the closest flag."""
    if argv and argv[0] in COMMANDS:
        sub = _subparser(parser, argparse.Namespace(command=argv[0]))
        argv = argv[:1] + normalize(sub, argv[1:])
    args, extra = parser.parse_known_args(argv)
    if extra:
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. User errors (:class:`CnnlabError`, OS errors such as a missing
    file, a read-only folder or a full disk) print one line and exit 2; an unexpected
    exception prints one line and exits 1 (``CNNLAB_DEBUG=1`` shows its traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any("\0" in a for a in argv):
        bad = next(a for a in argv if "\0" in a)
        print(f"cnnlab: error: argument {bad!r} contains a NUL byte", file=sys.stderr)
        return 2
    if argv and argv[0] in ALIASES:
        argv[0] = ALIASES[argv[0]]
    parser = build_parser(only=argv[0] if argv and argv[0] in COMMANDS else "")
    args = parse(parser, join_dash_values(parser, argv))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    warnings.showwarning = _show_warning
    try:
        with sigterm_as_interrupt():
            return int(importlib.import_module(args._module).run(args) or 0)
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"cnnlab: terminated (SIGTERM){STOP_ADVICE.get(args.command, '')}",
              file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"cnnlab: interrupted{STOP_ADVICE.get(args.command, '')}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed early: not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as e:
        if _debug():
            raise
        print(f"cnnlab: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except (RecursionError, MemoryError) as e:
        if _debug():
            raise
        print(f"cnnlab: error: the input is too large or too deeply nested "
              f"({type(e).__name__}); make it smaller", file=sys.stderr)
        return 2
    except Exception as e:
        if _debug():
            raise
        line = " ".join(str(e).split())[:300]
        print(f"cnnlab: internal error: {type(e).__name__}: {line} -- this is a bug in "
              "cnnlab; rerun with CNNLAB_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
