"""``convcli shape`` and ``convcli explain`` (and the explain walk-through itself)."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.cli.explain_view import explain, num
from convcli.kernels import Kernel, load_kernel
from convcli.ops.conv import conv2d
from convcli.ops.pool import pool2d
from convcli.pipeline.walk import (
    BYTE,
    default_patch,
    synthetic_patch,
    walkthrough,
    walkthrough_json,
)

REPO = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env=ENV)


def shape_json(*args: str) -> dict:
    result = invoke("shape", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:  # noqa: ANN001
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shape

RESNET_STEM = (
    "--input", "3x224x224", "--kernel-size", "7", "--out-channels", "64", "--stride", "2",
    "--padding", "3", "--pool", "max", "--pool-size", "3", "--pool-stride", "2",
    "--pool-padding", "1",
)  # fmt: skip


def test_shape_resnet_stem_table() -> None:
    result = invoke("shape", *RESNET_STEM)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "64×112×112" in out and "64×56×56" in out and "9,408" in out
    assert "floor((224 + 2·3 - 1·(7-1) - 1) / 2) + 1 = 112" in out
    assert "floor((112 + 2·1 - 3) / 2) + 1 = 56" in out
    assert all(len(line) <= 100 for line in out.splitlines())


def test_shape_resnet_stem_json() -> None:
    data = shape_json(*RESNET_STEM)
    conv, pool = data["stages"]
    assert conv["out_shape"] == [64, 112, 112] and pool["out_shape"] == [64, 56, 56]
    assert conv["params"] == 9408 and data["total_params"] == 9408
    assert conv["macs"] == 64 * 112 * 112 * 3 * 7 * 7
    assert pool["macs"] == 64 * 56 * 56 * 9
    assert conv["receptive_field"] == [7, 7] and conv["effective_stride"] == [2, 2]
    assert pool["receptive_field"] == [11, 11] and pool["effective_stride"] == [4, 4]
    assert conv["padding"] == {"top": 3, "bottom": 3, "left": 3, "right": 3}


def test_shape_bias_counts_one_per_output_channel() -> None:
    data = shape_json("--input", "3x224x224", "--kernel-size", "7", "--out-channels", "64",
                      "--stride", "2", "--padding", "3", "--bias", "0")  # fmt: skip
    assert data["total_params"] == 9408 + 64


def test_shape_strided_same_with_an_even_kernel() -> None:
    data = shape_json(
        "--input", "1x7x7", "--kernel-size", "4", "--stride", "2", "--padding", "same"
    )  # fmt: skip
    (stage,) = data["stages"]
    assert stage["out_shape"] == [1, 4, 4]  # ceil(7 / 2)
    assert stage["padding"] == {"top": 1, "bottom": 2, "left": 1, "right": 2}
    assert stage["formula"]["H"] == "floor((7 + 1+2 - 1·(4-1) - 1) / 2) + 1 = 4"
    assert stage["params"] == 16 and stage["macs"] == 16 * 16


def test_shape_warns_about_rows_the_stride_drops() -> None:
    result = invoke("shape", "--input", "1x8x8", "--kernel-size", "3", "--stride", "2",
                    "--padding", "valid")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1×3×3" in result.output
    assert "stride 2 leaves the last 1 input row unused" in result.output
    assert "stride 2 leaves the last 1 input column unused" in result.output


def test_shape_with_a_named_kernel_and_its_yaml_defaults() -> None:
    data = shape_json("--input", "3x100x60", "-k", "strided-down", "-K", str(REPO / "kernels"))
    (stage,) = data["stages"]
    assert stage["out_shape"] == [3, 50, 30] and stage["params"] == 9


def test_shape_pool_only_and_hxw_input() -> None:
    data = shape_json("--input", "28x28", "--pool", "avg", "--pool-size", "3", "--pool-stride",
                      "2", "--ceil-mode")  # fmt: skip
    assert data["stages"][0]["out_shape"] == [1, 14, 14]


def _layer_yaml(folder: Path, name: str, c_out: int, c_in: int) -> None:
    w = np.arange(c_out * c_in * 9, dtype=float).reshape(c_out, c_in, 3, 3) % 5 - 2
    (folder / name).write_text(
        f"description: test layer\nweights: {w.tolist()}\nbias: {[0.0] * c_out}\n",
        encoding="utf-8",
    )


def test_shape_vgg_block_from_a_pipeline(tmp_path: Path) -> None:
    _layer_yaml(tmp_path, "c1.yaml", 16, 3)
    _layer_yaml(tmp_path, "c2.yaml", 16, 16)
    write(
        tmp_path,
        "vgg.yaml",
        """
        name: vgg-block
        stages:
          - conv: {kernel: c1.yaml, padding: 1, activation: relu}
          - conv: {kernel: c2.yaml, padding: 1, activation: relu}
          - pool: {op: max, size: 2}
        """,
    )
    data = shape_json("vgg.yaml", "--input", "3x32x32")
    assert [s["out_shape"] for s in data["stages"]] == [[16, 32, 32], [16, 32, 32], [16, 16, 16]]
    assert [s["params"] for s in data["stages"]] == [16 * 27 + 16, 16 * 144 + 16, 0]
    assert [s["macs"] for s in data["stages"]] == [
        16 * 32 * 32 * 27, 16 * 32 * 32 * 144, 16 * 16 * 16 * 4
    ]  # fmt: skip
    assert [s["receptive_field"] for s in data["stages"]] == [[3, 3], [5, 5], [6, 6]]
    assert [s["effective_stride"] for s in data["stages"]] == [[1, 1], [1, 1], [2, 2]]
    result = invoke("shape", "vgg.yaml", "--input", "3x32x32")
    assert result.exit_code == 0, result.output
    assert "vgg-block: 3×32×32" in result.output and "total: 2,768 weights" in result.output


def test_shape_pipeline_with_gray_uses_one_channel() -> None:
    data = shape_json(str(REPO / "kernels" / "pipelines" / "tiny-edge-cnn.yaml"),
                      "--input", "3x64x64")  # fmt: skip
    assert data["in_shape"] == [1, 64, 64]
    assert data["out_shape"] == [3, 16, 16]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the input size with --input"),
        (("--input", "3x224"), "nothing to compute"),
        (("--input", "3xaxb", "--pool", "max"), "--input must be C×H×W"),
        (("--input", "3x9x9", "-k", "sobel", "--kernel-size", "3"), "not both"),
        (("--input", "3x9x9", "--out-channels", "4"), "--out-channels goes with --kernel-size"),
        (("--input", "3x4x4", "--kernel-size", "7", "--padding", "valid"),
         "stage 1 (conv 7×7): kernel 7×7"),
    ],
)  # fmt: skip
def test_shape_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple, message: str
) -> None:
    code, err = main_exit(monkeypatch, capsys, "shape", *args)
    assert code == 2
    assert message in err


def test_shape_pipeline_mismatch_names_stage_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _layer_yaml(tmp_path, "c.yaml", 4, 3)
    write(tmp_path, "p.yaml", "stages:\n  - conv: sobel\n  - conv: c.yaml\n")
    code, err = main_exit(monkeypatch, capsys, "shape", "p.yaml", "--input", "1x8x8")
    assert code == 2
    assert "p.yaml:3: stage 2 (conv c): layer kernel expects 3 input channels" in err
    assert "the input has 2 (coming from stage 1: 2×8×8)" in err


# --------------------------------------------------------------------------- explain: numbers

RNG = np.random.default_rng(3)
PATCH = RNG.integers(0, 256, size=(6, 7)).astype(np.float64)

CASES = [
    {"kernel": "sobel-x"},
    {"kernel": "sobel-x", "stride": 2},
    {"kernel": "sobel-x", "stride": (2, 1), "padding": "valid"},
    {"kernel": "laplacian", "dilation": 2, "pad_mode": "zeros"},
    {"kernel": "emboss", "flip": True, "bias": 0.5, "activation": "relu"},
    {"kernel": "box:4", "stride": 2, "padding": "same", "pad_mode": "replicate"},
    {"kernel": "gaussian:5:1", "padding": "full", "activation": "leaky-relu:0.2", "bias": -60},
    {"kernel": "sobel", "bias": (1.0, -2.0)},
]


def _conv_kwargs(case: dict) -> dict:
    return {k: v for k, v in case.items() if k != "kernel"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_explain_numbers_are_conv2d_numbers(case: dict) -> None:
    k = load_kernel(case["kernel"])
    walk = walkthrough(PATCH, k, **_conv_kwargs(case), pool=None)
    opts = {"stride": 1, "padding": "same", "dilation": 1, **_conv_kwargs(case)}
    want = conv2d(PATCH, k, **opts)
    want = want[None] if want.ndim == 2 else want
    np.testing.assert_array_equal(walk.output, want)
    # every output value, worked out by hand, equals conv2d's
    for m in range(want.shape[0]):
        for i in range(want.shape[1]):
            for j in range(want.shape[2]):
                hand = walkthrough(PATCH, k, **_conv_kwargs(case), pool=None, window=(i, j))
                if m == 0:
                    assert hand.window.value == pytest.approx(want[0, i, j], rel=1e-9, abs=1e-9)
    w = walk.window
    assert w.value == pytest.approx(float(walk.output[w.map, w.row, w.col]), abs=1e-9)
    assert w.total == pytest.approx(sum(float(t.products.sum()) for t in w.taps))


def test_explain_window_cells_come_from_the_padded_input() -> None:
    walk = walkthrough(PATCH, load_kernel("sobel-x"), stride=2, pool=None, window=(1, 2))
    (tap,) = walk.window.taps
    assert walk.window.rows == (2, 3, 4) and walk.window.cols == (4, 5, 6)
    np.testing.assert_array_equal(tap.values, walk.padded[0, 2:5, 4:7])
    np.testing.assert_array_equal(tap.products, tap.values * tap.weights)


def test_explain_layer_sums_over_channels() -> None:
    x = RNG.integers(0, 256, size=(3, 5, 5)).astype(np.float64)
    k = load_kernel(str(REPO / "kernels" / "rgb-layer.yaml"))
    walk = walkthrough(x, k, pool=None, window=(2, 3))
    assert len(walk.window.taps) == 3
    np.testing.assert_allclose(walk.output, conv2d(x, k, activation="relu"), rtol=1e-12)
    assert walk.window.value == pytest.approx(float(walk.output[0, 2, 3]))


@pytest.mark.parametrize(
    "pool",
    [
        {"pool": "max"},
        {"pool": "avg", "pool_size": 3, "pool_stride": 1},
        {"pool": "max", "pool_size": 3, "pool_stride": 2, "pool_padding": 1},
        {"pool": "avg", "pool_size": 2, "pool_padding": 1, "ceil_mode": True},
        {"pool": "avg", "pool_size": 3, "pool_padding": 1, "count_include_pad": False},
        {"pool": "min", "pool_size": (2, 3)},
        {"pool": "global-avg"},
    ],
    ids=str,
)
def test_explain_pool_numbers_are_pool2d_numbers(pool: dict) -> None:
    walk = walkthrough(PATCH, load_kernel("sobel-x"), activation="relu", **pool)
    p = walk.pool
    assert p is not None
    popts = {k.removeprefix("pool_"): v for k, v in pool.items() if k != "pool"}
    if "stride" in popts:
        popts["stride"] = popts["stride"]
    want = pool2d(walk.output, pool["pool"], **popts)
    np.testing.assert_array_equal(p.pooled, want)
    y = walk.output[0]
    for pw in p.windows:
        cells = y[np.ix_(pw.rows, pw.cols)]
        assert pw.value == float(want[0, pw.row, pw.col])
        if pool["pool"] == "max":
            assert pw.value == cells.max()
        elif pool["pool"] == "min":
            assert pw.value == cells.min()
        elif not walk.pool.geometry.padding[0] or not pool.get("count_include_pad", True):
            assert pw.value == pytest.approx(cells.mean())


def test_explain_json_output_equals_conv2d_of_its_input() -> None:
    result = invoke("explain", "-k", "sobel-x", "--stride", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    x = np.array(data["input"])
    want = conv2d(x, load_kernel("sobel-x"), stride=2)
    np.testing.assert_array_equal(np.array(data["output"]), want)
    assert data["window"]["value"] == want[0, data["window"]["row"], data["window"]["col"]]
    assert data["pool"]["output"] == pool2d(want, "max", size=2).tolist()
    assert data["formula"]["H"] == "floor((6 + 0+1 - 1·(3-1) - 1) / 2) + 1 = 3"


# --------------------------------------------------------------------------- explain: text


def _lines(result) -> list[str]:  # noqa: ANN001
    return result.output.splitlines()


def test_explain_default_walks_every_step_within_100_columns() -> None:
    result = invoke("explain")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "The input: a 6×6 patch", "samples/camera.png", "Padding: same", "The kernel: sobel-x",
        "Stride 1: which windows are visited", "One window", "products", "The output: 1×6×6",
        "Pooling: max pooling, 2×2 windows, stride 2", "with avg instead", "Sizes",
        "Channels: this patch has 1 channel",
    ):  # fmt: skip
        assert text in out, text
    assert all(len(line) <= 100 for line in _lines(result))


def test_explain_stride_two_text() -> None:
    result = invoke("explain", "-k", "sobel-x", "--stride", "2")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # undo line wrapping
    assert "padding='same' adds 1 row at the bottom and 1 column on the right" in out
    assert "With --padding valid it would add nothing and give 2×2 instead of 3×3" in out
    assert "visits rows 0, 2, 4 and columns 0, 2, 4: 3×3 = 9 windows" in out
    assert "sum: (-51) + 0 + 254 + (-90) + 0 + 506 + (-41) + 0 + 240 = 818" in out
    assert "→ output[1, 1] = 818 (conv2d computed 3.20784, ×255 = 818)" in out
    assert "A rows 0–1, cols 0–1: max(123, 726, 43, 818) = 818" in out
    assert "· = in no window: dropped" in out


def test_explain_overlapping_pool_and_bias_activation() -> None:
    result = invoke("explain", "--bias", "-0.4", "--activation", "relu", "--pool", "avg",
                    "--pool-size", "3", "--pool-stride", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert "windows overlap" in out and "(n) = the value is in n windows" in out
    assert "bias: " in out and "relu(" in out and "before activation" in out
    assert all(len(line) <= 100 for line in _lines(result))


def test_explain_a_bank_and_a_layer_say_how_they_treat_channels() -> None:
    bank = invoke("explain", "-k", "sobel", "--pool", "none")
    assert bank.exit_code == 0, bank.output
    assert "sobel is a bank of 2 2-D kernels" in bank.output and "map 1: sobel-y" in bank.output
    layer = invoke("explain", "-k", str(REPO / "kernels" / "rgb-layer.yaml"), "--size", "4")
    assert layer.exit_code == 0, layer.output
    assert "rgb-layer is a 4-D layer (2, 3, kh, kw)" in layer.output
    assert "sum over channels:" in layer.output
    assert all(len(line) <= 100 for line in _lines(layer))


def test_explain_from_an_image_file_at_a_place(tmp_path: Path) -> None:
    pixels = (np.arange(100).reshape(10, 10) * 2).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "ramp.png")
    result = invoke("explain", "--input", "ramp.png", "--size", "3", "--at", "2,4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["input"] == [pixels[2:5, 4:7].astype(float).tolist()]
    assert data["source"] == "ramp.png, rows 2–4, columns 4–6"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--size", "20"), "--size is at most 12"),
        (("--at", "1,1"), "--at picks a place in --input FILE"),
        (("--window", "9,9"), "window 9,9 is outside the 6×6 output"),
        (("-k", "nope"), "unknown kernel 'nope'"),
    ],
)
def test_explain_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple, message: str
) -> None:
    code, err = main_exit(monkeypatch, capsys, "explain", *args)
    assert code == 2
    assert message in err


def test_explain_finds_the_samples_of_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a non-editable install (pip install .) has no samples/ beside the package
    import convcli.pipeline.walk as walk

    monkeypatch.setattr(walk, "__file__", str(tmp_path / "site" / "convcli" / "pipeline" / "x.py"))
    (tmp_path / "clone" / "samples").mkdir(parents=True)
    shutil.copy(REPO / "samples" / "camera.png", tmp_path / "clone" / "samples")
    monkeypatch.chdir(tmp_path / "clone")
    patch, source = default_patch((6, 6))
    assert source.startswith("samples/camera.png, rows"), source
    monkeypatch.chdir(tmp_path)
    assert "synthetic" in default_patch((6, 6))[1]


def test_explain_falls_back_to_a_synthetic_patch(tmp_path: Path) -> None:
    patch, source = default_patch((4, 6), sample=tmp_path / "missing.png")
    np.testing.assert_array_equal(patch, synthetic_patch((4, 6)))
    assert "synthetic" in source
    walk = walkthrough(patch, load_kernel("sobel-x"), source=source, units=BYTE)
    data = walkthrough_json(walk)
    assert data["source"] == source and np.array(data["output"]).shape == (1, 4, 6)


def test_explain_renders_into_100_columns() -> None:
    import io

    from rich.console import Console

    k = Kernel("odd", np.array([[0.125, -1.5, 2], [0, 1, 0.333]]))
    walk = walkthrough(synthetic_patch((8, 8)), k, stride=(1, 2), pool="avg", pool_size=3)
    console = Console(width=100, file=io.StringIO(), color_system=None)
    console.print(explain(walk))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "The kernel: odd, 2×3" in text and "0.12" in text and "-1.50" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_num_formats_integers_as_integers() -> None:
    got = [num(v) for v in (818.0, -51.0, 0.5, 2 / 3, -1e-9)]
    assert got == ["818", "-51", "0.50", "0.67", "0"]
