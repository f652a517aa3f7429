"""Built-in kernels: values, sign conventions, normalisation and parameter errors.

Responses are computed with a tiny cross-correlation written here (no flip, valid
padding), so these tests do not depend on ``convcli.conv2d``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from convcli.errors import KernelError
from convcli.kernels import (
    Kernel,
    builtin_kernel,
    builtin_names,
    kernel_rank,
    load_kernel,
    parse_kernel_spec,
    separable_factors,
    symmetry,
    weights_sum,
)


def correlate_valid(image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cross-correlation without padding: ``out[i, j] = sum(image[i:i+kh, j:j+kw] * w)``."""
    kh, kw = w.shape
    h, wd = image.shape
    out = np.empty((h - kh + 1, wd - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = float((image[i : i + kh, j : j + kw] * w).sum())
    return out


def step_left_to_right(n: int = 8) -> np.ndarray:
    """Dark left half, bright right half: intensity increases left → right."""
    img = np.zeros((n, n))
    img[:, n // 2 :] = 1.0
    return img


# --------------------------------------------------------------------------- every built-in


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_loads_finite_float64(name: str) -> None:
    k = load_kernel(name)
    assert isinstance(k, Kernel)
    assert k.source == "built-in"
    assert k.weights.dtype == np.float64
    assert np.all(np.isfinite(k.weights))
    assert k.weights.ndim in (2, 3)
    assert k.description


BLURS = ["box", "box:4", "gaussian", "gaussian:7:1.5", "motion", "motion:7:30"]
ZERO_SUM = [
    "laplacian",
    "laplacian:8",
    "log",
    "log:7:1",
    "dog",
    "dog:1:3",
    "sobel-x",
    "sobel-y",
    "scharr-x",
    "scharr-y",
    "prewitt-x",
    "prewitt-y",
    "roberts-x",
    "roberts-y",
    "outline",
    "gabor",
    "gabor:11:45",
]
SUM_ONE = [*BLURS, "identity", "sharpen", "unsharp", "unsharp:7:2:0.5", "emboss"]


@pytest.mark.parametrize("spec", SUM_ONE)
def test_blurs_and_sharpeners_sum_to_one(spec: str) -> None:
    assert builtin_kernel(spec).weights.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("spec", ZERO_SUM)
def test_derivative_kernels_sum_to_zero(spec: str) -> None:
    w = builtin_kernel(spec).weights
    assert w.sum() == pytest.approx(0.0, abs=1e-12)
    assert np.abs(w).sum() > 0


@pytest.mark.parametrize("spec", ZERO_SUM)
def test_derivative_kernels_give_zero_on_a_flat_image(spec: str) -> None:
    w = builtin_kernel(spec).weights
    flat = np.full((w.shape[0] + 2, w.shape[1] + 2), 0.7)
    np.testing.assert_allclose(correlate_valid(flat, w), 0.0, atol=1e-12)


# --------------------------------------------------------------------------- values


def test_identity_reproduces_the_image() -> None:
    img = np.arange(25.0).reshape(5, 5)
    np.testing.assert_array_equal(
        correlate_valid(img, builtin_kernel("identity").weights), img[1:4, 1:4]
    )


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_box_is_uniform(k: int) -> None:
    w = builtin_kernel(f"box:{k}").weights
    assert w.shape == (k, k)
    np.testing.assert_allclose(w, 1.0 / (k * k))


def test_box_default_is_3x3() -> None:
    assert builtin_kernel("box").shape == (3, 3)


def test_gaussian_sums_to_one_symmetric_peaked_and_separable() -> None:
    w = builtin_kernel("gaussian:7:1.5").weights
    assert w.shape == (7, 7)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1])
    assert np.unravel_index(np.argmax(w), w.shape) == (3, 3)
    assert kernel_rank(w) == 1
    assert symmetry(w) == "rotational"


def test_gaussian_matches_the_formula() -> None:
    w = builtin_kernel("gaussian:5:1.0").weights
    x = np.arange(5) - 2
    g = np.exp(-(x**2) / 2.0)
    np.testing.assert_allclose(w, np.outer(g, g) / np.outer(g, g).sum())


def test_gaussian_defaults_follow_opencv_sigma_and_three_sigma_size() -> None:
    assert builtin_kernel("gaussian").shape == (5, 5)
    assert builtin_kernel("gaussian").extra["params"] == {"k": None, "sigma": None}
    # k given → sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8; sigma given → k = 2 ceil(3 sigma) + 1
    np.testing.assert_allclose(
        builtin_kernel("gaussian:7").weights, builtin_kernel("gaussian:7:1.4").weights
    )
    assert builtin_kernel("gaussian::2").shape == (13, 13)


def test_gaussian_matches_scipy_gaussian_filter_on_an_impulse() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1.0
    # scipy truncates at truncate*sigma; radius 2 with sigma 1 ⇒ truncate=2
    ref = ndimage.gaussian_filter(impulse, 1.0, truncate=2.0, mode="constant")[2:7, 2:7]
    np.testing.assert_allclose(builtin_kernel("gaussian:5:1").weights, ref, atol=1e-12)


def test_sobel_x_is_positive_where_intensity_increases_left_to_right() -> None:
    w = builtin_kernel("sobel-x").weights
    np.testing.assert_array_equal(w, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    out = correlate_valid(step_left_to_right(), w)
    assert out.max() == 4.0  # the edge: 1 + 2 + 1
    assert out.min() == 0.0  # never negative on a rising step
    np.testing.assert_array_equal(out[:, 2:4], 4.0)  # the two columns straddling the step


def test_sobel_y_is_positive_where_intensity_increases_top_to_bottom() -> None:
    w = builtin_kernel("sobel-y").weights
    np.testing.assert_array_equal(w, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    out = correlate_valid(step_left_to_right().T, w)
    assert out.max() == 4.0 and out.min() == 0.0


@pytest.mark.parametrize("family", ["sobel", "scharr", "prewitt"])
def test_gradient_families_have_the_same_sign_convention(family: str) -> None:
    wx = builtin_kernel(f"{family}-x").weights
    wy = builtin_kernel(f"{family}-y").weights
    np.testing.assert_array_equal(wy, wx.T)
    assert correlate_valid(step_left_to_right(), wx).min() == 0.0
    assert correlate_valid(step_left_to_right(), wx).max() > 0
    assert correlate_valid(step_left_to_right()[:, ::-1], wx).max() == 0.0  # falling step: ≤ 0
    assert separable_factors(wx) is not None


def test_scharr_values() -> None:
    np.testing.assert_array_equal(
        builtin_kernel("scharr-x").weights, [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]
    )


def test_roberts_respond_to_their_diagonals() -> None:
    rx, ry = builtin_kernel("roberts-x").weights, builtin_kernel("roberts-y").weights
    assert rx.shape == ry.shape == (2, 2)
    down_right = np.add.outer(np.arange(4.0), np.arange(4.0))  # brighter towards bottom-right
    down_left = np.add.outer(np.arange(4.0), -np.arange(4.0))  # brighter towards bottom-left
    np.testing.assert_allclose(correlate_valid(down_right, rx), 2.0)
    np.testing.assert_allclose(correlate_valid(down_right, ry), 0.0)
    np.testing.assert_allclose(correlate_valid(down_left, ry), 2.0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("laplacian", [[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
        ("laplacian:4", [[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
        ("laplacian:8", [[1, 1, 1], [1, -8, 1], [1, 1, 1]]),
        ("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
        ("outline", [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
        ("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    ],
)
def test_fixed_kernel_values(spec: str, expected: list[list[int]]) -> None:
    np.testing.assert_array_equal(builtin_kernel(spec).weights, expected)


def test_laplacian_of_a_quadratic_is_its_second_derivative() -> None:
    y, x = np.mgrid[0:6, 0:6].astype(float)
    out = correlate_valid(x**2 + y**2, builtin_kernel("laplacian").weights)
    np.testing.assert_allclose(out, 4.0)  # d²/dx² + d²/dy² of x² + y²


def test_log_is_negative_at_the_centre_and_rotationally_symmetric() -> None:
    w = builtin_kernel("log:9:1.4").weights
    assert w[4, 4] == w.min() < 0
    assert symmetry(w) == "rotational"
    assert w.sum() == pytest.approx(0.0, abs=1e-12)


def test_dog_is_positive_at_the_centre_and_needs_s2_above_s1() -> None:
    w = builtin_kernel("dog:1:2").weights
    assert w.shape == (13, 13)  # 2 * ceil(3 * 2) + 1
    assert w[6, 6] == w.max() > 0
    with pytest.raises(KernelError, match="s2 must be larger than s1"):
        builtin_kernel("dog:2:1")


def test_unsharp_is_identity_plus_amount_times_detail() -> None:
    w = builtin_kernel("unsharp:5:1:2").weights
    g = builtin_kernel("gaussian:5:1").weights
    ident = np.zeros((5, 5))
    ident[2, 2] = 1
    np.testing.assert_allclose(w, ident + 2 * (ident - g))


def test_motion_0_is_a_horizontal_line_summing_to_one() -> None:
    w = builtin_kernel("motion:9:0").weights
    assert w.shape == (9, 9)
    np.testing.assert_allclose(w[4], 1 / 9)
    np.testing.assert_array_equal(np.delete(w, 4, axis=0), 0.0)


def test_motion_90_is_vertical_and_45_runs_bottom_left_to_top_right() -> None:
    np.testing.assert_allclose(
        builtin_kernel("motion:5:90").weights, builtin_kernel("motion:5:0").weights.T
    )
    w = builtin_kernel("motion:5:45").weights
    assert w.sum() == pytest.approx(1.0)
    assert w[0, 4] > 0 and w[4, 0] > 0  # top-right and bottom-left ends
    assert w[0, 0] == 0 and w[4, 4] == 0
    np.testing.assert_allclose(w, w.T[::-1, ::-1])  # symmetric about the anti-diagonal


def test_gabor_shape_zero_sum_and_orientation() -> None:
    w = builtin_kernel("gabor").weights
    assert w.shape == (15, 15)
    assert np.all(np.isfinite(w))
    assert w.sum() == pytest.approx(0.0, abs=1e-12)
    assert w[7, 7] == w.max() > 0  # cosine phase: a bright centre stripe
    # theta 0 → vertical stripes: every row has the same sign pattern; theta 90 is its transpose
    np.testing.assert_allclose(builtin_kernel("gabor:15:90").weights, w.T, atol=1e-12)
    assert np.abs(np.diff(np.sign(w[3:12, 7]))).sum() == 0  # centre column has no sign change


def test_gabor_responds_more_to_matching_stripes() -> None:
    w = builtin_kernel("gabor:15:0:3:6").weights
    x = np.arange(15)
    vertical_stripes = np.tile(np.cos(2 * np.pi * (x - 7) / 6), (15, 1))
    horizontal_stripes = vertical_stripes.T
    assert (vertical_stripes * w).sum() > 10 * abs((horizontal_stripes * w).sum())


# --------------------------------------------------------------------------- banks


def test_sobel_bank() -> None:
    k = builtin_kernel("sobel")
    assert k.kind == "bank"
    assert k.labels == ("sobel-x", "sobel-y")
    np.testing.assert_array_equal(k.weights[0], builtin_kernel("sobel-x").weights)
    np.testing.assert_array_equal(k.weights[1], builtin_kernel("sobel-y").weights)


def test_edges_bank() -> None:
    k = builtin_kernel("edges")
    assert k.labels == ("sobel-x", "sobel-y", "scharr-x", "scharr-y", "laplacian")
    assert k.shape == (5, 3, 3)
    for label, member in zip(k.labels, k.weights, strict=True):
        np.testing.assert_array_equal(member, builtin_kernel(label).weights)


def test_kirsch_has_eight_rotations_of_the_north_kernel() -> None:
    k = builtin_kernel("kirsch")
    assert k.shape == (8, 3, 3)
    assert k.labels[0] == "kirsch-n" and len(set(k.labels)) == 8
    np.testing.assert_array_equal(k.weights[0], [[5, 5, 5], [-3, 0, -3], [-3, -3, -3]])
    # every 90° clockwise turn is two members on
    for m in range(8):
        np.testing.assert_array_equal(k.weights[(m + 2) % 8], np.rot90(k.weights[m], -1))
    # all different, each sums to 0, each the same multiset of taps
    flat = {tuple(w.ravel()) for w in k.weights}
    assert len(flat) == 8
    for w in k.weights:
        assert w.sum() == 0
        assert sorted(w.ravel()) == [-3] * 5 + [0] + [5] * 3


def test_kirsch_north_is_positive_where_the_top_is_brighter() -> None:
    top_bright = step_left_to_right().T[::-1]  # bright top half
    out = correlate_valid(top_bright, builtin_kernel("kirsch").weights[0])
    assert out.max() > 0


# --------------------------------------------------------------------------- parsing and errors


def test_parse_kernel_spec() -> None:
    assert parse_kernel_spec("gaussian:7:1.5") == ("gaussian", ("7", "1.5"))
    assert parse_kernel_spec(" Sobel-X ") == ("sobel-x", ())
    assert parse_kernel_spec("gaussian::2") == ("gaussian", ("", "2"))


def test_name_keeps_the_spec_and_params_are_recorded() -> None:
    k = builtin_kernel("Gaussian:7:1.5")
    assert k.name == "gaussian:7:1.5"
    assert k.extra["params"] == {"k": 7, "sigma": 1.5}
    assert "sigma 1.5" in k.description


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gaussian:-3", "gaussian: k must be a positive odd integer, got -3"),
        ("gaussian:x", "gaussian: k must be a whole number, got 'x'"),
        ("gaussian:4", "gaussian: k must be odd"),
        ("gaussian:5:0", "gaussian: sigma must be > 0, got 0"),
        ("gaussian:5:abc", "gaussian: sigma must be a number, got 'abc'"),
        ("gaussian:5:nan", "gaussian: sigma must be finite"),
        ("gaussian:5:1:2", "gaussian takes at most 2 parameters (k, sigma), got 3"),
        ("gaussian:3.5", "gaussian: k must be a whole number, got '3.5'"),
        ("box:0", "box: k must be >= 1, got 0"),
        ("laplacian:6", "laplacian: n must be 4 or 8"),
        ("sobel-x:3", "sobel-x takes no parameters"),
        ("motion:8", "motion: length must be odd"),
        ("unsharp:5:1:-1", "unsharp: amount must be >= 0"),
        ("gabor:15:0:2:0", "gabor: lambda must be > 0"),
        ("log:4", "log: k must be odd"),
    ],
)
def test_bad_builtin_parameters(spec: str, message: str) -> None:
    with pytest.raises(KernelError) as info:
        load_kernel(spec)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_builtin_suggests_the_closest_name() -> None:
    with pytest.raises(
        KernelError, match=r"unknown kernel 'gausian' \(did you mean 'gaussian'\?\)"
    ):
        load_kernel("gausian")
    with pytest.raises(KernelError, match=r"unknown kernel 'sobelx' \(did you mean 'sobel-x'\?\)"):
        load_kernel("sobelx:3")


def test_unknown_name_without_a_close_match() -> None:
    with pytest.raises(KernelError) as info:
        load_kernel("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "convcli kernels list" in str(info.value)


# --------------------------------------------------------------------------- analysis helpers


def test_separable_factors_rebuild_the_kernel() -> None:
    for spec in ["sobel-x", "sobel-y", "gaussian:7:1.5", "box:4", "prewitt-x", "motion:9:0"]:
        w = builtin_kernel(spec).weights
        factors = separable_factors(w)
        assert factors is not None, spec
        np.testing.assert_allclose(np.outer(*factors), w, atol=1e-12)
    for spec in ["laplacian", "sharpen", "emboss", "log"]:
        assert separable_factors(builtin_kernel(spec).weights) is None, spec


def test_symmetry_labels() -> None:
    assert symmetry(builtin_kernel("sobel-x").weights) == "up-down"
    assert symmetry(builtin_kernel("sobel-y").weights) == "left-right"
    assert symmetry(builtin_kernel("laplacian").weights) == "rotational"
    assert symmetry(builtin_kernel("box:3").weights[:2]) == "both"  # 2×3: both mirrors, not square
    assert symmetry(builtin_kernel("emboss").weights) == "none"
    assert symmetry(np.eye(2)) == "point"  # unchanged by a 180° turn, not by a mirror
    assert symmetry(np.array([[1.0, 2.0, 0.0], [0.0, 2.0, 1.0]])) == "point"


def test_weights_sum_snaps_round_off_to_zero() -> None:
    assert weights_sum(builtin_kernel("log").weights) == 0.0
    assert weights_sum(np.array([[0.25, 0.75]])) == 1.0
    assert math.isclose(weights_sum(builtin_kernel("gaussian").weights), 1.0)
