"""``cnnlab analyze``: per-layer shapes, receptive field, params, MACs, memory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.common.errors import CnnlabError


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="a spec string ('conv5x5x32 relu maxpool2 fc10'), "
                   "a model name (baseline, vgg16, ...) or a .toml/.json file")
    p.add_argument("--module", metavar="PKG.MOD:FACTORY",
                   help="analyze a live torch.nn.Module returned by FACTORY() (traced by torch.fx)")
    p.add_argument("--input", metavar="CxHxW", help="input shape without batch, e.g. 1x28x28")
    p.add_argument("--batch", type=int, default=1, help="batch size; scales MACs and memory")
    p.add_argument("--compare", action="store_true",
                   help="add locally- and fully-connected parameter counts per conv layer")
    p.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw",
                   help="shape order for --input and the printed shapes (nhwc: as the sheets)")
    p.add_argument("--format", choices=["table", "markdown", "json", "csv", "html"],
                   default="table")


def _load_module(target: str):
    import importlib

    if ":" not in target:
        raise CnnlabError(f"--module {target!r}: expected package.module:factory")
    mod_name, attr = target.split(":", 1)
    sys.path.insert(0, str(Path.cwd()))
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise CnnlabError(f"--module: cannot import {mod_name!r}: {e}") from None
    factory = getattr(mod, attr, None)
    if factory is None:
        raise CnnlabError(f"--module: {mod_name!r} has no attribute {attr!r}")
    return factory() if callable(factory) and not hasattr(factory, "forward") else factory


def run(args: argparse.Namespace) -> int:
    from cnnlab.analysis.render import render
    from cnnlab.ir.shapes import parse_shape
    from cnnlab.models.resolve import analyze

    shape = parse_shape(args.input, args.layout) if args.input else None
    if args.module:
        if shape is None:
            raise CnnlabError("--module needs --input, e.g. --input 3x224x224")
        model = _load_module(args.module)
    else:
        model = args.spec
    analysis = analyze(model, shape, batch=args.batch, compare=args.compare)
    text = render(analysis, args.format, args.layout)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
