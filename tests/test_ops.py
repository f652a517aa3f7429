"""Known answers on tiny arrays, argument errors, and properties of conv2d / pool2d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convcli import ParameterError, ShapeError, conv2d, pool2d
from convcli.ops import activate, pad2d
from convcli.ops.conv import separable_factors
from convcli.shapes import conv_geometry, pool_geometry

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)
METHODS_2D = ["direct", "separable", "fft", "gemm", "opencv"]


# --------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_kernel_returns_input(pad_mode: str, dtype: type) -> None:
    x = np.random.default_rng(0).random((3, 6, 7)).astype(dtype)
    ident = np.zeros((3, 3))
    ident[1, 1] = 1
    y = conv2d(x, ident, pad_mode=pad_mode)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("method", METHODS_2D)
def test_sobel_x_on_vertical_step_edge(method: str) -> None:
    x = np.zeros((5, 6), np.float32)
    x[:, 3:] = 1.0  # dark left, bright right
    y = conv2d(x, SOBEL_X, padding="same", pad_mode="replicate", method=method)
    expected = np.zeros((5, 6), np.float32)
    expected[:, 2:4] = 4.0  # the two columns that straddle the edge
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_flip_turns_a_rising_edge_negative() -> None:
    x = np.zeros((3, 4), np.float32)
    x[:, 2:] = 1
    y = conv2d(x, SOBEL_X, padding="valid", flip=True)
    np.testing.assert_array_equal(y, [[-4, -4]])


def test_hand_worked_strided_valid_conv() -> None:
    x = np.arange(25, dtype=np.float32).reshape(5, 5)
    y = conv2d(x, np.ones((3, 3)), padding="valid", stride=2)
    # window sums centred at (1,1), (1,3), (3,1), (3,3): 9 * centre value
    np.testing.assert_array_equal(y, 9 * np.array([[6, 8], [16, 18]], np.float32))


def test_dilation_spreads_the_taps() -> None:
    x = np.arange(25, dtype=np.float32).reshape(5, 5)
    k = np.array([[1, 0], [0, 1]], np.float32)  # top-left + bottom-right
    y = conv2d(x, k, padding="valid", dilation=2)
    # taps at (r, c) and (r+2, c+2)
    np.testing.assert_array_equal(y, x[:3, :3] + x[2:, 2:])


def test_same_with_even_kernel_puts_extra_pixel_bottom_right() -> None:
    x = np.zeros((4, 4), np.float32)
    x[0, 0] = 1
    y = conv2d(x, np.ones((2, 2)), padding="same", pad_mode="zeros")
    # padding (0, 1, 0, 1): output (0,0) sees x[0:2, 0:2]
    assert y.shape == (4, 4) and y[0, 0] == 1 and y.sum() == 1


def test_strided_same_is_ceil_of_input_over_stride() -> None:
    y = conv2d(np.ones((1, 7, 8)), np.ones((4, 4)), stride=3, padding="same")
    assert y.shape == (1, 3, 3)


def test_full_padding_grows_the_output() -> None:
    y = conv2d(np.ones((4, 5)), np.ones((3, 3)), padding="full", pad_mode="zeros")
    assert y.shape == (6, 7)
    assert y[0, 0] == 1 and y[2, 2] == 9


def test_bank_is_kernel_major() -> None:
    x = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 10.0)]).astype(np.float32)
    bank = np.stack([np.ones((1, 1)), 2 * np.ones((1, 1))])
    y = conv2d(x, bank)
    assert [float(m[0, 0]) for m in y] == [1, 10, 2, 20]


def test_layer_sums_over_input_channels_and_groups() -> None:
    x = np.stack([np.full((2, 2), v) for v in (1.0, 2.0, 3.0, 4.0)]).astype(np.float32)
    w = np.ones((2, 4, 1, 1))
    w[1] *= -1
    assert conv2d(x, w)[:, 0, 0].tolist() == [10, -10]
    wg = np.ones((2, 2, 1, 1))  # groups=2: output 0 sees channels 0-1, output 1 sees 2-3
    assert conv2d(x, wg, groups=2)[:, 0, 0].tolist() == [3, 7]


def test_bias_then_activation() -> None:
    x = np.zeros((2, 2, 2), np.float32)
    y = conv2d(x, np.ones((1, 1)), bias=[-1.0, 2.0], activation="relu")
    assert y[:, 0, 0].tolist() == [0.0, 2.0]
    y = conv2d(x, np.ones((1, 1)), bias=-2.0, activation="leaky-relu:0.5")
    assert float(y[0, 0, 0]) == -1.0
    y = conv2d(x, np.ones((1, 1)), bias=0.0, activation="sigmoid")
    assert float(y[0, 0, 0]) == 0.5


def test_activations_known_values() -> None:
    x = np.array([-1000.0, -1.0, 0.0, 2.0], np.float32)
    np.testing.assert_allclose(
        activate(x, "sigmoid"), [0, 1 / (1 + np.e), 0.5, 1 / (1 + np.e**-2)], rtol=1e-6, atol=1e-30
    )
    np.testing.assert_allclose(activate(x, "tanh"), np.tanh(x))
    assert activate(x, "abs").tolist() == [1000, 1, 0, 2]
    assert activate(x, None).tolist() == x.tolist()


def test_pad_modes_on_a_row() -> None:
    row = np.array([[1.0, 2.0, 3.0]])
    pads = (0, 0, 2, 2)
    assert pad2d(row, pads, mode="reflect")[0].tolist() == [3, 2, 1, 2, 3, 2, 1]
    assert pad2d(row, pads, mode="symmetric")[0].tolist() == [2, 1, 1, 2, 3, 3, 2]
    assert pad2d(row, pads, mode="replicate")[0].tolist() == [1, 1, 1, 2, 3, 3, 3]
    assert pad2d(row, pads, mode="circular")[0].tolist() == [2, 3, 1, 2, 3, 1, 2]
    assert pad2d(row, pads, mode="zeros")[0].tolist() == [0, 0, 1, 2, 3, 0, 0]


def test_hand_worked_4x4_pools_with_overlap() -> None:
    x = np.array([[1, 3, 2, 0], [4, 6, 5, 1], [7, 2, 9, 8], [0, 1, 3, 4]], np.float32)
    assert pool2d(x, "max", size=2).tolist() == [[6, 5], [7, 9]]
    assert pool2d(x, "min", size=2).tolist() == [[1, 0], [0, 3]]
    assert pool2d(x, "avg", size=2).tolist() == [[3.5, 2.0], [2.5, 6.0]]
    # 3x3 windows, stride 1: they overlap
    assert pool2d(x, "max", size=3, stride=1).tolist() == [[9, 9], [9, 9]]
    np.testing.assert_allclose(
        pool2d(x, "avg", size=3, stride=1), [[39 / 9, 4], [37 / 9, 39 / 9]], rtol=1e-6
    )
    # 2x2 windows, stride 1: 3x3 output
    assert pool2d(x, "max", size=2, stride=1).tolist() == [[6, 6, 5], [7, 9, 9], [7, 9, 9]]


def test_avg_pool_padding_counts() -> None:
    x = np.ones((3, 3), np.float32)
    inc = pool2d(x, "avg", size=2, stride=2, padding=1)
    exc = pool2d(x, "avg", size=2, stride=2, padding=1, count_include_pad=False)
    assert inc.tolist() == [[0.25, 0.5], [0.5, 1.0]]
    assert exc.tolist() == [[1, 1], [1, 1]]


def test_ceil_mode_keeps_partial_window_but_not_one_in_padding() -> None:
    x = np.arange(25, dtype=np.float32).reshape(5, 5)
    assert pool2d(x, "max", size=2, ceil_mode=True).tolist() == [
        [6, 8, 9],
        [16, 18, 19],
        [21, 23, 24],
    ]
    # padding 1, size 2, stride 2 on 4: floor((4+2-2)/2)+1 = 3 (ceil the same); no window dropped
    assert pool2d(np.ones((4, 4)), "max", size=2, padding=1, ceil_mode=True).shape == (3, 3)
    # in 5, k 2, s 2, p 1: ceil((5+2-2)/2)+1 = 4, last window starts at 6 >= 5+1 -> dropped: 3
    assert pool2d(np.ones((5, 5)), "max", size=2, padding=1, ceil_mode=True).shape == (3, 3)


def test_global_pools() -> None:
    x = np.array([[[1, 2], [3, 4]], [[-1, 0], [0, 5]]], np.float32)
    assert pool2d(x, "global-max").reshape(-1).tolist() == [4, 5]
    assert pool2d(x, "global-avg").reshape(-1).tolist() == [2.5, 1.0]


def test_separable_factors() -> None:
    assert separable_factors(SOBEL_X) is not None
    assert separable_factors(np.eye(3)) is None
    assert separable_factors(np.zeros((3, 3))) is None


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stride": 0}, "stride must be >= 1, got 0"),
        ({"stride": -1}, "stride must be >= 1, got -1"),
        ({"dilation": 0}, "dilation must be >= 1, got 0"),
        ({"padding": -2}, "padding must not be negative"),
        ({"padding": "middle"}, "padding must be valid, same, full"),
        ({"padding": (1, 2, 3)}, "padding takes 1, 2 or 4 numbers"),
        ({"pad_mode": "mirror"}, "pad mode must be one of zeros, constant, reflect"),
        ({"activation": "gelu"}, "activation must be one of none, relu"),
        ({"activation": "relu:2"}, "activation relu takes no parameter"),
        ({"groups": 2}, "groups=2 applies to 4-D layer kernels only"),
        ({"bias": [1, 2]}, "bias has 2 values but there are 3 output channels"),
        ({"dtype": np.int32}, "dtype must be float32 or float64"),
        ({"method": "magic"}, "method must be one of auto"),
        ({"pad_value": "x"}, "pad value must be a number"),
    ],
)
def test_conv2d_argument_errors_name_parameter_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        conv2d(np.ones((3, 5, 5)), np.ones((3, 3)), **kwargs)
    assert isinstance(info.value, ParameterError)


def test_conv2d_shape_errors() -> None:
    with pytest.raises(ShapeError, match="larger than the padded input 2×2"):
        conv2d(np.ones((2, 2)), np.ones((3, 3)), padding="valid")
    with pytest.raises(ShapeError, match="expects 4 input channels .* the input has 3"):
        conv2d(np.ones((3, 5, 5)), np.ones((2, 4, 3, 3)))
    with pytest.raises(ShapeError, match="groups=2 must divide the 3 output channels"):
        conv2d(np.ones((4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2)
    with pytest.raises(ShapeError, match=r"got shape \(3,\)"):
        conv2d(np.ones((3, 5, 5)), np.ones(3))
    with pytest.raises(ParameterError, match="kernel holds 1 NaN or infinite"):
        conv2d(np.ones((5, 5)), np.array([[1.0, np.nan]]))
    with pytest.raises(ShapeError, match=r"image must be \(H, W\) or \(C, H, W\)"):
        conv2d(np.ones(5), np.ones((1, 1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "pool size must be >= 1, got 0"),
        ({"stride": 0}, "pool stride must be >= 1, got 0"),
        ({"padding": 2}, r"pool padding \(top 2, bottom 2, left 2, right 2\) must be at most half"),
        ({"padding": "full"}, "'full' is for conv"),
        ({"size": 9}, "pool window 9×9 is larger than the padded input 4×4"),
        ({"op": "median"}, "pool op must be one of max, avg"),
    ],
)
def test_pool2d_argument_errors(kwargs: dict, message: str) -> None:
    op = kwargs.pop("op", "max")
    with pytest.raises(ValueError, match=message):
        pool2d(np.ones((4, 4)), op, **kwargs)


# --------------------------------------------------------------------------- properties

small = st.integers(1, 4)


@settings(max_examples=150, deadline=None)
@given(
    c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
    kh=small, kw=small, stride=st.tuples(small, small),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.one_of(st.sampled_from(["valid", "same", "full"]), st.integers(0, 3),
                      st.tuples(*[st.integers(0, 3)] * 4)),
    kind=st.sampled_from(["2d", "bank", "layer"]),
)  # fmt: skip
def test_shape_module_predicts_conv_output(
    c, h, w, kh, kw, stride, dilation, padding, kind
) -> None:
    kshape = {"2d": (kh, kw), "bank": (2, kh, kw), "layer": (5, c, kh, kw)}[kind]
    x = np.ones((c, h, w), np.float32)
    try:
        geom = conv_geometry(x.shape, kshape, stride=stride, padding=padding, dilation=dilation)
    except ShapeError:
        with pytest.raises(ShapeError):
            conv2d(x, np.ones(kshape), stride=stride, padding=padding, dilation=dilation)
        return
    y = conv2d(
        x, np.ones(kshape), stride=stride, padding=padding, dilation=dilation, pad_mode="zeros"
    )
    assert y.shape == geom.out_shape


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), size=st.tuples(small, small),
    stride=st.one_of(st.none(), st.tuples(small, small)), pad=st.integers(0, 2),
    ceil_mode=st.booleans(), op=st.sampled_from(["max", "avg", "min"]),
)  # fmt: skip
def test_shape_module_predicts_pool_output(h, w, size, stride, pad, ceil_mode, op) -> None:
    x = np.ones((2, h, w), np.float32)
    try:
        geom = pool_geometry(
            x.shape, op=op, size=size, stride=stride, padding=pad, ceil_mode=ceil_mode
        )
    except ValueError:
        with pytest.raises(ValueError):
            pool2d(x, op, size=size, stride=stride, padding=pad, ceil_mode=ceil_mode)
        return
    y = pool2d(x, op, size=size, stride=stride, padding=pad, ceil_mode=ceil_mode)
    assert y.shape == geom.out_shape
    assert np.all(np.isfinite(y))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16), a=st.floats(-3, 3), b=st.floats(-3, 3),
    method=st.sampled_from(METHODS_2D[:1] + METHODS_2D[2:]),
    pad_mode=st.sampled_from(["zeros", "reflect", "symmetric", "replicate", "circular"]),
)  # fmt: skip
def test_conv2d_is_linear(seed, a, b, method, pad_mode) -> None:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((2, 2, 9, 8))
    k = rng.standard_normal((3, 3))
    lhs = conv2d(a * x1 + b * x2, k, method=method, pad_mode=pad_mode, dtype=np.float64)
    rhs = a * conv2d(x1, k, pad_mode=pad_mode, dtype=np.float64) + b * conv2d(
        x2, k, pad_mode=pad_mode, dtype=np.float64
    )
    np.testing.assert_allclose(lhs, rhs, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.sampled_from([1, 3, 5]))
def test_flipped_kernel_is_scipy_style_convolution(seed, k) -> None:
    """On a symmetric case (odd kernel, centred) flip=True equals true convolution."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, 9))
    w = rng.standard_normal((k, k))
    y = conv2d(x, w, flip=True, padding="same", pad_mode="zeros", dtype=np.float64)
    # true convolution by its definition: y[r, c] = sum x[r - i, c - j] w[i + h, j + h]
    h = k // 2
    xp = np.pad(x, h)
    ref = np.zeros_like(x)
    for i in range(-h, h + 1):
        for j in range(-h, h + 1):
            ref += w[i + h, j + h] * xp[h - i : h - i + 7, h - j : h - j + 9]
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_flip_matches_scipy_convolve_when_available() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 10))
    w = rng.standard_normal((5, 5))
    ours = conv2d(x, w, flip=True, pad_mode="reflect", dtype=np.float64)
    np.testing.assert_allclose(ours, ndimage.convolve(x, w, mode="mirror"), atol=1e-12)
    ours = conv2d(x, w, flip=False, pad_mode="symmetric", dtype=np.float64)
    np.testing.assert_allclose(ours, ndimage.correlate(x, w, mode="reflect"), atol=1e-12)


@pytest.mark.parametrize("size", [2, 3, (2, 3), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_overlapping_avg_pool_is_the_block_mean(size, dtype) -> None:
    """size == stride without padding takes OpenCV's area path: still exact block means."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 10, 11)).astype(dtype)
    kh, kw = (size, size) if isinstance(size, int) else size
    ho, wo = 10 // kh, 11 // kw
    expected = x[:, : ho * kh, : wo * kw].reshape(2, ho, kh, wo, kw).mean(axis=(2, 4))
    got = pool2d(x, "avg", size=size)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
