"""Append nodes to a ``torch.fx.Graph`` as ``Graph.create_node`` does, for a run-capture.

A capture adds some 300 to 1,000 nodes per run, and ``create_node`` spends two thirds of its
time on work a capture does not need per node: a pytree scan of the arguments for symbolic
ints (a meta run has none), the candidate name made from the target (``_snake_case`` and a
regex, the same answer for every call of ``conv2d``) and ``_Namespace.create_name``'s regex
parse of it. :class:`GraphWriter` remembers the parsed candidate per target and makes the
node with the same name, arguments, users, insertion and bookkeeping (the namespace's used
names and counts, the graph's lookup table and length) that ``create_node`` gives, so the
graph is the one fx would build and further ``create_node`` calls on it go on as usual
(``tests/test_capture_graph.py`` checks names and state against ``create_node``). A candidate
that shadows a builtin or keyword, or is not a valid identifier even after fx's clean-up, is
named by fx's own ``create_name``.
"""

from __future__ import annotations

from typing import Any

from torch import fx
from torch.fx.graph import _illegal_char_regex, _illegal_names, _name_regex, _snake_case
from torch.fx.immutable_collections import immutable_dict
from torch.fx.node import Node

# target -> (fx's candidate name, its base and number suffix if create_name may be skipped,
# else None); bounded: call_module targets are paths, a different set per model
_CANDIDATES: dict[Any, tuple[str, str, str | None, int | None]] = {}
_MAX_CANDIDATES = 16384


def _candidate(target: Any) -> tuple[str, str, str | None, int | None]:
    """``Graph._target_to_str(target)``, and how ``create_name`` parses it: the name after
    fx replaces illegal characters, its base and number suffix (``features_0`` ->
    ``features``, 0). The base is None (fx's own ``create_name`` then names the node) where the
    candidate needs more clean-up, or is a builtin or keyword."""
    try:
        found = _CANDIDATES.get(target)
    except TypeError:  # an unhashable callable: not remembered
        found = None
    if found is not None:
        return found
    if callable(target):
        op = target.__name__
    else:
        op = target[2:-2] if target.startswith("__") and target.endswith("__") else target
    candidate = _snake_case(op)
    clean = candidate if _name_regex.match(candidate) else _illegal_char_regex.sub(
        "_", candidate)
    match = _name_regex.match(clean) if clean and not clean[0].isdigit() else None
    found = (candidate, clean, None, None)
    if match is not None and clean not in _illegal_names:
        base, num = match.group(1, 2)
        found = (candidate, clean, base, None if num is None else int(num))
    if len(_CANDIDATES) < _MAX_CANDIDATES:
        try:
            _CANDIDATES[target] = found
        except TypeError:
            pass
    return found


class GraphWriter:
    """Creates nodes at the end of ``graph`` (its default insertion point)."""

    def __init__(self, graph: fx.Graph):
        self.graph = graph
        ns = graph._graph_namespace
        self.namespace = ns
        self.used = ns._used_names
        self.counts = ns._base_count
        self.objects = ns._obj_to_name
        self.table = graph._find_nodes_lookup_table.table

    def name(self, target: Any) -> str:
        """``graph._graph_namespace.create_name(graph._target_to_str(target), None)``."""
        candidate, name, base, num = _candidate(target)
        if base is None:
            return self.namespace.create_name(candidate, None)
        used = self.used
        if num is None or name in used:
            num = self.counts.get(base, 0)
        while name in used:
            num += 1
            name = f"{base}_{num}"
        used.add(name)
        self.counts[base] = num
        return name

    def node(self, op: str, target: Any, args: tuple = (), kwargs: dict | None = None,
             named_as: Any = None) -> Node:
        """``graph.create_node(op, target, args, kwargs)`` for a graph without an owning
        module, whose arguments hold no symbolic ints; ``named_as``: the target the name is
        made from, when not ``target``."""
        graph = self.graph
        name = self.name(target if named_as is None else named_as)
        n = Node(graph, name, op, target, args, kwargs or immutable_dict())
        self.objects.setdefault(n, name)  # associate_name_with_obj
        graph._insert(n)
        self.table[(op, target if op == "call_function" else None)][n] = None
        graph._len += 1
        return n
