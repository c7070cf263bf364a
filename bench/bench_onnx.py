"""cnnlab's ONNX import side by side with onnx-tool's profile on the same files.

Run: ``.venv/bin/python bench/bench_onnx.py [--repeat 3]`` (needs ``pip install onnx-tool``).
Files: cnnlab's exports of ``baseline``, ``sheet3-1c`` and ``vgg16`` and ``torch.onnx.export``
of the hand-written ResNet-18 and MobileNetV2 of tests/coverage_nets.py (batch 1). For each:
parameters, MACs in total and of the conv/fc nodes only, and the time of one analysis from the
file on disk (read, import, analyze; median wall seconds over ``--repeat`` runs after a
warm-up).

Conventions differ and the table shows where: cnnlab counts multiplications (a conv's bias is
an addition, batch norm one multiplication per value, ReLU and max pooling none) and batch
norm's running statistics as buffers; onnx-tool adds a conv's bias and every element-wise op
to its MACs and counts batch norm's four vectors as parameters. ``conv/fc`` compares the
multiplications of the conv/Gemm nodes only, onnx-tool's less one addition per output value.
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from cnnlab.analysis.analyze import analyze_graph
from cnnlab.ir.onnx_import import from_onnx
from cnnlab.models.export_onnx import distinct_values, onnx_model
from cnnlab.models.resolve import model_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from coverage_nets import MobileNetV2, ResNet18  # noqa: E402


def _files(folder: Path) -> list[tuple[str, Path]]:
    out = []
    for name in ("baseline", "sheet3-1c", "vgg16"):
        graph, shape = model_graph(name)
        path = folder / f"{name}.onnx"
        path.write_bytes(onnx_model(graph, shape)[1].SerializeToString())
        out.append((name, path))
    for name, factory, shape in (("resnet18 (torch)", ResNet18, (3, 224, 224)),
                                 ("mobilenetv2 (torch)", MobileNetV2, (3, 32, 32))):
        torch.manual_seed(0)
        net = factory().eval()
        distinct_values(net)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(1, *shape),), buf, dynamo=False,
                              opset_version=17, input_names=["input"],
                              training=torch.onnx.TrainingMode.PRESERVE)
        path = folder / f"{factory.__name__}.onnx"
        path.write_bytes(buf.getvalue())
        out.append((name, path))
    return out


def _cnnlab(model: onnx.ModelProto) -> tuple[int, int, int]:
    graph, shape, _ = from_onnx(model)
    a = analyze_graph(graph, shape)
    core = sum(r.macs or 0 for r in a.layers if r.kind in ("conv", "linear"))
    return a.total.params, a.total.macs, core


def _onnx_tool(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    import onnx_tool

    m = onnx_tool.Model(str(path))
    g = m.graph
    g.graph_reorder_nodes()
    g.shape_infer({"input": np.zeros((1, *shape), dtype=np.float32)})
    g.profile()
    core = 0
    for node in g.nodemap.values():
        if node.op_type in ("Conv", "Gemm"):
            outs = int(np.prod(g.tensormap[node.output[0]].shape))
            bias = outs if len(node.input) > 2 else 0
            core += int(node.macs[0]) - bias
    return int(g.params), int(g.macs[0]), core


def _median(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"onnx {onnx.__version__}, 1 thread, median of {args.repeat}")
    print("| model | params cnnlab | params onnx-tool | MACs cnnlab | MACs onnx-tool | "
          "conv/fc MACs cnnlab | conv/fc MACs onnx-tool | s cnnlab | s onnx-tool |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as d:
        for name, path in _files(Path(d)):
            model = onnx.load(str(path))
            _, shape, _ = from_onnx(model)
            ours = _cnnlab(model)
            theirs = _onnx_tool(path, shape)
            t_ours = _median(lambda p=path: _cnnlab(onnx.load(str(p))), args.repeat)
            t_theirs = _median(lambda p=path, s=shape: _onnx_tool(p, s), args.repeat)
            print(f"| {name} | {ours[0]:,} | {theirs[0]:,} | {ours[1]:,} | {theirs[1]:,} | "
                  f"{ours[2]:,} | {theirs[2]:,} | {t_ours:.3f} | {t_theirs:.3f} |", flush=True)


if __name__ == "__main__":
    main()
