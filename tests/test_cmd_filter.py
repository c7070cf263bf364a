"""``cnnlab filter``: formats, kernels, paddings, printed output and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.ref import filters as FL

ROWS = [3, 4, 8, 10, 22, 45, 50, 65]


@pytest.fixture
def sheet_csv(tmp_path):
    p = tmp_path / "sheet.csv"
    np.savetxt(p, np.tile(ROWS, (10, 1)), delimiter=",", fmt="%d")
    return p


def printed(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return np.array([[float(v) for v in line.split(",")] for line in out])


def test_prints_sheet3_2d_magnitude(sheet_csv, capsys):
    assert main(["filter", str(sheet_csv), "--kernel", "prewitt-magnitude",
                 "--padding", "zero"]) == 0
    m = printed(capsys)
    assert m.shape == (10, 8)
    assert m[1].tolist() == [12, 15, 18, 42, 105, 84, 60, 150]


@pytest.mark.parametrize("padding,row", [
    ("reflect", [0, 15, 18, 42, 105, 84, 60, 0]),
    ("symmetric", [3, 15, 18, 42, 105, 84, 60, 45]),
    ("replicate", [3, 15, 18, 42, 105, 84, 60, 45]),
    ("circular", [3 * (4 - 65), 15, 18, 42, 105, 84, 60, 3 * (3 - 50)]),
])
def test_fill_modes_on_sheet_image(sheet_csv, capsys, padding, row):
    assert main(["filter", str(sheet_csv), "--kernel", "prewitt-x", "--padding", padding]) == 0
    assert printed(capsys)[1].tolist() == row


def test_inline_kernel_op_and_size(sheet_csv, capsys):
    inline = "[[1,0,-1],[1,0,-1],[1,0,-1]]"
    assert main(["filter", str(sheet_csv), "--kernel", inline, "--padding", "valid"]) == 0
    valid = printed(capsys)
    assert valid.shape == (8, 6)
    assert valid[0].tolist() == [15, 18, 42, 105, 84, 60]
    assert main(["filter", str(sheet_csv), "--kernel", inline, "--padding", "zero",
                 "--op", "corr", "--size", "full"]) == 0
    full = printed(capsys)
    assert full.shape == (12, 10)
    np.testing.assert_array_equal(
        full, FL.filter2d(np.tile(ROWS, (10, 1)), FL.PREWITT_X, "zero", "full", "corr"))


def test_npy_and_csv_outputs_round_trip(tmp_path, sheet_csv, capsys):
    out_npy, out_csv = tmp_path / "g.npy", tmp_path / "g.csv"
    assert main(["filter", str(sheet_csv), "--kernel", "gaussian", "--ksize", "3", "--sigma",
                 "1", "--padding", "replicate", "--out", str(out_npy)]) == 0
    assert main(["filter", str(out_npy), "--kernel", "sobel-y", "--padding", "reflect",
                 "--out", str(out_csv)]) == 0
    assert "wrote" in capsys.readouterr().err
    img = np.tile(np.array(ROWS, float), (10, 1))
    blurred = FL.filter2d(img, FL.gaussian(3, 1.0), "replicate")
    np.testing.assert_allclose(np.load(out_npy), blurred, atol=1e-12)
    np.testing.assert_allclose(np.loadtxt(out_csv, delimiter=","),
                               FL.filter2d(blurred, FL.SOBEL_Y, "reflect"), rtol=1e-9)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_png_in_and_out(tmp_path, capsys):
    grey = (np.arange(64).reshape(8, 8) * 3).astype(np.uint8)
    src = tmp_path / "in.png"
    Image.fromarray(grey).save(src)
    dst = tmp_path / "out.png"
    assert main(["filter", str(src), "--kernel", "box", "--padding", "symmetric",
                 "--out", str(dst)]) == 0
    got = np.asarray(Image.open(dst))
    want = np.clip(np.rint(FL.filter2d(grey.astype(float), FL.box(3), "symmetric")), 0, 255)
    np.testing.assert_array_equal(got, want)
    rgb = np.stack([grey, grey[::-1], grey.T], axis=-1)
    Image.fromarray(rgb).save(src)
    assert main(["filter", str(src), "--kernel", "laplacian", "--padding", "circular",
                 "--out", str(dst), "--stretch"]) == 0
    got = np.asarray(Image.open(dst))
    assert got.shape == (8, 8, 3) and got.min() == 0 and got.max() == 255
    assert main(["filter", str(src), "--kernel", "sobel-x", "--padding", "zero"]) == 0
    assert capsys.readouterr().out.count("# channel") == 3


@pytest.mark.parametrize("args,message", [
    (["--kernel", "canny", "--padding", "zero"], "unknown name"),
    (["--kernel", "[[1,2],[3]]", "--padding", "zero"], "rows have different lengths"),
    (["--kernel", "[[1,2],", "--padding", "zero"], "not a valid matrix"),
    (["--kernel", "[[\"a\"]]", "--padding", "zero"], "rows of numbers"),
    (["--kernel", "box", "--padding", "mirror"], "ambiguous"),
    (["--kernel", "box", "--padding", "bogus"], "unknown padding"),
    (["--kernel", "box", "--padding", "valid", "--size", "full"], "disagree"),
    (["--kernel", "box", "--out", "x.txt"], "unknown format"),
    (["--kernel", "box", "--out", "no/such/dir/x.csv"], "does not exist"),
    (["--kernel", "[[1]*20]", "--padding", "zero"], "not a valid matrix"),
])
def test_bad_arguments_exit_2_with_one_line(sheet_csv, capsys, args, message):
    assert main(["filter", str(sheet_csv), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error:") and message in err and "\n" not in err


def test_bad_inputs(tmp_path, capsys):
    cases = {
        "ragged.csv": ("1,2\n3\n", "cannot read it as CSV"),
        "words.csv": ("a,b\n", "cannot read it as CSV"),
        "x.bmp": ("", "unknown format"),
        "broken.png": ("not a png", "cannot read it as PNG"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["filter", str(tmp_path / name), "--kernel", "box"]) == 2
        assert message in capsys.readouterr().err
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0]]))
    for name, message in (("cube.npy", "expected a non-empty 2D matrix"),
                          ("nan.npy", "NaN"), ("missing.csv", "no such file")):
        assert main(["filter", str(tmp_path / name), "--kernel", "box"]) == 2
        assert message in capsys.readouterr().err
    small = tmp_path / "small.csv"
    small.write_text("1,2\n3,4\n")
    assert main(["filter", str(small), "--kernel", "gaussian", "--padding", "valid"]) == 2
    assert "larger than the input" in capsys.readouterr().err


def test_error_keeps_an_existing_output(tmp_path, sheet_csv, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    assert main(["filter", str(tmp_path / "missing.csv"), "--kernel", "box",
                 "--out", str(out)]) == 2
    assert main(["filter", str(sheet_csv), "--kernel", "[[1],[2,3]]", "--out", str(out)]) == 2
    colour = tmp_path / "c.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(colour)
    assert main(["filter", str(colour), "--kernel", "box", "--out", str(out)]) == 2
    assert "cannot be a CSV" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "keep.csv", "sheet.csv"]
