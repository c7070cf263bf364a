"""Argument errors a person can act on: one line that names the sub-command and suggests the
closest flag, choice or command, and the spellings people bring from elsewhere accepted.

* :class:`Parser` -- an :class:`argparse.ArgumentParser` whose errors are one line
  (``cnnlab train: error: unrecognized argument --itterations; did you mean --iterations?``)
  instead of the usage block, and ``exit 2``;
* :func:`normalize` -- ``--out_name`` (the ETH skeleton's spelling) read as ``--out-name``
  when that is a flag of the command;
* :func:`suggest` -- the closest of some words (:mod:`difflib`, case-insensitive first).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterable
from typing import NoReturn


def suggest(word: str, options: Iterable[str]) -> str | None:
    """The option closest to ``word``: an exact case-insensitive match, else the best
    :func:`difflib.get_close_matches` (cutoff 0.6), else None."""
    options = [str(o) for o in options]
    low = {o.lower(): o for o in options}
    if word.lower() in low:
        return low[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)
    return low[close[0]] if close else None


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [s for s in parser._option_string_actions if s.startswith("--")]


def _all_flags(parser: argparse.ArgumentParser) -> set[str]:
    """The long flags of ``parser`` and of its sub-commands' parsers."""
    out = set(_flags(parser))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _all_flags(sub)
    return out


def normalize(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with ``--snake_case`` flags spelt ``--kebab-case`` where the parser (or one of
    its sub-commands) knows that flag (``--out_name x`` and ``--out_name=x`` ->
    ``--out-name``); anything after ``--`` and every other token are left as they are."""
    known = _all_flags(parser)
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        if a.startswith("--") and "_" in a.split("=", 1)[0]:
            name, eq, value = a.partition("=")
            dashed = name.replace("_", "-")
            if dashed in known:
                a = dashed + eq + value
        out.append(a)
    return out


#: words that read as layers of a spec string (``relu``, ``fc10``, ``maxpool2``, ...): a spec
#: typed without quotes arrives as several arguments
_SPEC_WORD = re.compile(r"^(conv|fc|relu|maxpool|avgpool|pool|dropout|bn|batchnorm|flatten|"
                        r"sigmoid|tanh|softmax|lc|local|gap|gelu|silu|elu)[0-9x.()=a-z,]*$")

_CHOICE = re.compile(r"argument (?P<arg>[^:]+): invalid choice: '?(?P<bad>.*?)'? "
                     r"\(choose from (?P<choices>.*)\)$")


def improve(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's ``message`` with a suggestion: the closest flag for an unrecognized one, the
    closest choice (and the list) for an invalid choice."""
    if message.startswith("unrecognized arguments: "):
        words = message.removeprefix("unrecognized arguments: ").split()
        flags = [w for w in words if w.startswith("-")]
        if not flags:
            if any(_SPEC_WORD.match(w) for w in words):  # `cnnlab analyze conv5x5x32 relu fc10`
                return (f"unexpected argument(s) {' '.join(words)}: a spec with spaces is one "
                        f"argument; quote it, e.g. {parser.prog} 'conv5x5x32 relu fc10'")
            return f"unexpected argument(s) {' '.join(words)}; see {parser.prog} --help"
        close = {w: suggest(w.split("=", 1)[0], _flags(parser)) for w in flags}
        if len(flags) == 1:
            (w, c), = close.items()
            return f"unrecognized argument {w}; " + (
                f"did you mean {c}?" if c else f"see {parser.prog} --help")
        parts = [w + (f" (did you mean {c}?)" if c else "") for w, c in close.items()]
        return f"unrecognized arguments {', '.join(parts)}; see {parser.prog} --help"
    m = _CHOICE.match(message)
    if m:
        choices = [c.strip().strip("'\"") for c in m["choices"].split(",")]
        choices = [c for c in choices if c != "None"]
        close = suggest(m["bad"], choices)
        what = m["arg"].lower() if m["arg"].isupper() else m["arg"]  # COMMAND -> command
        did = f"; did you mean {close}?" if close else ""
        return f"{what}: invalid choice: {m['bad']!r}{did} (choose from {', '.join(choices)})"
    return message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr with a suggestion, exit 2."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(improve(self, message).split())
        sys.stderr.write(f"{self.prog}: error: {line}\n")
        sys.exit(2)
