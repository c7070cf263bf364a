"""Fuzz the input layer: generated specs (parsed and analyzed), architecture files, training
configs and mutated recipes. Every case must end in success or a CnnlabError ("foreign"
exceptions are counted and listed), under 2 s of CPU and 500 MB of traced allocation.

    .venv/bin/python bench/fuzz_inputs.py [--cases 10000] [--seed 0]

Prints one JSON line of counts (docs/reliability.md quotes it). Cases are generated with
``random.Random(seed)``, so a count can be reproduced exactly.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from cnnlab.common.config import from_dict
from cnnlab.common.errors import CnnlabError

PIECES = ["conv", "fc", "maxpool", "avgpool", "dropout", "bn", "relu", "tanh", "res", "add",
          "cat", "scale", "gap", "flatten", "softmax", "x", "3", "5", "0", "-1", "2.5",
          "99999999", "65537", "(", ")", "{", "}", "|", "*", ",", "=", "p", "eps", "stride",
          "padding", "same", "full", "bias", "maybe", "abc", "gamma", "1/sqrt2", " ", "->",
          "nan", "inf", "1e999", "groups", "dilation", "keep", "\x00", "é",
          # digits that are not ASCII ('²'.isdigit() is True), and numbers int() refuses
          "²", "٣", "9" * 5000, "-", "1e-3"]
LAYERS = ["conv3x3x8", "conv5x5x4(padding=same)", "conv3x3x8(stride=2)", "maxpool2", "relu",
          "bn", "dropout0.5", "fc10", "flatten", "gap", "res{conv3x3x8(padding=same) relu}",
          "add{relu | tanh}", "cat{maxpool2 | avgpool2}"]
BAD_LAYERS = ["conv3x3x8(padding=99999999)", "conv3x3x8(stride=0,padding=same)",
              "dropout(p=abc)", "bn(eps=abc)", "fc0", "conv3x3x8(bias=maybe)"]
VALUES = [None, True, False, 0, 1, -1, 2, 8, 10**30, 0.5, 1e-3, -0.0, 1e400, float("nan"),
          "", "x", "1e-3", "true", "no", "adam", "sgd", "constant", "auto", "cpu", [], [1, 2],
          {}, {"a": 1}, "conv3x3x8 relu fc10", "../escape", "a\x00b"]
RECIPE_VALUES = ['"x"', "-1", "0", "[1, 2]", "true", "1e400", "{}", '"1e-3"', "[]", '""',
                 "[[1]]", "nan", "99999999999", '"../../etc"', "{ lr = [] }"]


def gen_spec(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
    parts = [rng.choice(BAD_LAYERS if rng.random() < 0.05 else LAYERS)
             + (f"*{rng.choice([1, 2, 3, 0, 10**9])}" if rng.random() < 0.1 else "")
             for _ in range(rng.randint(1, 8))]
    return " ".join(parts)


def run_spec(rng: random.Random, tmp: Path) -> None:
    from cnnlab.models.resolve import analyze

    text = gen_spec(rng)
    shape = rng.choice([(1, 28, 28), (3, 32, 32), (1, 8, 8), (16,), (2, 5, 6, 7)])
    analyze(text, shape)


def gen_layer(rng: random.Random, depth: int = 0) -> dict:
    kind = rng.choice(["conv", "fc", "maxpool", "relu", "bn", "dropout", "res", "add", "cat",
                       "scale", rng.choice(VALUES)])
    d: dict = {"type": kind}
    for key in rng.sample(["kernel", "out", "filters", "stride", "padding", "bias", "eps", "p",
                           "repeat", "gamma", "factor", "body", "branches", "bogus"],
                          rng.randint(0, 4)):
        if key in ("body", "branches") and depth < 3:
            d[key] = [gen_layer(rng, depth + 1) for _ in range(rng.randint(0, 2))]
            if key == "branches":
                d[key] = [d[key], [gen_layer(rng, depth + 1)]]
        else:
            d[key] = rng.choice(VALUES + [3, [3, 3], "same", 16])
    return d


def run_archfile(rng: random.Random, tmp: Path) -> None:
    from cnnlab.ir.shapes import infer_shapes
    from cnnlab.ir.specfile import load

    doc: dict = {"layers": [gen_layer(rng) for _ in range(rng.randint(0, 5))]}
    if rng.random() < 0.3:
        doc = {"spec": gen_spec(rng)}
    if rng.random() < 0.5:
        doc["input"] = rng.choice([[1, 28, 28], "1x28x28", [0], "abc", [True], 5, [1, -1]])
    path = tmp / "arch.json"
    path.write_text(json.dumps(doc, allow_nan=True))
    g, shape, _ = load(path)
    infer_shapes(g, shape or (1, 28, 28))


def run_config(rng: random.Random, tmp: Path) -> None:
    import dataclasses

    from cnnlab.training.trainer import TrainConfig, check_config

    fields = [f.name for f in dataclasses.fields(TrainConfig)] + ["bogus"]
    data = {k: rng.choice(VALUES) for k in rng.sample(fields, rng.randint(0, 6))}
    check_config(from_dict(TrainConfig, data, where="fuzz"))


_RECIPES: list[str] = []


def run_recipe(rng: random.Random, tmp: Path) -> None:
    from cnnlab.experiments.recipe import RECIPE_DIR, expand, load_recipe, train_config

    if not _RECIPES:
        _RECIPES.extend(p.read_text() for p in sorted(RECIPE_DIR.glob("*.toml")))
    lines = rng.choice(_RECIPES).splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        m = re.match(r"(\s*[\w\".-]+\s*=\s*)(.*)", lines[i])
        if m and rng.random() < 0.8:
            lines[i] = m.group(1) + rng.choice(RECIPE_VALUES)
        else:
            del lines[i]
    path = tmp / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n")
    recipe = load_recipe(path)
    for job in expand(recipe, quick=True)[:50]:
        train_config(job, tmp / "runs")


KINDS = {"spec": run_spec, "archfile": run_archfile, "config": run_config,
         "recipe": run_recipe}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated subset of {', '.join(KINDS)}")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts: Counter = Counter()
    foreign: Counter = Counter()
    examples: dict[str, str] = {}
    slow = big = 0
    worst_cpu = worst_mb = 0.0
    names = [k for k in args.kinds.split(",") if k in KINDS] or list(KINDS)
    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in names:  # warm-up: imports are not the case's cost
            try:
                KINDS[kind](random.Random(-1), tmp)
            except Exception:  # noqa: BLE001, S110
                pass
        for i in range(args.cases):
            kind = names[i % len(names)]
            case_rng = random.Random(rng.random())
            tracemalloc.start()
            t0 = time.process_time()
            try:
                KINDS[kind](case_rng, tmp)
                counts[f"{kind}_ok"] += 1
            except CnnlabError:
                counts[f"{kind}_error"] += 1
            except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                key = f"{kind}: {type(e).__name__}"
                foreign[key] += 1
                examples.setdefault(key, str(e)[:200])
            cpu = time.process_time() - t0
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            worst_cpu, worst_mb = max(worst_cpu, cpu), max(worst_mb, peak)
            worst[kind] = max(worst.get(kind, 0.0), round(cpu, 3))
            slow += cpu > 2.0
            big += peak > 500
    print(json.dumps({"cases": args.cases, "seed": args.seed, **dict(sorted(counts.items())),
                      "foreign": sum(foreign.values()), "foreign_kinds": dict(foreign),
                      "examples": examples, "over_2s": slow, "over_500MB": big,
                      "worst_cpu_s_by_kind": worst, "worst_cpu_s": round(worst_cpu, 3),
                      "worst_peak_MB": round(worst_mb, 1)}))
    return 1 if foreign or slow or big else 0


if __name__ == "__main__":
    sys.exit(main())
