"""``cnnlab export ARCH --to onnx|keras|keras-py --out FILE``: an architecture for another
framework.

ARCH is anything ``cnnlab analyze`` reads (a model name, a spec string, a TOML/JSON file, a
``.keras``/``.onnx`` file). ``--to onnx`` writes the seeded PyTorch build through
``torch.onnx.export``; ``--to keras`` writes a ``.keras`` model and, beside it, the readable
Keras code that builds it (``model.py`` for ``model.keras``); ``--to keras-py`` the code only.
See docs/interop.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.common.errors import CnnlabError

FORMATS = ("onnx", "keras", "keras-py")
SUFFIX = {"onnx": ".onnx", "keras": ".keras", "keras-py": ".py"}


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help="a model name (baseline, vgg16...), a spec string, a "
                   ".toml/.json file or a .keras/.onnx model")
    p.add_argument("--to", choices=FORMATS, required=True,
                   help="onnx: an .onnx file; keras: a .keras model and its Keras code (.py); "
                   "keras-py: the Keras code only")
    p.add_argument("--out", metavar="FILE", help="the file to write (default: the model's "
                   "name with the format's suffix)")
    p.add_argument("--input", metavar="CxHxW", help="input shape without batch (named models "
                   "bring their own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (onnx)")


def run(args: argparse.Namespace) -> int:
    from cnnlab.models.resolve import model_graph

    graph, shape = model_graph(args.arch, args.input)
    stem = Path(args.arch).stem if Path(args.arch).suffix else args.arch
    default = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "model"
    out = Path(args.out or default + SUFFIX[args.to])
    if out.suffix != SUFFIX[args.to]:
        raise CnnlabError(f"--out {out}: --to {args.to} writes a {SUFFIX[args.to]} file; "
                          f"e.g. --out {out.with_suffix(SUFFIX[args.to]).name}")
    if not out.parent.is_dir():
        raise CnnlabError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if args.to == "onnx":
        from cnnlab.models.export_onnx import export_onnx

        export_onnx(graph, shape, out, seed=args.seed)
        print(f"wrote {out} (ONNX opset 17, input 'input' of shape N x "
              f"{'x'.join(map(str, shape))})")
        return 0
    from cnnlab.models.export_keras import export_keras

    code = out.with_suffix(".py")
    export_keras(graph, shape, out if args.to == "keras" else None, code, title=args.arch)
    wrote = f"{out} and {code}" if args.to == "keras" else f"{code}"
    print(f"wrote {wrote} (Keras 3, channels last)")
    return 0
