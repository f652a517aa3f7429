"""The ``auto`` mapping and explicit ranges (convcli.imageio.tone), through the library and the CLI.

Pictures are judged by their numbers: a white image blurred stays white, a box blur keeps the
mean level, sharpening keeps or raises contrast, one hot pixel does not rescale a signed map,
explicit and percentile ranges land exactly where asked; the warnings fire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli import conv2d
from convcli.cli import app
from convcli.errors import ParameterError
from convcli.imageio import to_pixels, write_feature_maps
from convcli.imageio.tone import (
    EXACT_LIMIT,
    SAMPLE_SIZE,
    ToneMap,
    decide,
    parse_range,
    sample,
    tone_warnings,
)
from convcli.kernels import load_kernel
from convcli.kernels.model import Kernel
from convcli.pipeline import CombineStage, ConvStage, PoolStage
from convcli.pipeline.hint import hint_of_stages

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


def ok(*args: Any) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def levels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- hint


@pytest.mark.parametrize(
    ("stages", "hint"),
    [
        ([ConvStage(load_kernel("gaussian:7"))], "image"),
        ([ConvStage(load_kernel("box:5")), PoolStage("max", 2)], "image"),
        ([ConvStage(load_kernel("sharpen"))], "image"),
        ([ConvStage(load_kernel("emboss"))], "image"),
        ([PoolStage("avg", 2)], "image"),
        ([ConvStage(load_kernel("sharpen"), activation="relu")], "image"),
        ([ConvStage(load_kernel("gaussian"), bias=0.1)], "signed"),
        ([ConvStage(load_kernel("sobel"))], "signed"),
        ([ConvStage(load_kernel("laplacian")), PoolStage("max", 2)], "signed"),
        ([ConvStage(load_kernel("sobel"), activation="relu")], "nonneg"),
        ([ConvStage(load_kernel("sobel"), activation="abs")], "nonneg"),
        ([ConvStage(load_kernel("sobel"), activation="sigmoid")], "nonneg"),
        ([ConvStage(load_kernel("sobel"), activation="tanh")], "signed"),
        ([ConvStage(load_kernel("sobel"), activation="leaky-relu")], "signed"),
        ([ConvStage(load_kernel("sobel")), CombineStage("magnitude")], "nonneg"),
        ([ConvStage(load_kernel("kirsch")), CombineStage("max")], "signed"),
        ([ConvStage(Kernel("ones", np.ones((3, 3))))], "nonneg"),  # non-negative, sums to 9
        ([ConvStage(Kernel("grey", np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)))],
         "image"),  # a 4-D layer whose output sums to 1 over its inputs
        ([ConvStage(Kernel("l", np.random.default_rng(0).normal(size=(4, 3, 3, 3))))], "signed"),
    ],
)  # fmt: skip
def test_hint_of_stages(stages: list, hint: str) -> None:
    assert hint_of_stages(stages) == hint


# --------------------------------------------------------------------------- auto


def test_round_off_above_one_is_not_a_reason_to_rescale() -> None:
    x = np.full((3, 40, 40), 1.0000001, np.float32)
    px, m = to_pixels(x, hint="image")
    assert (px == 255).all() and m.kind == "image" and m.clipped_fraction == 0.0
    px, m = to_pixels(x)  # no hint: the numbers say image too
    assert (px == 255).all() and m.kind == "image"


def test_white_image_blurred_stays_white_in_the_library() -> None:
    white = np.ones((3, 32, 32), np.float32)
    k = load_kernel("gaussian:7")
    y = conv2d(white, k)
    px, m = to_pixels(y, hint=hint_of_stages([ConvStage(k)]))
    assert (px == 255).all() and m.kind == "image"


def test_white_image_blurred_stays_white_through_the_cli(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), (255, 255, 255)).save("white.png")
    out = ok("convolve", "white.png", "-k", "gaussian:7", "-o", "w.png").stdout
    assert (levels(Path("w.png")) == 255).all()
    assert "auto → image, clip to [0, 1]" in out


def test_box_blur_keeps_the_mean_brightness_within_one_level() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(77, 256, (64, 64)).astype(np.uint8)
    img[20:40, 20:40] = 255  # the white square on levels 77-255
    Image.fromarray(img).save("in.png")
    ok("convolve", "in.png", "-k", "box:5", "-o", "b.png", "-q")
    assert abs(levels(Path("b.png")).mean() - img.mean()) <= 1.0


def test_sharpen_keeps_or_raises_the_contrast_of_a_photo() -> None:
    photo = SAMPLES / "chelsea.jpg"
    ok("convolve", photo, "-k", "sharpen", "-o", "s.png", "-q")
    with Image.open(photo) as im:
        before = np.asarray(im.convert("RGB")).astype(np.float64)
    after = levels(Path("s.png"))
    assert after.std() >= before.std()
    assert abs(after.mean() - before.mean()) < 3  # sharpening does not shift brightness


def test_sharpened_values_are_clipped_like_other_tools() -> None:
    x = np.array([[[-0.2, 0.0, 0.5, 1.0, 1.3]]])
    px, m = to_pixels(x, hint="image")
    assert px.tolist() == [[[0, 0, 128, 255, 255]]]
    assert m.kind == "image" and m.clipped_fraction == pytest.approx(2 / 5)


def test_one_hot_pixel_does_not_change_the_scale_of_a_signed_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (1, 200, 200)).astype(np.float32)
    _, m0 = to_pixels(x, hint="signed")
    hot = x.copy()
    hot[0, 50, 50] = 40.0
    px, m1 = to_pixels(hot, hint="signed")
    assert m1.kind == "signed" and m1.lo == -m1.hi
    assert m1.hi == pytest.approx(m0.hi, rel=0.01)  # one value of 40 000 barely moves it
    assert px[0, 50, 50] == 255 and abs(int(px[0, 10, 10]) - 128) < 128
    _, mm = to_pixels(hot, range_mode="minmax")
    assert mm.hi == pytest.approx(40.0)  # what min-max would have done


def test_signed_map_puts_zero_at_mid_grey_and_the_robust_scale_at_the_ends() -> None:
    x = np.linspace(-1, 1, 1001)
    px, m = to_pixels(x, hint="signed")
    s = np.percentile(np.abs(x), 99.5)
    assert (m.lo, m.hi) == pytest.approx((-s, s))
    assert px[500] == 128 and px[0] == 0 and px[-1] == 255
    expected = np.floor(np.clip(0.5 + x / (2 * s), 0, 1) * 255 + 0.5)
    assert np.array_equal(px, expected)
    assert m.clipped_fraction == pytest.approx(np.mean(np.abs(x) > s + 0.5 * 2 * s / 255))


def test_nonneg_map_puts_zero_at_black_and_the_robust_top_at_white() -> None:
    x = np.abs(np.random.default_rng(1).normal(size=5000))
    x[7] = 1000.0
    px, m = to_pixels(x, hint="nonneg")
    top = np.percentile(x, 99.5)
    assert (m.kind, m.lo, m.hi) == ("nonneg", 0.0, pytest.approx(top))
    assert px[7] == 255 and px.min() == 0


def test_signed_hint_without_negative_values_maps_as_nonneg() -> None:
    m = decide(np.array([0.0, 1.0, 2.0]), hint="signed")
    assert m.kind == "nonneg" and m.lo == 0.0


def test_image_hint_far_outside_the_picture_scale_falls_back() -> None:
    raw = np.linspace(0, 4000, 100)  # a raw I;16 image blurred: not on [0, 1]
    m = decide(raw, hint="image")
    assert m.kind == "nonneg" and "far outside" in m.basis


def test_all_zero_signed_map_is_mid_grey_and_nonneg_black() -> None:
    assert to_pixels(np.zeros(4), hint="signed")[0].tolist() == [128] * 4
    assert to_pixels(np.zeros(4), hint="nonneg")[0].tolist() == [0] * 4


def test_large_arrays_use_a_bounded_deterministic_sample() -> None:
    x = np.random.default_rng(2).normal(size=EXACT_LIMIT + 10)
    s1, s2 = sample(x), sample(x)
    assert s1.size == SAMPLE_SIZE and np.array_equal(s1, s2)
    m = decide(x, hint="signed")
    assert m.hi == pytest.approx(np.percentile(np.abs(x), 99.5), rel=0.03)
    assert "sample" in m.basis
    assert sample(np.arange(10.0)).size == 10


# --------------------------------------------------------------------------- explicit ranges


def test_explicit_range_maps_exactly() -> None:
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    px, m = to_pixels(x, range_mode="-1,1")
    assert (m.kind, m.lo, m.hi) == ("explicit", -1.0, 1.0)
    assert px.tolist() == [0, 0, 128, 191, 255, 255]
    assert m.clipped_fraction == pytest.approx(2 / 6)


def test_percentile_range_maps_exactly() -> None:
    x = np.arange(101.0)  # percentile p of 0..100 is p itself
    px, m = to_pixels(x, range_mode="p10,p90")
    assert (m.kind, m.lo, m.hi) == ("percentile", 10.0, 90.0)
    expected = np.floor(np.clip((x - 10) / 80, 0, 1) * 255 + 0.5)
    assert np.array_equal(px, expected)
    assert m.clipped_fraction == pytest.approx(20 / 101)


def test_ranges_through_the_cli_land_exactly(tmp_path: Path) -> None:
    grey = np.random.default_rng(4).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(grey).save("g.png")
    ok("convolve", "g.png", "-k", "sobel-x", "-o", "e.npy", "-q")
    x = np.load("e.npy")[0].astype(np.float64)
    ok("convolve", "g.png", "-k", "sobel-x", "-o", "a.png", "--range", "-1,1", "-q")
    want = np.floor(np.clip((x + 1) / 2, 0, 1) * 255 + 0.5)
    assert np.abs(levels(Path("a.png")) - want).max() <= 1
    ok("convolve", "g.png", "-k", "sobel-x", "-o", "p.png", "--range", "p1,p99", "-q")
    lo, hi = np.percentile(x, [1, 99])
    want = np.floor(np.clip((x - lo) / (hi - lo), 0, 1) * 255 + 0.5)
    assert np.abs(levels(Path("p.png")) - want).max() <= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loud", "unknown range mode"),
        ("1,1", "below the second"),
        ("2,1", "below the second"),
        ("p1,99", "two percentiles"),
        ("p-1,p50", "between p0 and p100"),
        ("p1,p101", "between p0 and p100"),
        ("1,2,3", "unknown range mode"),
        ("nan,1", "finite"),
    ],
)
def test_bad_ranges_are_parameter_errors(text: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_range(text)


def test_bad_range_on_the_cli_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    Image.new("L", (8, 8)).save("g.png")
    result = CliRunner().invoke(app, ["convolve", "g.png", "-k", "box", "--range", "3,1"], env=ENV)
    assert result.exit_code == 2 and "below the second" in result.output
    assert not Path("convcli-out").exists()


# --------------------------------------------------------------------------- scope


def test_each_file_gets_its_own_mapping_by_default(tmp_path: Path) -> None:
    blur_and_edge = np.stack([np.full((8, 8), 0.5), np.tile(np.linspace(-4, 4, 8), (8, 1))])
    res = write_feature_maps(
        blur_and_edge, out=tmp_path, stem="s", name="k", layout="maps", labels=["a", "b"]
    )
    assert [m.kind for m in res.mappings] == ["image", "signed"]
    assert (levels(res.paths[0]) == 128).all()  # the blur member is not forced to mid-grey
    shared = write_feature_maps(
        blur_and_edge, out=tmp_path / "i", stem="s", name="k", layout="maps",
        labels=["a", "b"], range_scope="input",
    )  # fmt: skip
    assert shared.mappings[0] == shared.mappings[1] and shared.mapping.kind == "signed"


def test_channels_of_one_colour_file_share_one_mapping(tmp_path: Path) -> None:
    rgb = np.stack([np.linspace(-1, 1, 16), np.linspace(-2, 2, 16), np.zeros(16)])[:, None, :]
    res = write_feature_maps(rgb, out=tmp_path, stem="s", name="k")
    (m,) = res.mappings
    px, whole = to_pixels(rgb)
    assert m == whole
    assert np.array_equal(np.moveaxis(levels(res.paths[0]), -1, 0), px)


# --------------------------------------------------------------------------- text, warnings


def test_report_text_says_what_auto_decided() -> None:
    _, m = to_pixels(np.linspace(-1, 1, 1001), hint="signed")
    s = np.percentile(np.abs(np.linspace(-1, 1, 1001)), 99.5)
    assert m.text().startswith(f"auto → signed, 0 = mid-grey, ±{s:.4g} = black/white (99.5th")
    assert m.text().endswith("% clipped")


def test_warning_every_map_all_zero_names_bias_and_relu(tmp_path: Path) -> None:
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (16, 16), np.uint8)).save("g.png")
    out = ok("convolve", "g.png", "-k", "sobel-x", "--bias", "-50", "--activation", "relu",
             "-o", "z.png").stdout  # fmt: skip
    flat = " ".join(out.split())
    assert "warning: every map is all zero: likely the bias (-50)" in flat
    assert "before relu" in flat
    assert (levels(Path("z.png")) == 0).all()


def test_warning_heavy_clipping_and_few_levels() -> None:
    stats = [(0.0, 1.0)]
    warned = tone_warnings(stats, [ToneMap("explicit", 0.3, 0.2, 0.4, "0.2,0.4", levels=200)])
    assert warned == ["the mapping clipped 30 % of values (try --range p0.5,p99.5 or minmax)"]
    few = tone_warnings(stats, [ToneMap("explicit", 0.0, -100.0, 100.0, "-100,100", levels=3)])
    assert "only 3 grey levels" in few[0] and "-100,100" in few[0]
    assert tone_warnings(stats, [ToneMap("signed", 0.005, -1.0, 1.0, levels=256)]) == []


def test_warning_some_maps_constant() -> None:
    warned = tone_warnings([(0.0, 0.0), (0.0, 1.0)], [], labels=["x", "y"])
    assert warned == ["1 of 2 maps are constant (x)"]


def test_levels_are_counted_for_the_few_levels_warning() -> None:
    _, m = to_pixels(np.linspace(0, 1, 50), range_mode="-100,100")
    assert m.levels <= 3  # 127, 128, 129: a warning's worth
    _, m = to_pixels(np.linspace(0, 1, 1000))
    assert m.levels == 256
