"""The recipe format's types and number domains (docs/experiments.md): each key has the TOML
type the format gives it and each number its range, checked on load, one line per mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.config import check_range
from cnnlab.common.errors import CnnlabError

#: The most training runs one recipe may expand into (configurations x seeds): a sweep of
#: 10^8 points or ``seeds = 10^12`` is refused before anything is built or trained.
MAX_RUNS = 10_000
#: Domains of the recipe's own numbers (TrainConfig keys carry theirs on the field), checked
#: by :func:`cnnlab.common.config.check_range` like every other number.
RECIPE_RANGES: dict[str, tuple] = {
    "seeds": (1, MAX_RUNS), "order": (-10**9, 10**9)}
SEARCH_RANGES: dict[str, tuple] = {
    "trials": (1, MAX_RUNS), "batch": (1, MAX_RUNS), "seeds": (1, MAX_RUNS),
    "validation": (1, 10**9), "sampler_seed": (0, 2**62), "screen_margin": (0, 1),
    "target": (0, 100, True)}



#: The recipe's top-level keys and the TOML type each must have.
_TOP_TYPES: dict[str, tuple[type, ...]] = {
    "title": (str,), "source": (str,), "question": (str,), "text": (str,),
    "seeds": (int,), "order": (int,), "base": (dict,), "quick": (dict,),
    "variants": (list,), "sweeps": (list,), "searches": (list,), "analyze": (dict,),
    "findings": (dict,), "measure": (dict,)}


def check_types(data: dict[str, Any], path: Path) -> None:
    """Each key has the TOML type the format gives it (docs/experiments.md): strings,
    integers, tables, arrays of tables; a wrong one is a one-line error naming it."""
    def fail(where: str, want: str, got: Any) -> None:
        raise CnnlabError(f"{path}: {where} must be {want}, got {got!r}"[:300])

    for key, types in _TOP_TYPES.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            fail(key, " or ".join(t.__name__ for t in types).replace("dict", "a table")
                 .replace("list", "an array of tables").replace("str", "a string")
                 .replace("int", "an integer"), data[key])
    if "sheet" in data and not isinstance(data["sheet"], str | dict):
        fail("sheet", "a string or a [sheet] table", data["sheet"])
    for key, bounds in RECIPE_RANGES.items():
        if key in data:
            check_range(key, data[key], bounds, str(path))
    for key in ("variants", "sweeps", "searches"):
        for i, item in enumerate(data.get(key, [])):
            if not isinstance(item, dict):
                fail(f"{key}[{i}]", "a table ([[{key}]])", item)
            for sub in ("quick", "set", "grid", "sheet", "space", "final"):
                if sub in item and not isinstance(item[sub], dict):
                    fail(f"{key}[{i}].{sub}", "a table", item[sub])
            if "label" in item and not isinstance(item["label"], str):
                fail(f"{key}[{i}].label", "a string", item["label"])
            for k, v in item.get("grid", {}).items() if key == "sweeps" else ():
                if not isinstance(v, list) or not v:
                    fail(f"{key}[{i}].grid.{k}", "a non-empty array of values", v)
            if key == "searches" and "values" in item and not isinstance(item["values"], list):
                fail(f"{key}[{i}].values", "an array", item["values"])
            for table in (item, item.get("quick", {}), item.get("sheet", {})) \
                    if key == "searches" else ():
                for k, bounds in SEARCH_RANGES.items():
                    v = table.get(k) if isinstance(table, dict) else None
                    if v is None or k == "seeds" and isinstance(v, list):
                        continue
                    if isinstance(v, bool) or not isinstance(v, int | float):
                        fail(f"{key}[{i}].{k}", "a number", v)
                    check_range(k, v, bounds, f"{path}: {key}[{i}]")
    kind = data.get("findings", {}).get("kind", "compare")
    if not isinstance(kind, str):
        fail("findings.kind", "a string", kind)
    evaluate = data.get("findings", {}).get("evaluate")
    if evaluate is not None and not isinstance(evaluate, str):
        fail("findings.evaluate", "a variant label (a string)", evaluate)
    for key in ("plots", "table", "metric", "speed"):
        v = data.get("findings", {}).get(key)
        if v is not None and not isinstance(v, list | str):
            fail(f"findings.{key}", "a string or an array of strings", v)
