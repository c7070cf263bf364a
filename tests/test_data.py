"""Data layer: IDX files, SHA-256 checks, lookup order, download, derived sets, augmentation."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from trainutil import STEMS, write_tiny

from cnnlab.common.errors import CnnlabError
from cnnlab.common.plugins import load_plugins
from cnnlab.data import datasets as data
from cnnlab.data.augment import Augment, augment_upfront
from cnnlab.data.derived import make_pairs, pairs, stratified_indices, subset, validation_split

REAL_DATA = os.environ.get("CNNLAB_DATA")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    data.write_idx(path, arr)
    if gz:
        assert gzip.open(path).read(4) == bytes([0, 0, 8, 3])
    back = data.read_idx(path)
    assert back.shape == (2, 3, 4) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)


def test_idx_truncated_and_bad_magic(tmp_path):
    path = tmp_path / "t.idx"
    data.write_idx(path, np.zeros((4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CnnlabError, match="truncated"):
        data.read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(CnnlabError, match="magic"):
        data.read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_load_tiny_as_float_tensors(tmp_path, gz):
    write_tiny(tmp_path / "d", 30, 20, gz=gz)
    ds = data.load_idx_dataset("tiny", tmp_path / "d", download=False)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_train.dtype == torch.float32
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    assert ds.y_test.shape == (20,) and ds.y_test.dtype == torch.int64
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10


def test_sha_mismatch_is_an_error(tmp_path):
    # files named like MNIST's but with other content must be refused, gz or raw
    write_tiny(tmp_path / "mnist", 10, 10)
    with pytest.raises(CnnlabError, match="SHA-256 mismatch"):
        data.load("mnist", data_dir=tmp_path)
    write_tiny(tmp_path / "raw", 10, 10, gz=False)
    with pytest.raises(CnnlabError, match="SHA-256 mismatch"):
        data.load("mnist", data_dir=tmp_path / "raw")


def test_lookup_order(tmp_path, monkeypatch):
    for d in ("flag", "env/tiny", "cache/cnnlab/tiny"):
        write_tiny(tmp_path / d, 10, 10)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert data.locate("tiny", tmp_path / "flag", download=False) == tmp_path / "flag"
    assert data.locate("tiny", download=False) == tmp_path / "env" / "tiny"
    monkeypatch.delenv("CNNLAB_DATA")
    assert data.locate("tiny", download=False) == tmp_path / "cache" / "cnnlab" / "tiny"
    dirs = data.search_dirs("tiny")
    assert dirs[-1] == Path("/usr/share/datasets/tiny")


def test_missing_data_message_names_files_and_place(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(CnnlabError) as e:
        data.load("mnist")
    msg = str(e.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "cache" / "cnnlab" / "mnist") in msg
    assert "CNNLAB_DATA" in msg and "download failed" in msg


def test_data_dir_missing_files_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="lacks mnist file"):
        data.load("mnist", data_dir=tmp_path / "empty")


def test_download_verifies_and_fills_cache(tmp_path, monkeypatch):
    src = write_tiny(tmp_path / "mirror", 10, 10)
    hashes = {}
    for stem in STEMS:
        raw = gzip.open(src / (stem + ".gz")).read()
        import hashlib

        hashes[stem] = (data.sha256(src / (stem + ".gz")), hashlib.sha256(raw).hexdigest())
    monkeypatch.setitem(data.MIRRORS, "tiny", (src.as_uri() + "/",))
    monkeypatch.setitem(data.HASHES, "tiny", hashes)
    folder = data.locate("tiny")
    assert folder == tmp_path / "cache" / "cnnlab" / "tiny"
    assert sorted(os.listdir(folder)) == sorted(s + ".gz" for s in STEMS)
    # a mirror serving a corrupt file: the download is refused and nothing is cached
    bad = dict(hashes, **{STEMS[0]: ("0" * 64, "0" * 64)})
    monkeypatch.setitem(data.HASHES, "tiny", bad)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    with pytest.raises(CnnlabError, match="download failed.*SHA-256 mismatch"):
        data.locate("tiny")
    assert not (tmp_path / "cache2" / "cnnlab" / "tiny" / (STEMS[0] + ".gz")).exists()


def test_registry_and_plugins(tmp_path, monkeypatch):
    assert {"mnist", "fashion-mnist", "mnist-pairs-sum", "mnist-pairs-digits"} <= set(
        data.dataset_names())
    with pytest.raises(CnnlabError, match="unknown dataset"):
        data.load("nope")
    load_plugins(("cnnlab.no_such_plugin_module",))  # absent plugin: ignored
    # a plugin that exists but is broken must not be silently ignored
    (tmp_path / "cnnlab_broken_plugin.py").write_text("import cnnlab_surely_missing_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        load_plugins(("cnnlab_broken_plugin",))


def test_stratified_subset_counts():
    y = torch.arange(1000) % 10
    idx = stratified_indices(y, 250, seed=3)
    assert len(idx) == 250 and len(set(idx.tolist())) == 250
    assert torch.bincount(y[idx], minlength=10).tolist() == [25] * 10
    # uneven classes: proportional with largest remainders, exact total
    y2 = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    counts = torch.bincount(y2[stratified_indices(y2, 11)], minlength=3).tolist()
    assert sum(counts) == 11 and counts == [8, 2, 1]
    assert torch.equal(stratified_indices(y, 50, 1), stratified_indices(y, 50, 1))
    with pytest.raises(CnnlabError):
        stratified_indices(y, 0)


def _toy(n=100, size=28):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.arange(n) % 10
    return data.Dataset("toy", x, y, x[:40].clone(), y[:40].clone(), 10)


def test_subset_and_validation_split():
    ds = _toy()
    sub = subset(ds, 20)
    assert sub.x_train.shape[0] == 20 and sub.x_test.shape[0] == 40
    val = validation_split(ds, 30)
    assert val.x_train.shape[0] == 70 and val.x_test.shape[0] == 30
    rows = {tuple(r.flatten()[:5].tolist()) for r in val.x_train}
    assert not rows & {tuple(r.flatten()[:5].tolist()) for r in val.x_test}
    assert val.info["eval_split"] == "validation"


def test_pairs_labels_and_layout():
    ds = _toy(50)
    x, y = make_pairs(ds.x_train, ds.y_train, seed=5, layout="h")
    assert x.shape == (50, 1, 28, 56) and y.shape == (50, 2)
    for i in range(50):
        assert torch.equal(x[i, :, :, :28], ds.x_train[i]) and y[i, 0] == ds.y_train[i]
        j = [k for k in range(50) if torch.equal(ds.x_train[k], x[i, :, :, 28:])][0]
        assert y[i, 1] == ds.y_train[j]
    xv, _ = make_pairs(ds.x_train, ds.y_train, seed=5, layout="v")
    assert xv.shape == (50, 1, 56, 28)
    assert torch.equal(make_pairs(ds.x_train, ds.y_train, 5)[1], y)
    y = make_pairs(ds.x_train, ds.y_train, seed=0)[1]
    s = pairs(ds, "sum")
    assert s.num_classes == 19 and torch.equal(s.y_train, y.sum(1)) and s.heads == 1
    d = pairs(ds, "digits")
    assert d.heads == 2 and d.score == "sum" and torch.equal(d.y_train, y)


def test_augment_shapes_determinism_and_shift():
    x = _toy(16).x_train
    aug = Augment.parse("shift=2,rotate=10,noise=0.05")
    a1 = aug(x, torch.Generator().manual_seed(1))
    a2 = aug(x, torch.Generator().manual_seed(1))
    a3 = aug(x, torch.Generator().manual_seed(2))
    assert a1.shape == x.shape and torch.equal(a1, a2) and not torch.equal(a1, a3)
    # pure shifts move whole pixels: every output row/col is an input row/col or empty
    shifted = Augment(shift=3)(x, torch.Generator().manual_seed(0))
    for i in range(4):
        found = False
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                ref = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
                ref[:, max(0, dy):28 - max(0, -dy), max(0, dx):28 - max(0, -dx)] = src
                found |= torch.allclose(shifted[i], ref, atol=1e-5)
        assert found
    assert torch.equal(Augment.parse("")(x, torch.Generator()), x)
    with pytest.raises(CnnlabError):
        Augment.parse("spin=3")


def test_augment_upfront_enlarges_training_set():
    ds = _toy(20)
    big = augment_upfront(ds, Augment(shift=2), copies=2, seed=0)
    assert big.x_train.shape[0] == 60 and torch.equal(big.x_train[:20], ds.x_train)
    assert torch.equal(big.y_train[20:40], ds.y_train)
    assert not torch.equal(big.x_train[20:40], ds.x_train)


def test_real_mnist_when_available():
    if not REAL_DATA or not (Path(REAL_DATA) / "mnist").is_dir():
        pytest.skip("set CNNLAB_DATA to a folder holding mnist/ to test the real files")
    ds = data.load("mnist", data_dir=Path(REAL_DATA) / "mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.y_test).sum() == 10000 and int(ds.y_train.max()) == 9


def test_available_says_whether_the_files_are_here(tmp_path):
    assert not data.available("mnist", data_dir=tmp_path / "empty")
    write_tiny(tmp_path / "mnist")
    assert data.available("mnist", data_dir=tmp_path / "mnist")
