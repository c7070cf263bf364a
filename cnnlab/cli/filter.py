"""``cnnlab filter``: apply a named or inline kernel to a CSV/NPY matrix or a PNG image.

    cnnlab filter image.csv --kernel prewitt-magnitude --padding reflect
    cnnlab filter photo.png --kernel gaussian --ksize 7 --padding replicate --out blur.png
    cnnlab filter m.npy --kernel "[[1,0,-1],[1,0,-1],[1,0,-1]]" --padding zero --op corr

The default ``--op conv`` is true convolution (kernel flipped), as the sheets compute it
(Problem Sheet 3, 2(d)); ``--op corr`` is what frameworks call convolution. ``--padding``
takes a fill (zero, reflect, symmetric, replicate, circular) or a size mode (same, valid,
full: zero fill); ``--size`` sets the size mode separately. The output format follows the
``--out`` extension (.csv, .npy, .png); without ``--out`` the numbers are printed.
"""

from __future__ import annotations

import argparse
import sys

from cnnlab.common.errors import CnnlabError
from cnnlab.ref.images import (
    SIZE_MODES,
    check_out,
    format_matrix,
    load_matrix,
    parse_kernel,
    save,
)


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a .csv or .npy matrix, or a .png image (grey or RGB)")
    p.add_argument("--kernel", required=True,
                   help="prewitt-x, prewitt-y, prewitt-magnitude, sobel-x, sobel-y, "
                   "sobel-magnitude, gaussian, laplacian, box, or an inline matrix such as "
                   "'[[1,0,-1],[1,0,-1],[1,0,-1]]'")
    p.add_argument("--padding", default="zero",
                   help="zero, reflect, symmetric, replicate, circular (output size same), or "
                   "same, valid, full (zero fill); default zero")
    p.add_argument("--size", choices=SIZE_MODES, default=None,
                   help="output size: same (default), valid (n-k+1) or full (n+k-1)")
    p.add_argument("--op", choices=["conv", "corr"], default="conv",
                   help="conv: true convolution, kernel flipped (default, as the sheets); "
                   "corr: cross-correlation (framework 'convolution')")
    p.add_argument("--ksize", type=int, default=None, help="size of gaussian/box (5 / 3)")
    p.add_argument("--sigma", type=float, default=None, help="gaussian sigma (ksize/6)")
    p.add_argument("--stretch", action="store_true",
                   help="PNG output: map min..max to 0..255 instead of clipping to 0..255")
    p.add_argument("--out", default=None, help="write here (.csv, .npy or .png) instead of "
                   "printing; an existing file is replaced only after success")


def run(args: argparse.Namespace) -> int:
    from cnnlab.ref import filters
    from cnnlab.ref.padding import fill_mode

    pad_arg = args.padding.strip().lower()
    if pad_arg in SIZE_MODES:
        if args.size and args.size != pad_arg:
            raise CnnlabError(f"--padding {pad_arg} and --size {args.size} disagree; give a "
                              "fill with --padding (zero, reflect...) and the size with --size")
        fill, size = "zero", pad_arg
    else:
        fill, size = fill_mode(pad_arg), args.size or "same"
    if args.out:
        check_out(args.out)
    k = parse_kernel(args.kernel, args.ksize, args.sigma)
    image = load_matrix(args.input)
    if isinstance(k, tuple):
        result = filters.gradient_magnitude(image, k[0], k[1], fill, size, args.op).magnitude
    else:
        if size == "valid" and (k.shape[0] > image.shape[0] or k.shape[1] > image.shape[1]):
            raise CnnlabError(f"kernel {k.shape[0]}x{k.shape[1]} is larger than the input "
                              f"{image.shape[0]}x{image.shape[1]}; use --size same or full")
        result = filters.filter2d(image, k, fill, size, args.op)
    if args.out:
        save(result, args.out, args.stretch)
        print(f"wrote {args.out} ({'x'.join(map(str, result.shape))})", file=sys.stderr)
    else:
        print(format_matrix(result))
    return 0
