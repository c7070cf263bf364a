"""``cnnlab analyze``: per-layer shapes, receptive field, params, MACs, memory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.common.errors import CnnlabError, ShapeError


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="a spec string ('conv5x5x32 relu maxpool2 fc10'), "
                   "a model name (baseline, vgg16, ...), a .toml/.json file or a .keras/.onnx "
                   "model (docs/interop.md)")
    p.add_argument("--module", metavar="PKG.MOD:FACTORY",
                   help="analyze a live torch.nn.Module returned by FACTORY() (traced by torch.fx)")
    p.add_argument("--input", metavar="CxHxW", help="input shape without batch, e.g. 1x28x28; "
                   "50:int64 for 50 token ids (a module starting with nn.Embedding)")
    p.add_argument("--batch", type=int, default=1, help="batch size; scales MACs and memory")
    p.add_argument("--compare", action="store_true",
                   help="add locally- and fully-connected parameter counts per conv layer")
    p.add_argument("--layout", choices=["nchw", "nhwc"], default="nchw",
                   help="shape order for --input and the printed shapes (nhwc: as the sheets)")
    p.add_argument("--format", choices=["table", "markdown", "json", "csv", "html"],
                   default="table")
    e = p.add_argument_group("effective receptive field (docs/erf.md)")
    e.add_argument("--erf", action="store_true",
                   help="measure the effective receptive field of the centre unit of chosen "
                   "layers (Luo et al. 2016) and write a heatmap")
    e.add_argument("--weights", metavar="RUN_DIR",
                   help="use the trained weights of a run folder (runs/NAME) instead of a "
                   "random init; MODEL may then be left out")
    e.add_argument("--erf-layers", metavar="A,B",
                   help="layers to measure (analyzer row names); default: up to 6 conv/pool "
                   "layers, the last included")
    e.add_argument("--erf-samples", type=int, default=32, metavar="N",
                   help="random N(0,1) inputs to average the gradient over (default 32)")
    e.add_argument("--erf-seed", type=int, default=0, metavar="S",
                   help="seed of the random init and of the inputs (default 0)")
    e.add_argument("--erf-init", choices=["random", "uniform"], default="random",
                   help="uniform: every conv weight 1/fan_in, biases 0 (Luo et al.'s uniform "
                   "case); random: the model's own init or the --weights")
    e.add_argument("--out", "--erf-out", dest="erf_out", default="erf.png", metavar="FILE.png",
                   help="heatmap file, .png or .svg (default erf.png; --erf-out is the old "
                   "name)")


def _load_module(target: str):
    from cnnlab.models.resolve import load_module

    return load_module(target)


def run(args: argparse.Namespace) -> int:
    from cnnlab.analysis.render import render
    from cnnlab.ir.shapes import INPUT_FORM, input_hint, parse_input
    from cnnlab.models.resolve import analyze

    # "50:int64": 50 token ids for a module that starts with nn.Embedding
    shape, dtype = parse_input(args.input, args.layout) if args.input else (None, None)
    if args.erf or args.weights:
        return _run_erf(args, shape)
    if args.module:
        if shape is None:
            raise CnnlabError("--module needs --input, e.g. --input 3x224x224")
        model = _load_module(args.module)
    else:
        model = args.spec
    try:
        analysis = analyze(model, shape, batch=args.batch, compare=args.compare, dtype=dtype)
    except ShapeError as e:
        if not args.input:
            raise
        hint = input_hint(args.input, args.layout)
        if hint == INPUT_FORM:  # no common mistake recognised: the error, then the form
            raise CnnlabError(f"{e} ({hint})") from None
        raise CnnlabError(f"{hint} ({e})") from None  # the likely mistake first
    text = render(analysis, args.format, args.layout)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# ------------------------------------------------------------------------- --erf

_ERF_DEFAULT_MAX = 6  # default layers: at most this many conv/pool rows, the last included


def _erf_model(args: argparse.Namespace, shape):
    """(module, input shape, what the analyzer reads, description of the weights)."""
    from cnnlab.models import zoo

    if args.weights:
        from cnnlab.ttic.pyramid import load_trained

        if args.module:
            raise CnnlabError("--weights loads the run's own model; drop --module")
        if not Path(args.weights).is_dir():
            raise CnnlabError(f"--weights {args.weights}: no such run folder (give runs/NAME)")
        trained = load_trained(args.weights)
        if args.spec and zoo.resolve(args.spec).spec != trained.spec:
            raise CnnlabError(f"--weights {args.weights} holds {trained.model!r} "
                              f"({trained.spec!r}), not {args.spec!r}; drop MODEL or match it")
        return (trained.net, shape or trained.input_shape, trained.spec or trained.net,
                f"trained, {args.weights}")
    if args.module:
        if shape is None:
            raise CnnlabError("--module needs --input, e.g. --input 3x224x224")
        import torch

        torch.manual_seed(args.erf_seed)
        net = _load_module(args.module)
        return net, shape, net, f"as built by {args.module} (torch seed {args.erf_seed})"
    if not args.spec:
        raise CnnlabError("--erf needs a MODEL (name, spec or file), --module or --weights")
    mdef = zoo.resolve(args.spec)
    shape = shape or mdef.input_shape or None
    if shape is None:
        raise CnnlabError("no input shape: add --input CxHxW, e.g. --input 1x28x28")
    return (mdef.build(shape, seed=args.erf_seed), shape, args.spec,
            f"random init (seed {args.erf_seed})")


def _module_name(modules: dict, name: str) -> str | None:
    from cnnlab.models.build import layer_key

    for cand in (name, f"layers.{layer_key(name)}"):  # GraphNet keeps node a.b as layers.a/b
        if cand in modules:
            return cand
    return None


def _erf_layers(args: argparse.Namespace, net, analysis) -> tuple[list[str], dict, dict]:
    """(module names, module name -> analyzer rf, module name -> shown name)."""
    modules = dict(net.named_modules())
    rows = {r.name: r for r in analysis.layers} if analysis is not None else {}
    if args.erf_layers:
        wanted = [w.strip() for w in args.erf_layers.split(",") if w.strip()]
    else:
        wanted = [r.name for r in rows.values() if r.kind in ("conv", "pool")
                  and r.jump is not None and _module_name(modules, r.name)]
        if not wanted:
            raise CnnlabError("no conv/pool layer found for the ERF; name the layers with "
                              "--erf-layers a,b")
        if len(wanted) > _ERF_DEFAULT_MAX:
            step = (len(wanted) - 1) / (_ERF_DEFAULT_MAX - 1)
            wanted = [wanted[round(i * step)] for i in range(_ERF_DEFAULT_MAX)]
    names, rf, shown = [], {}, {}
    for w in wanted:
        m = _module_name(modules, w)
        if m is None:
            known = [r.name for r in rows.values() if r.jump is not None
                     and _module_name(modules, r.name)] or [
                n for n, mod in modules.items() if n and not list(mod.children())]
            raise CnnlabError(f"--erf-layers: {w!r} is not a module of the model; layers with "
                              f"a feature map: {', '.join(known[:30])}"
                              + (" ..." if len(known) > 30 else ""))
        names.append(m)
        shown[m] = w
    if analysis is not None:
        from cnnlab.analysis.erf import rf_of

        rf = rf_of(analysis, names)
    return names, rf, shown


def _run_erf(args: argparse.Namespace, shape) -> int:
    from cnnlab.analysis.erf import effective_rf, plot
    from cnnlab.models.resolve import analyze

    out = Path(args.erf_out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise CnnlabError(f"--out {args.erf_out}: give a .png or .svg file name")
    net, shape, source, weights = _erf_model(args, shape)
    note = ""
    try:
        analysis = analyze(source, shape)
    except CnnlabError as e:
        analysis, note = None, f"theoretical RF unknown: {e}"
    if args.erf_init == "uniform":
        from cnnlab.analysis.erf import uniform_weights

        if args.weights:
            raise CnnlabError("--erf-init uniform replaces the weights; drop --weights")
        if not uniform_weights(net):
            raise CnnlabError("--erf-init uniform: the model has no convolution")
        weights = "uniform (conv weights 1/fan_in, biases 0)"
    names, rf, shown = _erf_layers(args, net, analysis)
    result = effective_rf(net, shape, names, samples=args.erf_samples, seed=args.erf_seed,
                          rf=rf)
    if args.format == "json":
        import json

        rows = [{"layer": shown[r.layer], "module": r.layer, "output_shape": r.output_shape,
                 "centre": r.centre, "rf": r.rf, "footprint": r.footprint, "erf50": r.erf50,
                 "erf95": r.erf95, "ratio50": r.ratio50, "ratio95": r.ratio95, "std": r.std}
                for r in result.layers]
        text = json.dumps({"input_shape": shape, "samples": result.samples,
                           "seed": result.seed, "weights": weights, "layers": rows}, indent=1)
    else:
        text = _erf_table(result, shown, shape, weights)
    paths = plot(result, str(out.with_suffix("")), formats=(out.suffix[1:].lower(),),
                 title=f"ERF, {weights}; red: theoretical RF, dashed: ERF95", labels=shown)
    sys.stdout.write(text + "\n")
    info = sys.stderr if args.format == "json" else sys.stdout
    dead = [shown[r.layer] for r in result.layers if not r.grad.any()]
    if dead:
        info.write(f"zero gradient for every input at {', '.join(dead)} (the centre unit is "
                   "dead, e.g. a ReLU that is never active): no ERF there\n")
    if note:
        info.write(note + "\n")
    info.write(f"heatmap: {paths[0]}\n")
    return 0


def _erf_table(result, shown: dict, shape, weights: str) -> str:
    def x(v) -> str:
        return "?" if v is None else "x".join(map(str, v))

    def f(v) -> str:
        return "?" if v is None else f"{v:.2f}"

    head = ["layer", "output", "RF", "footprint", "ERF50", "ERF95", "ERF50/RF", "ERF95/RF",
            "std"]
    body = [[shown[r.layer], x(r.output_shape), x(r.rf), x(r.footprint), str(r.erf50),
             str(r.erf95), f(r.ratio50), f(r.ratio95), "x".join(f"{s:.2f}" for s in r.std)]
            for r in result.layers]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [f"effective receptive field: input {x(shape)}, {result.samples} random N(0,1) "
             f"inputs (seed {result.seed}), weights {weights}",
             "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    lines.append("RF: theoretical (analyzer); footprint: extent of the non-zero gradient; "
                 "ERFp: side of the centred square holding p% of |gradient|; ratio: ERF/max(RF)")
    return "\n".join(lines)
