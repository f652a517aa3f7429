"""Tiled runs whose ``auto`` mapping is known from the stages: one pass, the same pixels.

An integer image through stages that keep [0, 1] inside [0, 1]
(:func:`convcli.pipeline.hint.bounded_unit`) maps as an image, 0..1, whatever
the values: the tiled run writes it without a statistics pass. Each case runs
the whole-image path and the tiled one (tiles of 48 that do not divide the
image) and compares the pictures sample by sample; the one-pass file is also
compared byte by byte with the two-pass file the same run wrote before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli_convolve import pixels, run_main, save

from convcli.imageio import ImageData
from convcli.imageio.png import encode_png
from convcli.kernels import load_kernel
from convcli.kernels.model import Kernel
from convcli.pipeline import Pipeline, run
from convcli.pipeline.engine import CombineStage, ConvStage, PoolStage, bank_of
from convcli.pipeline.hint import bounded_unit, hint_of_stages
from convcli.run import tiles as run_tiles

H, W = 101, 130  # 48 divides neither
TILE = "48"


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    return save(tmp_path / "in.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def _npy(tmp_path: Path, name: str, weights: list[list[float]]) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, np.asarray(weights, dtype=np.float32))
    return str(path)


def _convolve(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    src: Path,
    out: Path,
    *args: Any,
) -> dict[str, Any]:
    code, stdout, err = run_main(monkeypatch, capsys, "convolve", src, *args, "-o", out, "--json")
    assert code == 0, err
    report: dict[str, Any] = json.loads(stdout)
    return report


def _whole_and_tiled(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    src: Path,
    tmp_path: Path,
    *args: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runs' reports, after checking their pictures are the same samples."""
    whole = _convolve(monkeypatch, capsys, src, tmp_path / "whole", *args)
    tiled = _convolve(monkeypatch, capsys, src, tmp_path / "tiled", *args, "--tile", TILE)
    assert "tiles" not in whole and tiled["tiles"]["tile"] == [48, 48]
    assert len(tiled["outputs"]) == len(whole["outputs"]) == 1
    a, b = Path(whole["outputs"][0]), Path(tiled["outputs"][0])
    assert a.name == b.name
    ref, got = pixels(a), pixels(b)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    assert tiled["mapping"] == whole["mapping"]
    return whole, tiled


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "gaussian:7"],
        ["-k", "box"],
        ["-k", "gaussian:7", "--pool", "max", "--pool-size", "3", "--pool-padding", "1"],
        ["-k", "gaussian:3", "-k", "gaussian:7:2", "--combine", "max"],
        ["-k", "box:5", "--pad-mode", "constant", "--pad-value", "0.8", "--activation", "relu"],
    ],
    ids=["gaussian", "box", "gaussian-maxpool", "bank-max", "box-constant-pad-relu"],
)
def test_bounded_pipelines_run_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rgb: Path,
    tmp_path: Path,
    args: list[str],
) -> None:
    whole, tiled = _whole_and_tiled(monkeypatch, capsys, rgb, tmp_path, *args)
    assert tiled["tiles"]["passes"] == 1
    assert tiled["mapping"]["range"] == "image" and tiled["mapping"]["text"].startswith("auto")
    # the report's statistics come from the write pass: those of the whole image
    for a, b in zip(whole["maps"], tiled["maps"], strict=True):
        assert 0 <= b["min"] <= b["max"] <= 1
        for key in ("min", "max", "mean"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6)
    # the file is the one the two-pass run wrote, byte for byte
    monkeypatch.setattr(run_tiles, "unit_input", lambda pipeline, reader: False)
    two = _convolve(monkeypatch, capsys, rgb, tmp_path / "two", *args, "--tile", TILE)
    assert two["tiles"]["passes"] == 2
    assert two["mapping"] == tiled["mapping"]
    assert Path(two["outputs"][0]).read_bytes() == Path(tiled["outputs"][0]).read_bytes()


@pytest.mark.parametrize("kind", ["rgba", "grey16", "gray-option"])
def test_other_integer_inputs_run_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kind: str,
) -> None:
    """Premultiplied alpha (divided back), 16-bit samples and luma keep [0, 1]."""
    rng = np.random.default_rng(8)
    args = ["-k", "gaussian:5"]
    if kind == "rgba":
        src = save(tmp_path / "in.png", rng.integers(0, 256, (H, W, 4), dtype=np.uint8))
    elif kind == "grey16":
        src = tmp_path / "in.png"
        src.write_bytes(
            encode_png(rng.integers(0, 65536, (1, H, W), dtype=np.uint16), bit_depth=16)
        )
        args += ["--bit-depth", "16"]
    else:
        src = save(tmp_path / "in.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        args.append("--gray")
    _, tiled = _whole_and_tiled(monkeypatch, capsys, src, tmp_path, *args)
    assert tiled["tiles"]["passes"] == 1
    assert tiled["mapping"]["range"] == "image"


def test_float_input_keeps_the_statistics_pass(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """An ``F`` image holds any values: its bound is not known from the stages."""
    values = np.random.default_rng(6).random((H, W), dtype=np.float32)
    src = save(tmp_path / "in.tif", values, "F")
    _, tiled = _whole_and_tiled(monkeypatch, capsys, src, tmp_path, "-k", "gaussian:7")
    assert tiled["tiles"]["passes"] == 2
    assert tiled["mapping"]["range"] == "image"  # decided from the values, as before
    src = save(tmp_path / "raw.tif", values * 50, "F")  # raw values far outside [0, 1]
    _, tiled = _whole_and_tiled(monkeypatch, capsys, src, tmp_path / "raw", "-k", "gaussian:7")
    assert tiled["tiles"]["passes"] == 2
    assert tiled["mapping"]["range"] == "nonneg"  # not 0..1: the values said so


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("negative", [[0.0, -0.1, 0.0], [0.3, 0.5, 0.3], [0.0, 0.0, 0.0]]),  # sums to 1
        ("gain", [[0.25, 0.25, 0.25], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]]),  # sums to 1.5
    ],
)
def test_unbounded_kernels_keep_the_statistics_pass(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rgb: Path,
    tmp_path: Path,
    name: str,
    weights: list[list[float]],
) -> None:
    kernel = _npy(tmp_path, name, weights)
    _, tiled = _whole_and_tiled(monkeypatch, capsys, rgb, tmp_path, "-k", kernel)
    assert tiled["tiles"]["passes"] == 2
    want = "image" if name == "negative" else "nonneg"
    assert tiled["mapping"]["range"] == want


def test_sobel_keeps_the_statistics_pass(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rgb: Path,
    tmp_path: Path,
) -> None:
    args = ("-k", "sobel-x")
    _, tiled = _whole_and_tiled(monkeypatch, capsys, rgb, tmp_path, *args)
    assert tiled["tiles"]["passes"] == 2
    assert tiled["mapping"]["range"] == "signed"


def test_clip_and_explicit_ranges_stay_one_pass_and_minmax_two(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rgb: Path,
    tmp_path: Path,
) -> None:
    for i, (mode, passes) in enumerate((("clip", 1), ("0.2,0.7", 1), ("minmax", 2))):
        _, tiled = _whole_and_tiled(
            monkeypatch, capsys, rgb, tmp_path / str(i), "-k", "gaussian:7", "--range", mode
        )
        assert tiled["tiles"]["passes"] == passes


def _layer(weights: np.ndarray) -> Kernel:
    return Kernel("layer", weights.astype(np.float32))


@pytest.mark.parametrize(
    ("stages", "bounded"),
    [
        ([ConvStage(load_kernel("gaussian:7"))], True),
        ([ConvStage(load_kernel("box"), pad_mode="zeros", activation="abs")], True),
        ([ConvStage(load_kernel("gaussian:5")), PoolStage("avg", 3, padding=1)], True),
        ([ConvStage(bank_of(["gaussian:3", "box"])), CombineStage("mean")], True),
        ([ConvStage(bank_of(["gaussian:3", "box"])), CombineStage("min")], True),
        ([ConvStage(_layer(np.full((2, 3, 3, 3), 1 / 27)))], True),  # summed over c_in too
        ([ConvStage(_layer(np.full((2, 3, 3, 3), 1 / 9)))], False),  # sums to 3
        ([ConvStage(load_kernel("gaussian:7"), activation="sigmoid")], False),
        ([ConvStage(load_kernel("gaussian:7"), activation="leaky-relu:0.1")], False),
        ([ConvStage(load_kernel("gaussian:7"), pad_mode="constant", pad_value=-0.5)], False),
        ([ConvStage(load_kernel("gaussian:7"), bias=(0.0, 0.0, 0.1))], False),
        ([ConvStage(bank_of(["gaussian:3", "box"])), CombineStage("sum")], False),
        ([ConvStage(load_kernel("sobel")), CombineStage("magnitude")], False),
        ([ConvStage(load_kernel("sharpen")), PoolStage("max", 2)], False),
        ([ConvStage(Kernel("half", np.full((3, 3), 1 / 18)))], True),  # bounded, hint nonneg
    ],
)
def test_bounded_unit_rules(stages: list[Any], bounded: bool) -> None:
    assert bounded_unit(stages) is bounded
    if bounded:  # the bound holds on the values: the extremes of [0, 1] inputs stay inside
        rng = np.random.default_rng(7)
        x = rng.integers(0, 2, (3, 31, 29)).astype(np.float32)  # only 0s and 1s: the extremes
        maps = run(Pipeline(tuple(stages), name="t"), ImageData(x, "RGB", "RGB", 8, "x")).maps
        assert maps is not None
        assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
        assert hint_of_stages(stages) in ("image", "nonneg")  # single pass needs "image" too
