"""``convcli explain`` shows convolve's numbers: one unit system, bias and activation included.

The patch is shown in 0–255 units; every number explain prints or returns,
divided by the unit scale (255), must equal what ``convcli convolve`` computes on
the same patch with the same options. The CLI tests crop explain's patch to an
image file, run ``convolve --format npy`` on it, and compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.kernels import load_kernel
from convcli.ops.conv import conv2d
from convcli.pipeline.walk import BYTE, RAW, Units, patch_from_image, scale_free, walkthrough

REPO = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
ACTIVATIONS = ("none", "relu", "leaky-relu:0.2", "sigmoid", "tanh", "abs")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env=ENV)


def explain_json(*args: str) -> dict:
    result = invoke("explain", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def convolve_npy(image: Path, *args: str) -> np.ndarray:
    out = image.with_suffix(".npy")
    result = invoke("convolve", str(image), *args, "--format", "npy", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    return np.load(out)


def save_patch(data: dict, path: Path) -> Path:
    """explain's patch (C, h, w in 0–255 units, whole numbers) as an 8-bit image file."""
    patch = np.array(data["input"])
    assert np.array_equal(patch, np.round(patch)) and patch.min() >= 0 and patch.max() <= 255
    pixels = patch.astype(np.uint8)
    mode = "L" if pixels.shape[0] == 1 else "RGB"
    img = pixels[0] if mode == "L" else pixels.transpose(1, 2, 0)
    Image.fromarray(img, mode=mode).save(path)
    return path


def assert_same_as_convolve(data: dict, npy: np.ndarray) -> None:
    assert data["units"] == {"scale": 255, "name": "0–255"}
    shown = np.array(data["output"])
    assert shown.shape == npy.shape
    # convolve computes in float32: compare to its precision, on the scale of the values
    np.testing.assert_allclose(shown / 255, npy, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the CLI


GEOMETRIES = {
    "same": (),
    "stride2-valid": ("--stride", "2", "--padding", "valid"),
    "dilation2-zeros": ("--dilation", "2", "--padding", "2", "--pad-mode", "zeros"),
    "stride2,1-full-constant": (
        "--stride", "2,1", "--padding", "full", "--pad-mode", "constant", "--pad-value", "0.4",
    ),
}  # fmt: skip
BIASES = ("-0.2", "0.35")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    ("geometry", "bias"),
    [("same", "-0.2"), ("stride2-valid", "0.35"), ("dilation2-zeros", "-0.2"),
     ("stride2,1-full-constant", "0.35")],
)  # fmt: skip
def test_explain_json_output_is_convolve_of_the_cropped_patch(
    tmp_path: Path, activation: str, geometry: str, bias: str
) -> None:
    opts = ("-k", "sobel-x", *GEOMETRIES[geometry], "--bias", bias, "--activation", activation)
    data = explain_json(*opts, "--pool", "none")
    npy = convolve_npy(save_patch(data, tmp_path / "patch.png"), *opts)
    assert_same_as_convolve(data, npy)
    # the value worked out by hand is convolve's too
    w = data["window"]
    assert w["value"] / 255 == pytest.approx(float(npy[w["map"], w["row"], w["col"]]), abs=1e-6)
    assert w["bias"] == pytest.approx(255 * float(bias))
    assert w["pre_activation"] == pytest.approx(w["sum"] + w["bias"])


def test_the_issue_example_emboss_bias_is_added_in_0_1_units(tmp_path: Path) -> None:
    """emboss-45 has bias 0.5 (0–1 units): 619 + 127.5 = 746.5 at window 3,3, as convolve."""
    kernel = str(REPO / "kernels" / "emboss-45.yaml")
    data = explain_json("-k", kernel, "--pool", "none", "--window", "3,3")
    assert data["window"]["sum"] == 619 and data["window"]["bias"] == 127.5
    assert data["window"]["value"] == 746.5
    npy = convolve_npy(save_patch(data, tmp_path / "patch.png"), "-k", kernel)
    assert float(npy[0, 3, 3]) == pytest.approx(746.5 / 255, rel=1e-6)
    assert_same_as_convolve(data, npy)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_a_bank_with_one_bias_per_kernel(tmp_path: Path, activation: str) -> None:
    opts = ("-k", "sobel", "--bias", "0.1,-0.3", "--activation", activation, "--stride", "2")
    data = explain_json(*opts, "--pool", "none")
    assert_same_as_convolve(data, convolve_npy(save_patch(data, tmp_path / "p.png"), *opts))


def test_a_layer_over_three_channels(tmp_path: Path) -> None:
    opts = ("-k", str(REPO / "kernels" / "rgb-layer.yaml"), "--bias", "0.25,-0.5",
            "--activation", "tanh")  # fmt: skip
    data = explain_json(*opts, "--size", "5", "--pool", "none")
    assert np.array(data["input"]).shape == (3, 5, 5)
    assert_same_as_convolve(data, convolve_npy(save_patch(data, tmp_path / "p.png"), *opts))


def test_pooling_numbers_are_in_the_same_units(tmp_path: Path) -> None:
    opts = ("-k", "sobel-x", "--bias", "-0.2", "--activation", "sigmoid")
    data = explain_json(*opts, "--pool", "avg", "--pool-size", "3", "--pool-stride", "1")
    patch = save_patch(data, tmp_path / "p.png")
    out = tmp_path / "pooled.npy"
    result = invoke("convolve", str(patch), *opts, "--pool", "avg", "--pool-size", "3",
                    "--pool-stride", "1", "--format", "npy", "-o", str(out), "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.array(data["pool"]["output"]) / 255, np.load(out), atol=1e-6)


def test_a_colour_photo_patch_keeps_its_fractional_luma(tmp_path: Path) -> None:
    """The luma of RGB pixels is not a whole number in 0–255: it is not rounded away."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "photo.png")
    opts = ("-k", "sobel-y", "--bias", "0.1", "--activation", "sigmoid")
    data = explain_json("--input", "photo.png", "--at", "1,2", "--size", "6", *opts,
                        "--pool", "none")  # fmt: skip
    patch = np.array(data["input"])
    assert not np.array_equal(patch, np.round(patch))  # luma: fractions
    Image.fromarray(rgb[1:7, 2:8], mode="RGB").save(tmp_path / "crop.png")
    npy = convolve_npy(tmp_path / "crop.png", *opts, "--gray")
    assert_same_as_convolve(data, npy)


def test_a_float_image_is_shown_raw(tmp_path: Path) -> None:
    values = np.linspace(-2, 3, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tiff")
    data = explain_json("--input", "f.tiff", "--size", "5", "--at", "0,0", "--bias", "0.5",
                        "--activation", "tanh", "--pool", "none")  # fmt: skip
    assert data["units"] == {"scale": 1, "name": "raw"}
    want = conv2d(values[:5, :5].astype(np.float64), load_kernel("sobel-x"), bias=0.5,
                  activation="tanh")  # fmt: skip
    np.testing.assert_allclose(np.array(data["output"])[0], want, rtol=1e-6)


def test_the_text_says_how_bias_and_sigmoid_are_converted() -> None:
    result = invoke("explain", "--bias", "-0.2", "--activation", "sigmoid", "--window", "3,3",
                    "--pool", "none")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "bias -0.20 (= -51 in 0–255 units)" in out
    assert "every number below: divide by 255 for what convolve computes" in out
    assert "bias: 818 + (-51) = 767" in out and "given as -0.20, shown ×255" in out
    assert "sigmoid(767 / 255) = sigmoid(3.0078) = 0.9529, shown ×255 = 243.00" in out
    assert "it is not scale-free" in out
    assert "(conv2d computed 0.952927, ×255 = 243.00)" in out


def test_the_readme_bias_example_means_the_same_in_both_commands(tmp_path: Path) -> None:
    """README: ``explain --bias -0.2 --activation relu``; convolve with the same flags agrees
    and is not all zeros (as ``--bias -50`` was: 50 in 0–1 units)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "convcli explain --bias -0.2 --activation relu" in readme
    assert "--bias -50" not in readme
    opts = ("--bias", "-0.2", "--activation", "relu")
    data = explain_json(*opts, "--pool", "none")
    npy = convolve_npy(save_patch(data, tmp_path / "p.png"), "-k", "sobel-x", *opts)
    assert_same_as_convolve(data, npy)
    assert 0 < np.count_nonzero(npy) < npy.size


def test_every_explain_example_in_the_readme_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = [ln.split("#")[0].split() for ln in readme.splitlines()]
    examples = [
        ln[2:] for ln in lines if ln[:2] == ["convcli", "explain"] and "[" not in " ".join(ln)
    ]
    assert len(examples) >= 5
    for args in examples:
        if "--input" in args:  # photo.jpg: any photo will do
            Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save("photo.jpg")
        if "--animate" in args:
            args = [a if not a.endswith((".gif", ".png")) else "walk.gif" for a in args]
        result = invoke("explain", *args)
        assert result.exit_code == 0, (args, result.output)


# --------------------------------------------------------------------------- the library


RNG = np.random.default_rng(11)
PATCH = RNG.integers(0, 256, size=(6, 7)).astype(np.float64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(
    "geometry",
    [{}, {"stride": 2}, {"stride": (1, 2), "padding": "valid"}, {"dilation": 2},
     {"padding": "full", "pad_mode": "constant", "pad_value": 0.3}],
    ids=str,
)  # fmt: skip
@pytest.mark.parametrize("bias", [None, -0.3, 0.15])
def test_every_shown_number_is_conv2d_of_the_true_values(
    activation: str, geometry: dict, bias: float | None
) -> None:
    k = load_kernel("laplacian")
    opts = {**geometry, "bias": bias, "activation": activation}
    walk = walkthrough(PATCH, k, units=BYTE, pool=None, **opts)
    true = conv2d(PATCH / 255, k, **opts)
    np.testing.assert_allclose(walk.output[0] / 255, true, rtol=1e-12, atol=1e-15)
    pre = conv2d(PATCH / 255, k, **{**opts, "activation": None})
    np.testing.assert_allclose(walk.pre_activation[0] / 255, pre, rtol=1e-12, atol=1e-15)
    pad_value = geometry.get("pad_value", 0.0)
    if geometry.get("pad_mode") == "constant":
        assert walk.padded[0, 0, 0] == pytest.approx(255 * pad_value)
    # every window, worked out by hand in 0–255 units, lands on conv2d's value
    for i in range(true.shape[0]):
        for j in range(true.shape[1]):
            win = walkthrough(PATCH, k, units=BYTE, pool=None, window=(i, j), **opts).window
            assert win.value == pytest.approx(255 * true[i, j], rel=1e-9, abs=1e-9)
            assert win.bias == pytest.approx(255 * (bias or 0.0))


def test_scale_free_activations() -> None:
    assert [scale_free(a) for a in ACTIVATIONS] == [True, True, True, False, False, True]
    x = np.linspace(-3, 3, 13)
    from convcli.ops.activations import activate

    for a in ACTIVATIONS:
        same = np.allclose(activate(255 * x, a), 255 * activate(x, a))
        assert same == scale_free(a), a


def test_raw_units_leave_library_walks_as_they_were() -> None:
    k = load_kernel("sobel-x")
    walk = walkthrough(PATCH, k, bias=-60, activation="sigmoid", pool=None)
    assert walk.units is RAW
    np.testing.assert_array_equal(walk.output[0], conv2d(PATCH, k, bias=-60, activation="sigmoid"))


def test_a_bad_unit_scale_is_refused() -> None:
    from convcli.errors import ParameterError

    with pytest.raises(ParameterError, match="unit scale must be a positive number"):
        walkthrough(PATCH, load_kernel("sobel-x"), units=Units(0.0, "zero"))


def test_patch_from_an_8_bit_file_is_whole_numbers(tmp_path: Path) -> None:
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3, mode="L").save(
        tmp_path / "g.png"
    )
    patch, _, units = patch_from_image(str(tmp_path / "g.png"), (3, 3), (1, 1))
    assert units is BYTE
    assert patch.tolist() == [[[27.0, 30.0, 33.0], [51.0, 54.0, 57.0], [75.0, 78.0, 81.0]]]
