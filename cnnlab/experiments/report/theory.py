"""The sheets' theory answers for the report (``cnnlab report --sheet huji|eth|sheet3|ttic|all``).

Per sheet one section: the analyzer's tables and step-by-step counts for the sheet's networks
(HUJI 1.1 and theory 4.1-4.3, problem sheet 3 1(c), ETH Problem 2 with its formulas in m, p,
K, n, C and exact ratios, TTIC Problems 1 and 3(a) in their symbols), ``cnnlab verify``'s
claims for the sheet (measured, PASS/FAIL) and the sheet's errata (``docs/errata.md``). Each
answer carries the command that reproduces it. Everything is computed when the report is
written; nothing is typed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.common.errors import CnnlabError

SHEET_TITLES = {
    "huji": "HUJI 67103 Assignment 1: answers",
    "eth": "ETH Deep Learning, exercise series 5: answers",
    "sheet3": "Deep Learning Problem Sheet 3: answers",
    "ttic": "TTIC 31230 CNN problems: answers",
    "all": "The four sheets: answers",
}
#: per sheet: the words that mark its claims in ``cnnlab verify``'s sources and its errata
#: sections' headings
MARKS = {"huji": ("HUJI",), "eth": ("ETH",), "sheet3": ("PS3", "Problem Sheet 3"),
         "ttic": ("TTIC",)}
#: docs/errata.md of the source tree this module is in (absent from an installed wheel)
ERRATA = next((p / "docs" / "errata.md" for p in Path(__file__).resolve().parents
               if (p / "docs" / "errata.md").is_file()), Path("docs") / "errata.md")


def _analysis(spec: str, input_: str | None = None, batch: int = 1,
              compare: bool = False) -> Any:
    from cnnlab.models.resolve import analyze

    return analyze(spec, input=input_, batch=batch, compare=compare)


def _steps(a: Any) -> str:
    from cnnlab.analysis.render import step_lines

    return "\n".join(line.strip() for line in step_lines(a) if line.strip())


def _cmd(spec: str, *flags: str) -> str:
    quoted = f"'{spec}'" if any(c in spec for c in " (){}*") else spec
    return " ".join(["cnnlab analyze", quoted, *flags])


# ------------------------------------------------------------------------ verify, errata


def claims(sheet: str) -> dict[str, Any] | None:
    """The ``cnnlab verify`` claims whose source names ``sheet``, measured now."""
    from cnnlab.ref import verify

    marks = MARKS[sheet]
    picked = [c for c in verify.CLAIMS if any(m in c.source for m in marks)]
    if not picked:
        return None
    rows = []
    for c in picked:
        [r] = [x for x in verify.run_claims([c.name]) if x.claim == c.text]
        measured = r.measured if isinstance(r.measured, str) else f"{r.measured:.4g}"
        rows.append([r.claim, r.source, measured, r.tolerance, r.status,
                     f"cnnlab verify --only {c.name}"])
    passed = sum(row[4] == "PASS" for row in rows)
    return {"question": "The sheet's claims, measured (cnnlab verify)",
            "paragraphs": [f"{passed} of {len(rows)} claims pass: each is computed with "
                           f"the NumPy reference operations (or torch autograd) and compared "
                           f"with the tolerance shown."],
            "table": {"caption": "", "header": ["claim", "source", "measured", "tolerance",
                                                "status", "reproduce"], "rows": rows},
            "command": "cnnlab verify"}


def _markdown_table(lines: list[str]) -> dict[str, Any]:
    cells = [[c.strip().replace("\\|", "|") for c in _split_row(x)] for x in lines]
    body = [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
    return {"caption": "", "header": cells[0], "rows": body}


def _split_row(line: str) -> list[str]:
    """A markdown table row's cells (``\\|`` is a literal bar inside a cell)."""
    parts, cur, i = [], "", 0
    text = line.strip().strip("|")
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 2] == "|":
            cur += "\\|"
            i += 2
            continue
        if text[i] == "|":
            parts.append(cur)
            cur = ""
        else:
            cur += text[i]
        i += 1
    return parts + [cur]


def _plain(text: str) -> str:
    """Markdown emphasis dropped (``*word*`` -> ``word``); code spans keep their backticks."""
    import re

    return re.sub(r"(?<![\w*])\*(\w[^*]*?)\*(?![\w*])", r"\1", text)


def errata(sheet: str, path: Path = ERRATA) -> list[dict[str, Any]]:
    """The sections of ``docs/errata.md`` whose heading names ``sheet``, as answer items
    (paragraphs and tables)."""
    if not path.is_file():
        return [{"question": "Errata", "paragraphs": [
            f"{path} is not there (an install without the docs): see docs/errata.md in the "
            f"source tree."]}]
    items = []
    for block in path.read_text(encoding="utf-8").split("\n## ")[1:]:
        head, _, body = block.partition("\n")
        if not any(m in head for m in MARKS[sheet]):
            continue
        paragraphs, table, buf = [], None, []
        for para in body.strip().split("\n\n"):
            lines = para.strip().splitlines()
            if lines and all(x.startswith("|") for x in lines):
                table = _markdown_table(lines)
            elif lines:
                buf.append(_plain(" ".join(x.strip() for x in lines)))
        paragraphs += buf
        item = {"question": f"Erratum: {head.strip()}", "paragraphs": paragraphs,
                "command": "docs/errata.md (each row names the test that pins it)"}
        if table:
            item["table"] = table
        items.append(item)
    return items


# ------------------------------------------------------------------------ the sheets


def _huji() -> list[dict[str, Any]]:
    base = _analysis("baseline")
    conv = _analysis("conv5x5x96", "3x32x32")
    fc = _analysis("fc4096", "256x4x4")
    n_img, n_cls = 10_000, 1000
    return [
        {"question": "Practical 1.1: the network's free parameters, step by step",
         "paragraphs": [f"{base.total.params:,} free parameters ({base.total.weights:,} "
                        f"weights and {base.total.biases:,} biases); ReLU and max-pooling have "
                        f"none."],
         "pre": _steps(base), "command": _cmd("baseline")},
        {"question": "Theory 4.1: a convolutional layer of 96 5x5 filters on an RGB image",
         "paragraphs": [f"Each filter has 5·5·3 = 75 weights and one bias: 96·(75 + 1) = "
                        f"{conv.total.params:,} parameters, whatever the image size (the "
                        f"weights are shared over positions; the analyzer's count for a "
                        f"32x32 image)."],
         "pre": _steps(conv), "command": _cmd("conv5x5x96", "--input 3x32x32")},
        {"question": "Theory 4.2: a fully connected layer from 4x4x256 to the same size",
         "paragraphs": [f"4·4·256 = 4,096 inputs to 4,096 outputs: 4,096² = 16,777,216 "
                        f"weights + 4,096 biases = {fc.total.params:,} parameters."],
         "pre": _steps(fc), "command": _cmd("fc4096", "--input 256x4x4")},
        {"question": "Theory 4.3: constraints from 10,000 images in 1,000 categories",
         "paragraphs": [
             f"Each image contributes one loss term; set as an equation, the softmax output "
             f"must equal the image's one-hot label, which is {n_cls:,} equations per image, "
             f"{n_img * n_cls:,} in all, of which {n_img * (n_cls - 1):,} are independent "
             f"(the {n_cls:,} outputs of a softmax always sum to 1). Read as one scalar "
             f"equation per loss term (the cross-entropy of the true class is 0), it is "
             f"{n_img:,}. Either way fewer than the baseline network's "
             f"{base.total.params:,} parameters would be needed to over-determine it: a "
             f"network with more parameters than constraints can fit the training set "
             f"exactly, which is why it can overfit."],
         "command": "arithmetic (no command): 10,000 · 1,000 and 10,000 · 999"},
    ]


def _eth() -> list[dict[str, Any]]:
    from cnnlab.analysis.render import compare_lines

    a = _analysis("conv5x5x16", "3x128x128", compare=True)
    return [{"question": "Problem 2: conv vs locally vs fully connected, 128x128x3, 5x5 "
                         "kernels",
             "paragraphs": [
                 "Full signal support means a valid convolution: n = m - p + 1 outputs per "
                 "side. 1: a fully connected layer with the CNN's n²K outputs has "
                 "n²K(3m² + 1) parameters; 2: a locally connected one (the same windows, "
                 "weights not shared) n²K(3p² + 1); the CNN has K(3p² + 1). 3: the ratios "
                 "do not depend on K (K = 16 below):"],
             "pre": "\n".join(x.strip() for x in compare_lines(a) if x.strip()),
             "command": _cmd("conv5x5x16", "--input 3x128x128 --compare")}]


def _sheet3() -> list[dict[str, Any]]:
    from cnnlab.analysis.render import table

    a = _analysis("sheet3-1c")
    return [{"question": "1(c): data shape and receptive field of each layer",
             "paragraphs": ["Shapes are batch x width x height x channels as the sheet "
                            "writes them; RF is the receptive field per side, jump the "
                            "distance between neighbouring units in input pixels."],
             "pre": table(a, "nhwc"), "command": _cmd("sheet3-1c", "--layout nhwc")}]


def _ttic() -> list[dict[str, Any]]:
    b, x, dk, n_in, n_out = 4, 16, 3, 3, 8
    conv = _analysis(f"conv{dk}x{dk}x{n_out}(padding=same)", f"{n_in}x{x}x{x}", batch=b)
    n, nb, depth = 256, 64, 5
    blocks = _analysis(f"res{{fc{nb} relu fc{n} relu}}*{depth - 1}", f"{n}")
    plain = _analysis(f"fc{n}*{depth - 1}", f"{n}")
    macs = conv.layer("conv1").macs
    return [
        {"question": "Problem 1: multiplies of a convolution on a batch",
         "paragraphs": [
             f"B·X·Y·ΔX·ΔY·N_out·N_in: every output value [b, x, y, n_out] sums ΔX·ΔY·N_in "
             f"products, and there are B·X·Y·N_out of them (X, Y the output positions). For "
             f"B = {b}, X = Y = {x}, ΔX = ΔY = {dk}, N_in = {n_in}, N_out = {n_out}: "
             f"{b}·{x}·{x}·{dk}·{dk}·{n_out}·{n_in} = {b * x * x * dk * dk * n_out * n_in:,}; "
             f"the analyzer counts {macs:,}."],
         "command": _cmd(f"conv{dk}x{dk}x{n_out}(padding=same)",
                         f"--input {n_in}x{x}x{x} --batch {b}")},
        {"question": "Problem 3(a): multiplications of the bottleneck residual MLP",
         "paragraphs": [
             f"Each of the L - 1 residual blocks multiplies N·N_bottle (down) and "
             f"N_bottle·N (up): 2·N·N_bottle·(L - 1), against N²·(L - 1) for a plain MLP of "
             f"the same depth, so fewer exactly when N_bottle < N/2. For N = {n}, N_bottle = "
             f"{nb}, L = {depth}: 2·{n}·{nb}·{depth - 1} = {2 * n * nb * (depth - 1):,} "
             f"(analyzer: {blocks.total.macs:,}) against {n}²·{depth - 1} = "
             f"{n * n * (depth - 1):,} (analyzer: {plain.total.macs:,})."],
         "command": _cmd(f"res{{fc{nb} relu fc{n} relu}}*{depth - 1}", f"--input {n}")},
    ]


BUILDERS = {"huji": _huji, "eth": _eth, "sheet3": _sheet3, "ttic": _ttic}
SHEET_NAMES = {"huji": "HUJI 67103 Assignment 1", "eth": "ETH Deep Learning, series 5",
               "sheet3": "Deep Learning Problem Sheet 3", "ttic": "TTIC 31230 CNN problems"}


def answers(sheet: str) -> list[dict[str, Any]]:
    """One theory section per sheet (``all``: the four): sheet, title, items."""
    if sheet != "all" and sheet not in BUILDERS:
        raise CnnlabError(f"--sheet {sheet}: unknown; choose one of "
                          f"{', '.join([*BUILDERS, 'all'])}")
    out = []
    for name in (list(BUILDERS) if sheet == "all" else [sheet]):
        items = BUILDERS[name]()
        if (c := claims(name)) is not None:
            items.append(c)
        items += errata(name)
        out.append({"sheet": SHEET_NAMES[name], "title": "theory answers", "items": items})
    return out
