"""``convcli pool`` (and ``convolve --pool``) on real image files: values, shapes, errors.

Inputs are tiny 8-bit ramps whose pooled values can be worked out by hand;
results are read back from npy files (exact float32 of ``pixel / 255``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli_convolve import ok, pixels, run_main, save, sh

# 5×5 grey ramp: value = 10 * (5 * row + col)
RAMP = (np.arange(25).reshape(5, 5) * 10).astype(np.uint8)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "ramp.png", RAMP)


def pooled(*args: str) -> np.ndarray:
    """Run ``convcli pool ramp.png ARGS -o p.npy`` and return the maps in 0..255 units."""
    Path("p.npy").unlink(missing_ok=True)
    ok("pool", "ramp.png", *args, "-o", "p.npy", "-q")
    return np.load("p.npy").astype(np.float64) * 255


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("max", [[60, 80], [160, 180]]),
        ("avg", [[30, 50], [130, 150]]),
        ("min", [[0, 20], [100, 120]]),
        ("global-max", [[240]]),
        ("global-avg", [[120]]),
    ],
)
def test_every_op_with_defaults(op: str, expected: list[list[int]]) -> None:
    np.testing.assert_allclose(pooled("--op", op)[0], expected, atol=1e-4)


def test_default_op_is_max_2x2() -> None:
    np.testing.assert_allclose(pooled()[0], [[60, 80], [160, 180]], atol=1e-4)


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("max", [[60, 80, 90], [160, 180, 190], [210, 230, 240]]),
        ("min", [[0, 20, 40], [100, 120, 140], [200, 220, 240]]),
        # the last, partial windows average only the pixels they hold
        ("avg", [[30, 50, 65], [130, 150, 165], [205, 225, 240]]),
    ],
)
def test_ceil_mode_keeps_the_last_partial_window(op: str, expected: list[list[int]]) -> None:
    np.testing.assert_allclose(pooled("--op", op, "--ceil-mode")[0], expected, atol=1e-4)


def test_overlapping_windows_when_stride_is_smaller_than_size() -> None:
    got = pooled("--op", "max", "--size", "3", "--stride", "1")[0]
    expected = [[RAMP[r : r + 3, c : c + 3].max() for c in range(3)] for r in range(3)]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_rectangular_window_and_stride() -> None:
    got = pooled("--op", "avg", "--size", "1,5", "--stride", "2,1")[0]
    np.testing.assert_allclose(got[:, 0], RAMP[::2].mean(axis=1), atol=1e-4)
    assert got.shape == (3, 1)


def test_avg_padding_counts_zeros_unless_told_not_to() -> None:
    with_pad = pooled("--op", "avg", "--size", "3", "--stride", "2", "--padding", "1")[0]
    # top-left window: padding + [[0, 10], [50, 60]]
    assert with_pad[0, 0] == pytest.approx(120 / 9, abs=1e-4)
    without = pooled(
        "--op", "avg", "--size", "3", "--stride", "2", "--padding", "1", "--no-count-include-pad"
    )[0]  # fmt: skip
    assert without[0, 0] == pytest.approx(120 / 4, abs=1e-4)
    assert with_pad[1, 1] == without[1, 1] == pytest.approx(RAMP[1:4, 1:4].mean(), abs=1e-4)


def test_max_padding_is_minus_infinity() -> None:
    got = pooled("--op", "max", "--size", "2", "--stride", "2", "--padding", "1")[0]
    np.testing.assert_allclose(got, [[0, 20, 40], [100, 120, 140], [200, 220, 240]], atol=1e-4)
    got = pooled("--op", "min", "--size", "2", "--padding", "1")[0]
    np.testing.assert_allclose(got[0], [0, 10, 30], atol=1e-4)  # +inf: padding never wins


def test_same_padding_gives_ceil_of_in_over_stride() -> None:
    assert pooled("--op", "max", "--size", "2", "--padding", "same").shape == (1, 3, 3)


def test_rgb_pools_each_channel_and_writes_rgb(tmp_path: Path) -> None:
    rgb = np.stack([RAMP, 240 - RAMP, np.full_like(RAMP, 7)], axis=-1)
    save(tmp_path / "rgb.png", rgb)
    ok("pool", "rgb.png", "--op", "max", "-o", "out.png")
    got = pixels(Path("out.png"))
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got[..., 0], [[60, 80], [160, 180]])
    np.testing.assert_array_equal(got[..., 1], [[240, 220], [140, 120]])
    assert (got[..., 2] == 7).all()


def test_avg_pool_of_rgba_has_no_halo_and_drop_drops_alpha(tmp_path: Path) -> None:
    img = np.zeros((8, 8, 4), np.uint8)
    img[..., :3] = 255  # invisible white
    img[2:6, 3:6] = (200, 0, 0, 255)  # an opaque red block, its left edge mid-window
    save(tmp_path / "sticker.png", img, "RGBA")
    ok("pool", "sticker.png", "--op", "avg", "-o", "pm.png")
    pm = pixels(Path("pm.png"))
    np.testing.assert_array_equal(pm[1, 1], (200, 0, 0, 128))  # half covered: red, half opaque
    np.testing.assert_array_equal(pm[1, 2], (200, 0, 0, 255))
    ok("pool", "sticker.png", "--op", "avg", "-o", "drop.png", "--alpha", "drop")
    drop = pixels(Path("drop.png"))
    assert drop.shape == (4, 4, 3)
    np.testing.assert_array_equal(drop[1, 1], (228, 128, 128))  # the hidden white bleeds in
    ok("pool", "sticker.png", "--op", "max", "-o", "max.png")
    np.testing.assert_array_equal(pixels(Path("max.png"))[1, 1], (255, 255, 255, 255))


def test_convolve_then_pool_equals_pooling_the_convolution(tmp_path: Path) -> None:
    ok("convolve", "ramp.png", "-k", "sobel-x", "-o", "conv.npy", "-q")
    ok("convolve", "ramp.png", "-k", "sobel-x", "--pool", "max", "--ceil-mode", "-o", "cp.npy")
    conv, both = np.load("conv.npy")[0], np.load("cp.npy")[0]
    expected = [[conv[r : r + 2, c : c + 2].max() for c in (0, 2, 4)] for r in (0, 2, 4)]
    np.testing.assert_allclose(both, expected, atol=1e-6)
    ok("convolve", "ramp.png", "-k", "box", "--pool", "avg", "--pool-size", "3", "-o", "ap.npy")
    ok("convolve", "ramp.png", "-k", "box", "-o", "b.npy")
    b = np.load("b.npy")[0]
    assert np.load("ap.npy")[0, 0, 0] == pytest.approx(b[:3, :3].mean(), abs=1e-6)


def test_json_report_of_a_pool() -> None:
    result = ok(
        "pool", "ramp.png", "--op", "avg", "--size", "3", "--stride", "2", "--padding", "1",
        "--ceil-mode", "--json", "-o", "p.png",
    )  # fmt: skip
    r = json.loads(result.stdout)
    (stage,) = r["stages"]
    assert stage["kind"] == "pool" and stage["name"] == "avgpool"
    assert stage["formula"] == {
        "H": "ceil((5 + 2·1 - 3) / 2) + 1 = 3", "W": "ceil((5 + 2·1 - 3) / 2) + 1 = 3"
    }  # fmt: skip
    assert stage["padding"] == {"top": 1, "bottom": 1, "left": 1, "right": 1}
    assert stage["params"] == 0 and stage["receptive_field"] == [3, 3]
    assert stage["effective_stride"] == [2, 2]
    assert r["out_shape"] == [1, 3, 3] and r["outputs"] == ["p.png"]
    assert r["mapping"]["range"] == "image"  # was "identity" (old auto rule)


def test_rich_report_of_a_pool_uses_the_pool_formula() -> None:
    out = ok("pool", "ramp.png", "--op", "max", "--ceil-mode", "-o", "p.png").stdout
    assert "out = floor((in + pads - k) / stride) + 1" in out
    assert "ceil instead of floor" in out
    assert "H, W: ceil((5 + 0 - 2) / 2) + 1 = 3" in out
    assert "max pool 2×2" in out and "ceil mode" in out


def test_unused_rows_are_warned_about() -> None:
    r = json.loads(ok("pool", "ramp.png", "--json", "-o", "p.png").stdout)
    assert r["warnings"] and "stage 1 (maxpool)" in r["warnings"][0]


def test_output_names_and_formats(tmp_path: Path) -> None:
    ok("pool", "ramp.png", "--op", "global-avg", "-q")
    ok("pool", "ramp.png", "--op", "avg", "--format", "tiff", "-q")
    assert sorted(p.name for p in Path("convcli-out").iterdir()) == [
        "ramp.avgpool.tif", "ramp.global-avg.png"
    ]  # fmt: skip
    with Image.open("convcli-out/ramp.avgpool.tif") as im:
        assert im.mode == "F"
        np.testing.assert_allclose(np.asarray(im) * 255, [[30, 50], [130, 150]], atol=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "0"], "pool size must be >= 1, got 0"),
        (["--size", "2,2,2"], "pool size takes one or two values"),
        (["--stride", "0"], "pool stride must be >= 1"),
        (["--padding", "-1"], "padding must not be negative"),
        (["--size", "2", "--padding", "2"], "at most half the window"),
        (["--op", "median"], "got 'median'"),
    ],
)
def test_bad_pool_options_exit_2_with_one_line(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "pool", "ramp.png", *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0], err
    assert not Path("convcli-out").exists()


def test_a_window_larger_than_the_image_fails_that_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    save(tmp_path / "dot.png", np.full((1, 1), 5, np.uint8))
    code, _, err = run_main(monkeypatch, capsys, "pool", "dot.png", "--size", "3")
    assert code == 1
    assert err == "error: dot.png: pool window 3×3 is larger than the padded input 1×1\n"
    ok("pool", "dot.png", "--size", "3", "--ceil-mode", "--padding", "1", "-q")  # fits now


def test_script_pool_stdin_to_stdout(tmp_path: Path) -> None:
    proc = sh(
        "pool", "-", "--op", "avg", "-o", "-", "--format", "npy", cwd=tmp_path,
        stdin=(tmp_path / "ramp.png").read_bytes(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    import io

    got = np.load(io.BytesIO(proc.stdout))[0] * 255
    np.testing.assert_allclose(got, [[30, 50], [130, 150]], atol=1e-4)
