"""How much of the torchvision and timm model zoos ``cnnlab.analyze`` analyzes fully (issue 21).

torchvision and timm are not dependencies of cnnlab (torchvision's wheel has a C extension
built for another torch); their model code is pure Python and is imported from a folder::

    mkdir -p /tmp/zoo && cd /tmp/zoo && pip download torchvision timm --no-deps
    for w in *.whl; do python -m zipfile -e "$w" .; done

This script stubs ``torchvision._meta_registrations`` itself (the one module that needs the
C extension), so nothing else is needed. Run (one thread; models are built on the ``meta``
device, so even the largest costs no memory and no weight initialisation)::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/bench_zoo.py [--zoo /tmp/zoo]
        [--only torchvision|timm] [--limit N] [--timm-sample 60] [--json out.json]

Each model is built with random init (``weights=None`` / ``pretrained=False``), put in
``eval()`` and analyzed at its default input: timm's ``default_cfg['input_size']``;
torchvision 3x224x224 (inception_v3 3x299x299, segmentation 3x520x520, detection 3x320x320
given as one batched image). Every result is one of

  * FULL:    no unsupported row, every row's receptive field known, the total parameter
             count equal to ``sum(p.numel())`` of the module;
  * PARTIAL: analyzed, with unsupported rows, unknown receptive fields or a parameter
             difference (all listed);
  * ERROR:   a one-line :class:`cnnlab.CnnlabError` (a model cnnlab declines, with why);
  * CRASH:   any other exception (a bug in cnnlab);
  * BUILD:   the zoo itself could not build the model here (not counted).

torchvision's zoo is every classification, segmentation and detection model; timm's is one
model per CNN family (the first name in sorted order matching each prefix of ``FAMILIES``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import time
import types
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

# one model per family of timm CNNs (and CNN/attention hybrids); ~60 families
FAMILIES = (
    "resnet1", "resnetv2_", "resnext", "seresnext", "resnetrs", "resnest", "res2net",
    "resnetblur", "ecaresnet", "skresnet", "wide_resnet", "tresnet", "efficientnet_",
    "efficientnetv2", "tf_efficientnet_", "tf_efficientnetv2", "mobilenetv2", "mobilenetv3",
    "tf_mobilenetv3", "mobilenetv4", "mnasnet", "fbnet", "lcnet", "ghostnet_", "ghostnetv2",
    "rexnet", "mixnet", "tf_mixnet", "tinynet", "convnext_", "convnextv2", "regnetx",
    "regnety", "regnetz", "densenet", "dla", "dpn", "hrnet", "inception_v3", "inception_v4",
    "inception_resnet", "xception", "legacy_xception", "nfnet", "dm_nfnet", "nf_resnet",
    "nf_regnet", "cspresnet", "cspdarknet", "darknet", "vgg", "repvgg", "selecsls", "vovnet",
    "ese_vovnet", "gernet", "hardcorenas", "efficientformer_", "efficientformerv2", "coatnet",
    "maxvit", "poolformer_", "poolformerv2", "mobilevit_", "mobileone", "fastvit", "edgenext",
    "levit_conv", "repvit", "repghostnet", "hgnet_", "hgnetv2", "rdnet", "inception_next",
    "convmixer", "starnet", "halonet", "botnet", "lambda_resnet", "gcresnet", "nasnet",
    "pnasnet", "legacy_senet", "spnasnet", "semnasnet", "bat_resnext", "mambaout",
)

Result = dict[str, Any]


def install_shim(zoo: str) -> None:
    """Make ``torchvision`` and ``timm`` importable from ``zoo`` without the C extension."""
    sys.path.insert(0, zoo)
    sys.modules["torchvision._meta_registrations"] = types.ModuleType(
        "torchvision._meta_registrations")


def torchvision_zoo() -> list[tuple[str, Any, tuple[int, ...]]]:
    import torchvision.models as tvm

    out = []
    for sub, side in ((tvm, 224), (tvm.segmentation, 520), (tvm.detection, 320)):
        for name in tvm.list_models(module=sub):
            s = 299 if name == "inception_v3" else side
            kw = {"weights": None, "weights_backbone": None} if sub is not tvm else \
                {"weights": None}
            if name in ("inception_v3", "googlenet"):
                kw["init_weights"] = False
            out.append((name, lambda n=name, k=kw: tvm.get_model(n, **k), (3, s, s)))
    return out


def timm_zoo(sample: int, every: int = 0) -> list[tuple[str, Any, tuple[int, ...]]]:
    import timm

    names = sorted(timm.list_models())
    picked: list[str] = names[::every] if every else []
    for prefix in () if every else FAMILIES:
        hit = next((n for n in names if n.startswith(prefix) and n not in picked), None)
        if hit:
            picked.append(hit)
    out = []
    for name in picked[:sample]:
        cfg = timm.models.get_pretrained_cfg(name)
        shape = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
        out.append((name, lambda n=name: timm.create_model(n, pretrained=False), shape))
    return out


def build(factory: Any) -> tuple[torch.nn.Module, str]:
    """The model built on the meta device (no memory, no init cost); on the CPU when its
    constructor reads tensor values (``torch.linspace(...).tolist()``)."""
    try:
        with torch.device("meta"):
            return factory().eval(), "meta"
    except Exception:  # noqa: BLE001 - a zoo constructor that needs real tensors
        return factory().eval(), "cpu"


def classify(name: str, factory: Any, shape: tuple[int, ...]) -> Result:
    import cnnlab
    from cnnlab.common.errors import CnnlabError

    res: Result = {"model": name, "input": "x".join(map(str, shape))}
    try:
        model, res["built_on"] = build(factory)
    except Exception as e:  # noqa: BLE001
        return {**res, "status": "BUILD", "detail": f"{type(e).__name__}: {e}"[:200]}
    numel = sum(p.numel() for p in model.parameters())
    res["params_true"] = numel
    t = time.perf_counter()
    try:
        with contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115
            a = cnnlab.analyze(model, input=shape)
    except CnnlabError as e:
        msg = str(e)
        one = "\n" not in msg
        return {**res, "status": "ERROR" if one else "CRASH", "detail": msg[:300],
                "seconds": round(time.perf_counter() - t, 2)}
    except Exception as e:  # noqa: BLE001 - a bug in cnnlab: counted as CRASH
        import traceback

        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{f.filename}:{f.lineno}" for f in reversed(tb)
                      if "cnnlab" in f.filename), "")
        return {**res, "status": "CRASH", "detail": f"{type(e).__name__}: {e}"[:300],
                "where": where, "seconds": round(time.perf_counter() - t, 2)}
    res["seconds"] = round(time.perf_counter() - t, 2)
    unsupported = sorted({r.desc for r in a.layers if not r.supported})
    unknown = sorted({f"{r.kind}: {r.rf_note}"[:120] for r in a.layers
                      if r.kind != "input" and r.rf is None})
    res.update(params=a.total.params, rows=len(a.layers), unsupported=unsupported,
               unknown_rf=unknown)
    # parameters of modules that do not run in eval (GoogLeNet's auxiliary classifiers)
    # are listed by cnnlab as unused: accounted for when no module holding them ran
    idle = sum(v for _, v in a.unused) if a.unused and not _ran(
        model, shape, {p for p, _ in a.unused}) else 0
    res["params_idle"] = idle
    full = not unsupported and not unknown and a.total.params + idle == numel
    res["status"] = "FULL" if full else "PARTIAL"
    return res


def _ran(model: torch.nn.Module, shape: tuple[int, ...], paths: set[str]) -> bool:
    """Whether a module holding one of the parameters ``paths`` runs in the eval forward
    (on meta tensors: no data, no memory)."""
    owners = {p.rsplit(".", 1)[0] for p in paths}
    ran: set[str] = set()
    hooks = [m.register_forward_hook(lambda *_a, n=n: ran.add(n))
             for n, m in model.named_modules() if n in owners]
    state = {k: torch.empty_like(v, device="meta") for k, v in
             [*model.named_parameters(), *model.named_buffers()]}
    try:
        with torch.no_grad():
            torch.func.functional_call(model, state, (torch.empty(1, *shape, device="meta"),))
    except Exception:  # noqa: BLE001 - a forward that needs data: assume they ran
        return True
    finally:
        for h in hooks:
            h.remove()
    return bool(ran)


TRANSFORMERS = ("vit_", "swin_")  # torchvision's non-CNN classifiers: reported apart


def summary(zoo: str, results: list[Result]) -> str:
    counted = [r for r in results if r["status"] != "BUILD"]
    n = len(counted)
    parts = [f"{zoo}: {n} models"]
    for s in ("FULL", "PARTIAL", "ERROR", "CRASH"):
        k = sum(r["status"] == s for r in counted)
        parts.append(f"{s} {k} ({100 * k / n:.1f}%)" if n else f"{s} 0")
    skipped = len(results) - n
    return ", ".join(parts) + (f"; {skipped} not buildable here" if skipped else "")


def why(r: Result) -> str:
    if r["status"] in ("ERROR", "CRASH", "BUILD"):
        return (r.get("where", "") + " " + r.get("detail", "")).strip()
    if r["status"] == "PARTIAL":
        bits = [f"unsupported: {', '.join(r['unsupported'])}"] if r["unsupported"] else []
        bits += [f"rf unknown: {'; '.join(r['unknown_rf'])}"] if r["unknown_rf"] else []
        if r["params"] != r["params_true"]:
            bits.append(f"params {r['params']} != {r['params_true']}")
        return " | ".join(bits)
    return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", default="/tmp/zoo", help="folder with torchvision/ and timm/")
    ap.add_argument("--only", choices=("torchvision", "timm"))
    ap.add_argument("--limit", type=int, default=0, help="first N models of each zoo")
    ap.add_argument("--start", type=int, default=0, help="skip the first N models of each zoo")
    ap.add_argument("--model", action="append", default=[], help="only these names")
    ap.add_argument("--timm-sample", type=int, default=len(FAMILIES))
    ap.add_argument("--timm-every", type=int, default=0,
                    help="every N-th of all timm models (transformers too) instead of families")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    install_shim(args.zoo)
    zoos = {"torchvision": torchvision_zoo,
            "timm": lambda: timm_zoo(args.timm_sample, args.timm_every)}
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(), "torch": torch.__version__, "argv": sys.argv[1:], "zoos": {}}
    for zname, make in zoos.items():
        if args.only and zname != args.only:
            continue
        models = make()[args.start:]
        if args.model:
            models = [m for m in models if m[0] in args.model]
        if args.limit:
            models = models[:args.limit]
        results = []
        for name, factory, shape in models:
            r = classify(name, factory, shape)
            results.append(r)
            print(f"{zname:11} {name:40} {r['input']:11} {r['status']:7} "
                  f"{r.get('seconds', 0):6.1f}s  {why(r)[:300]}", flush=True)
        lines = [summary(zname, results)]
        if zname == "torchvision":
            cnn = [r for r in results if not r["model"].startswith(TRANSFORMERS)]
            lines = [summary("torchvision CNNs", cnn),
                     summary("torchvision transformers (ViT, Swin)",
                             [r for r in results if r not in cnn]), lines[0]]
        report["zoos"][zname] = {"summary": lines, "results": results}
    for z in report["zoos"].values():
        print("\n".join(z["summary"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
