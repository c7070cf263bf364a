"""Keras models -> IR: every ``keras.applications`` model (built with ``weights=None``) and
hand-written models of every layer kind the importer maps.

Oracles: Keras itself. The parameter total equals ``count_params()`` less the non-trainable
statistics (batch-norm moving mean/variance, ``Normalization``'s mean/variance/count: buffers in
cnnlab as in torch), every layer's output shape equals Keras' own (channels moved first), and
the receptive field of a row equals the gradient footprint of one of its units through the
Keras model itself (PyTorch backend).
"""

from __future__ import annotations

import math
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from cnnlab.analysis.analyze import analyze_graph  # noqa: E402
from cnnlab.ir.keras_import import from_keras  # noqa: E402
from cnnlab.ir.keras_layers import to_ir_shape  # noqa: E402
from cnnlab.ir.shapes import infer_shapes  # noqa: E402

L = keras.layers

HEAVY = ("ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge", "ConvNeXtSmall", "EfficientNetB4",
         "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2L",
         "EfficientNetV2M", "EfficientNetV2S", "ResNet101", "ResNet101V2", "ResNet152",
         "ResNet152V2", "DenseNet169", "DenseNet201", "VGG16", "VGG19", "InceptionResNetV2",
         "NASNetLarge", "Xception", "InceptionV3")
APPS = sorted(n for n in dir(keras.applications) if n[0].isupper())


def _non_trainable_stats(model) -> int:
    return sum(math.prod(w.shape) for w in model.non_trainable_weights)


def check_model(model, input_shape=None):
    """Import ``model``; assert params and every layer's shape against Keras; return the
    analysis and the layer -> IR value map."""
    graph, shape, outs = from_keras(model, input_shape)
    a = analyze_graph(graph, shape)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert a.total.params == trainable
    assert a.total.params == model.count_params() - _non_trainable_stats(model)
    assert not a.unsupported, a.unsupported
    shapes = infer_shapes(graph, shape)
    checked = 0
    for layer in _all_layers(model):
        if layer.name in outs and not isinstance(layer, keras.Model):
            want = to_ir_shape(tuple(layer.output.shape[1:]))
            assert shapes[outs[layer.name]] == want, layer.name
            checked += 1
    assert checked >= len([la for la in model.layers if type(la).__name__ != "InputLayer"]) \
        - sum(1 for la in model.layers if la.name.endswith(("_pad", "_flatten")))
    return a, outs


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        yield layer


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in APPS])
def test_keras_applications(name: str) -> None:
    kwargs = {"input_shape": (96, 96, 3)} if name.startswith("MobileNetV3") else {}
    try:
        model = getattr(keras.applications, name)(weights=None, **kwargs)
    except ValueError as e:  # NASNet: "not available with the torch backend"
        pytest.skip(f"keras cannot build {name} on this backend: {e}")
    a, _ = check_model(model)
    assert all(r.rf is not None or r.rf_note for r in a.layers)
    del model


def test_keras_functional_every_layer_kind() -> None:
    x = keras.Input((32, 32, 3))
    y = L.Rescaling(1 / 127.5, offset=-1)(x)
    y = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(y)
    a = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(y)
    b = L.SeparableConv2D(16, 3, padding="same", use_bias=False, name="sep")(y)
    y = L.Concatenate(name="cat")([a, b])
    y = L.BatchNormalization(scale=False, name="bn")(y)
    y = L.PReLU(shared_axes=[1, 2], name="prelu")(y)
    y = L.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(y)
    y = L.Cropping2D(((0, 1), (1, 1)), name="crop")(y)
    y = L.MaxPooling2D(3, strides=2, padding="same", name="mp")(y)
    y = L.AveragePooling2D(2, padding="same", name="ap")(y)
    y = L.UpSampling2D(2, interpolation="bilinear", name="up")(y)
    t = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="tsame")(y)
    t = L.Conv2DTranspose(8, 2, strides=3, padding="valid", name="tvalid")(t)
    y = L.Conv2D(8, 1, name="proj")(y)
    m = L.Multiply(name="mul")([y, L.GlobalAveragePooling2D(keepdims=True, name="gap")(y)])
    s = L.Subtract(name="sub")([m, y])
    y = L.Average(name="avg")([m, s, y])
    y = L.Maximum(name="max")([y, m])
    y = L.Dense(12, name="dense_nd")(y)  # on every position: a 1x1 conv
    y = L.LayerNormalization(name="ln")(y)
    y = L.GroupNormalization(groups=4, name="gn")(y)
    y = L.LeakyReLU(name="lrelu")(y)
    y = L.Activation("hard_swish", name="hsw")(y)
    y = L.Permute((2, 1, 3), name="perm")(y)
    y = L.Reshape((-1, 12), name="rs")(y)
    y = L.Conv1D(6, 3, padding="causal", dilation_rate=2, name="causal")(y)
    y = L.GlobalMaxPooling1D(name="gmp")(y)
    y = L.Dropout(0.3, name="drop")(y)
    y = L.Dense(5, activation="softmax", name="out")(y)
    model = keras.Model(x, [y, t])
    a, outs = check_model(model)
    assert a.layer("c1").desc == "conv 3x3x8 s2x2 same"
    assert a.layer("c1.relu").kind == "act"
    assert a.layer("dense_nd").desc.startswith("conv 1x1x12")
    assert a.layer("bn").params == 32  # beta of 16 + 16 channels only (scale=False)


def test_keras_sequential_1d_3d_and_ops() -> None:
    seq = keras.Sequential([keras.Input((16, 8, 8, 2)), L.Conv3D(4, 3, padding="same"),
                            L.MaxPooling3D(2), L.UpSampling3D(2), L.ZeroPadding3D(1),
                            L.Conv3D(2, 3), L.Flatten(), L.Dense(4)])
    check_model(seq)
    x = keras.Input((20,), dtype="int32")
    y = L.Embedding(50, 8, name="emb")(x)
    y = L.Conv1D(4, 5, name="c")(y)
    y = L.ReLU(max_value=6.0, name="r6")(y)
    y = y * 0.5 + 1.0  # keras.ops on symbolic tensors
    y = L.GlobalAveragePooling1D(name="g")(y)
    check_model(keras.Model(x, y))


def test_keras_unbuilt_sequential_needs_an_input() -> None:
    from cnnlab.common.errors import CnnlabError

    seq = keras.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])
    with pytest.raises(CnnlabError, match="input"):
        from_keras(seq)
    graph, shape, _ = from_keras(seq, (1, 8, 8))
    assert analyze_graph(graph, shape).total.params == 4 * 9 + 4 + 4 * 36 * 2 + 2


def _footprint(grad: torch.Tensor) -> list[int]:
    """Extent (in pixels) of the nonzero gradient along each spatial axis (NHWC input)."""
    g = grad.abs().sum(dim=(0, 3))
    out = []
    for ax in range(2):
        nz = torch.nonzero(g.sum(dim=1 - ax)).flatten()
        out.append(int(nz[-1] - nz[0] + 1))
    return out


@pytest.mark.parametrize("layers", [
    ["conv1_relu", "conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu"],
])
def test_keras_rf_is_gradient_footprint(layers: list[str]) -> None:
    """MobileNet (alpha 0.25) at 128x128 in float64: the centre unit's gradient footprint."""
    keras.config.set_floatx("float64")
    try:
        model = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(128, 128, 3),
                                             include_top=False)
    finally:
        keras.config.set_floatx("float32")
    a, outs = check_model(model)
    torch.manual_seed(0)
    x = torch.rand(1, 128, 128, 3, dtype=torch.float64, requires_grad=True)
    for name in layers:
        sub = keras.Model(model.input, model.get_layer(name).output)
        y = sub(x)
        h, w = y.shape[1] // 2, y.shape[2] // 2
        (g,) = torch.autograd.grad(y[0, h, w, :].sum(), x)
        row = a.layer(outs[name])
        assert _footprint(g) == list(row.rf), name


def test_cnnlab_analyze_accepts_a_live_keras_model() -> None:
    import cnnlab

    seq = keras.Sequential([keras.Input((12, 12, 2)), L.Conv2D(3, 3, activation="relu"),
                            L.GlobalAveragePooling2D(), L.Dense(2)])
    a = cnnlab.analyze(seq)
    assert a.total.params == seq.count_params() == 2 * 9 * 3 + 3 + 3 * 2 + 2
    assert a.input_shape == (2, 12, 12)
    conv = seq.layers[0].name
    assert a.layer(conv).params == 57 and a.layer(f"{conv}.relu").rf == (3, 3)
