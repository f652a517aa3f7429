"""``convcli convolve`` on real image files, as a user runs it.

Three ways in: the click app through ``CliRunner`` (success paths, files and
values), :func:`convcli.cli.main` in-process (the error → exit code mapping),
and the installed console script in a subprocess (stdin/stdout with binary
data, the red error line, ``--traceback``). Every test works in its own
``tmp_path``; expected values are worked out from the input pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli import conv2d
from convcli.cli import app, main
from convcli.imageio import read_image
from convcli.kernels import load_kernel

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "kernels"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


# --------------------------------------------------------------------------- helpers


def cli(*args: Any, input: bytes | None = None):  # noqa: ANN201 - click's Result
    """Run the click app in-process (errors that reach main() are not mapped here)."""
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV, input=input)


def ok(*args: Any) -> Any:
    """``cli`` that must succeed."""
    result = cli(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: Any
) -> tuple[int, str, str]:
    """Run the console-script entry point in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["convcli", *(str(a) for a in args)])
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, err


def convcli_exe() -> list[str]:
    """The installed ``convcli`` script beside this Python, else ``python -m convcli``."""
    script = Path(sys.executable).with_name("convcli")
    if script.exists():
        return [str(script)]
    found = shutil.which("convcli")
    return [found] if found else [sys.executable, "-m", "convcli"]


def sh(
    *args: Any, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``convcli`` in a subprocess (bytes in, bytes out)."""
    full_env = {**os.environ, **ENV, **(env or {})}
    return subprocess.run(
        [*convcli_exe(), *(str(a) for a in args)],
        cwd=cwd, input=stdin, capture_output=True, env=full_env, timeout=120,
    )  # fmt: skip


def save(path: Path, array: np.ndarray, mode: str | None = None, **options: Any) -> Path:
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(path, **options)
    return path


def pixels(path: Path) -> np.ndarray:
    """A png's samples as (H, W[, C]) ints."""
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def rgb_array(h: int = 9, w: int = 11, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own empty folder (default output: ./convcli-out)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def rgb_png(tmp_path: Path) -> Path:
    return save(tmp_path / "rgb.png", rgb_array())


@pytest.fixture
def grey_png(tmp_path: Path) -> Path:
    return save(tmp_path / "grey.png", rgb_array()[..., 1])


# --------------------------------------------------------------------------- input modes


def _rgba() -> np.ndarray:
    a = rgb_array()
    alpha = np.random.default_rng(1).integers(0, 256, a.shape[:2], dtype=np.uint8)
    alpha[0, :3] = 0  # some fully transparent pixels
    return np.dstack([a, alpha])


def _make_input(kind: str, folder: Path) -> tuple[Path, str]:
    """Write one input file; return it and the png mode identity should give back."""
    a = rgb_array()
    if kind == "1":
        return save(folder / "bilevel.png", a[..., 0] > 127), "L"
    if kind == "L":
        return save(folder / "l.png", a[..., 0]), "L"
    if kind == "LA":
        return save(folder / "la.png", _rgba()[..., [0, 3]], "LA"), "LA"
    if kind == "P":
        Image.fromarray(a).quantize(16).save(folder / "p.png")
        return folder / "p.png", "RGB"
    if kind == "P-transparent":
        Image.fromarray(a).quantize(16).save(folder / "pt.png", transparency=0)
        return folder / "pt.png", "RGBA"
    if kind == "RGB":
        return save(folder / "rgb.png", a), "RGB"
    if kind == "RGBA":
        return save(folder / "rgba.png", _rgba(), "RGBA"), "RGBA"
    if kind == "CMYK-jpeg":
        Image.fromarray(a).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
        return folder / "cmyk.jpg", "RGB"
    if kind in ("jpeg", "tiff", "bmp", "gif", "webp"):
        ext = {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
        options = {"lossless": True} if kind == "webp" else {}
        return save(folder / f"photo.{ext}", a, **options), "RGB"
    raise AssertionError(kind)


INPUT_KINDS = [
    "1", "L", "LA", "P", "P-transparent", "RGB", "RGBA", "CMYK-jpeg",
    "jpeg", "tiff", "bmp", "gif", "webp",
]  # fmt: skip


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_identity_gives_back_the_decoded_pixels_for_every_8bit_mode_and_format(
    kind: str, tmp_path: Path
) -> None:
    src, mode = _make_input(kind, tmp_path)
    ok("convolve", src, "-k", "identity", "-o", "out.png", "-q")
    with Image.open(src) as im:
        expected = np.asarray(im.convert(mode)).astype(np.int64)  # Pillow's own decode
    with Image.open("out.png") as out:
        assert out.mode == mode
        got = np.asarray(out).astype(np.int64)
    if mode.endswith("A"):  # premultiplied: colour under alpha 0 carries no information
        seen = expected[..., -1] > 0
        assert not seen.all()
        np.testing.assert_array_equal(got[..., -1], expected[..., -1])
        np.testing.assert_array_equal(got[seen], expected[seen])
    else:
        np.testing.assert_array_equal(got, expected)


def test_16bit_grey_png_keeps_its_precision_with_bit_depth_16(tmp_path: Path) -> None:
    ramp = (np.arange(7 * 9, dtype=np.uint16) * 1031 + 7).reshape(7, 9)  # not multiples of 257
    save(tmp_path / "deep.png", ramp)
    with Image.open("deep.png") as im:
        assert im.mode == "I;16"
    ok("convolve", "deep.png", "-k", "identity", "-o", "d16.png", "--bit-depth", "16", "-q")
    with Image.open("d16.png") as im:
        assert im.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(im), ramp)
    ok("convolve", "deep.png", "-k", "identity", "-o", "d8.png", "-q")  # default: 8-bit
    np.testing.assert_array_equal(pixels(Path("d8.png")), np.floor(ramp / 65535 * 255 + 0.5))


def test_16bit_blur_is_computed_on_16bit_data(tmp_path: Path) -> None:
    ramp = (np.arange(8 * 8, dtype=np.uint16) * 997).reshape(8, 8)
    save(tmp_path / "deep.png", ramp)
    ok("convolve", "deep.png", "-k", "gaussian:3", "-o", "b.png", "--bit-depth", "16", "-q")
    expected = conv2d(ramp[None] / 65535.0, load_kernel("gaussian:3"))[0]
    got = read_image("b.png")[0]
    assert np.abs(got - expected).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize(
    ("mode", "values"),
    [
        ("I", np.array([[-70000, 0, 5], [123456, 7, -1]], dtype=np.int32)),
        ("F", np.array([[-1.5, 0.25, 3.75e4], [1e-3, -2.0, 0.0]], dtype=np.float32)),
    ],
)
def test_i_and_f_tiffs_keep_raw_values_through_a_float_tiff(
    mode: str, values: np.ndarray, tmp_path: Path
) -> None:
    save(tmp_path / "raw.tif", values, mode)
    result = ok("convolve", "raw.tif", "-k", "identity", "-o", "out.tif", "--json")
    assert json.loads(result.stdout)["channels"] == "L"
    with Image.open("out.tif") as im:
        assert im.mode == "F"
        np.testing.assert_array_equal(np.asarray(im), values.astype(np.float32))


def test_box_blur_of_a_constant_image_stays_constant_with_every_edge_mode(tmp_path: Path) -> None:
    save(tmp_path / "flat.png", np.full((6, 8, 3), (77, 140, 203), np.uint8))
    for pad_mode in ("reflect", "symmetric", "replicate", "circular"):
        ok("convolve", "flat.png", "-k", "box:5", "--pad-mode", pad_mode, "-o", f"{pad_mode}.png")
        got = pixels(Path(f"{pad_mode}.png"))
        assert (got == (77, 140, 203)).all(), pad_mode
    ok("convolve", "flat.png", "-k", "box:3", "--pad-mode", "zeros", "-o", "zeros.png")
    got = pixels(Path("zeros.png"))
    assert (got[1:-1, 1:-1] == (77, 140, 203)).all()
    np.testing.assert_array_equal(got[0, 0], np.floor(np.array([77, 140, 203]) * 4 / 9 + 0.5))


def test_premultiplied_alpha_blur_has_no_halo_from_bright_transparent_pixels(
    tmp_path: Path,
) -> None:
    img = np.zeros((20, 20, 4), np.uint8)
    img[..., :3] = 255  # transparent pixels hold bright white
    img[5:15, 5:15] = (200, 0, 0, 255)  # an opaque red square
    save(tmp_path / "sticker.png", img, "RGBA")
    ok("convolve", "sticker.png", "-k", "box:5", "-o", "pm.png")
    ok("convolve", "sticker.png", "-k", "box:5", "-o", "drop.png", "--alpha", "drop")
    pm, drop = pixels(Path("pm.png")), pixels(Path("drop.png"))
    assert pm.shape == (20, 20, 4) and drop.shape == (20, 20, 3)
    # near the edge, premultiplied colour stays the square's red; alpha fades out
    for col, alpha in ((4, 102), (5, 153), (6, 204), (10, 255)):
        np.testing.assert_array_equal(pm[10, col], (200, 0, 0, alpha))
    # dropping alpha blurs the hidden white in: a pink halo
    assert drop[10, 5, 1] > 90 and drop[10, 5, 2] > 90
    assert (pm[5:15, 5:15, 1:3] == 0).all()


def test_gray_converts_with_itu_601_luma_first(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "identity", "--gray", "-o", "g.png")
    a = rgb_array().astype(np.float64) / 255
    luma = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    np.testing.assert_array_equal(pixels(Path("g.png")), np.floor(luma * 255 + 0.5))


# --------------------------------------------------------------------------- output formats


def test_tiff_is_float32_and_reads_back_exactly_like_npy(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "sobel-x", "-o", "e.tif", "-q")
    ok("convolve", rgb_png, "-k", "sobel-x", "-o", "e.npy", "-q")
    stack = np.load("e.npy")
    assert stack.dtype == np.float32 and stack.shape == (3, 9, 11)
    assert stack.min() < 0 < stack.max()  # raw, signed values: no pixel mapping
    with Image.open("e.tif") as im:
        assert im.mode == "F" and getattr(im, "n_frames", 1) == 3
    np.testing.assert_array_equal(read_image("e.tif"), stack)
    expected = conv2d(read_image(rgb_png), load_kernel("sobel-x"))
    np.testing.assert_allclose(stack, expected, atol=1e-6)


def test_format_option_and_folder_output_use_the_format_extension(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "box", "--format", "tiff", "-o", "maps", "-q")
    ok("convolve", rgb_png, "-k", "box", "--format", "npy", "-o", "maps", "-q")
    assert sorted(p.name for p in Path("maps").iterdir()) == ["rgb.box.npy", "rgb.box.tif"]


def test_npz_holds_maps_labels_and_the_run_parameters(rgb_png: Path) -> None:
    ok(
        "convolve", rgb_png, "-k", "sobel", "--stride", "2", "--padding", "1",
        "--activation", "relu", "-o", "s.npz", "-q",
    )  # fmt: skip
    with np.load("s.npz") as z:
        assert sorted(z.files) == ["labels", "maps", "params"]
        maps = z["maps"]
        labels = z["labels"].tolist()
        params = json.loads(str(z["params"]))
    assert maps.shape == (6, 5, 6) and maps.dtype == np.float32 and maps.min() >= 0
    assert labels == [f"sobel-{a}.{c}" for a in "xy" for c in "RGB"]
    conv = params["stages"][0]["conv"]
    assert conv["kernel"] == "sobel" and conv["shape"] == [2, 3, 3]
    assert conv["stride"] == [2, 2]  # numbers, not the option text "2"
    assert conv["padding"] == [1, 1, 1, 1]
    assert conv["activation"] == "relu"
    assert params["alpha"] == "premultiply" and params["dtype"] == "float32"


def test_png_16_bit_holds_the_float_values_to_1_in_65535(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "gaussian", "--bit-depth", "16", "-o", "g16.png", "-q")
    ok("convolve", rgb_png, "-k", "gaussian", "-o", "g.npy", "-q")
    assert Path("g16.png").read_bytes()[24] == 16  # IHDR bit depth
    assert np.abs(read_image("g16.png") - np.load("g.npy")).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("policy", ["clip", "minmax", "abs", "offset", "auto"])
def test_range_policies_map_floats_to_the_promised_pixels(policy: str, grey_png: Path) -> None:
    ok("convolve", grey_png, "-k", "sobel-x", "-o", "e.npy", "-q")
    x = np.load("e.npy")[0].astype(np.float64)
    result = ok("convolve", grey_png, "-k", "sobel-x", "-o", "e.png", "--range", policy, "--json")
    mapping = json.loads(result.stdout)["mapping"]
    if policy == "clip":
        v = np.clip(x, 0, 1)
        assert mapping["clipped_fraction"] == pytest.approx(np.mean((x < 0) | (x > 1)))
    elif policy == "minmax":
        v = (x - x.min()) / (x.max() - x.min())
    elif policy == "auto":  # was minmax (old rule); now a zero-sum kernel's result is signed
        m = np.percentile(np.abs(x), 99.5)
        v = np.clip(0.5 + x / (2 * m), 0, 1)
        assert mapping["range"] == "signed" and mapping["hi"] == pytest.approx(m, rel=1e-5)
    elif policy == "abs":
        a = np.abs(x)
        v = (a - a.min()) / (a.max() - a.min())
    else:
        v = 0.5 + x / (2 * np.abs(x).max())
    assert mapping["range"] == ("signed" if policy == "auto" else policy)
    got = pixels(Path("e.png"))
    assert np.abs(got - np.floor(v * 255 + 0.5)).max() <= 1  # float32 vs float64 rounding
    assert np.mean(got == np.floor(v * 255 + 0.5)) > 0.95
    if policy == "offset":
        zero = np.abs(x) < 1e-9
        assert zero.any() and (got[zero] == 128).all()


def test_auto_range_maps_a_blur_like_an_image(rgb_png: Path) -> None:
    # was "identity" (old rule: values in [0, 1]); a blur's result is an image now by its kernel
    result = ok("convolve", rgb_png, "-k", "gaussian", "-o", "g.png", "--json")
    assert json.loads(result.stdout)["mapping"]["range"] == "image"


# --------------------------------------------------------------------------- layouts


def listing(folder: str | Path = "convcli-out") -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def test_2d_kernel_on_rgb_writes_one_rgb_png(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "gaussian")
    assert listing() == ["rgb.gaussian.png"]
    with Image.open("convcli-out/rgb.gaussian.png") as im:
        assert im.mode == "RGB" and im.size == (11, 9)


def test_builtin_bank_writes_one_file_per_kernel(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "sobel", "-o", "o")
    assert listing("o") == ["rgb.sobel.sobel-x.png", "rgb.sobel.sobel-y.png"]
    for name in listing("o"):
        with Image.open(Path("o", name)) as im:
            assert im.mode == "RGB"


def test_several_k_form_one_bank_in_the_given_order(grey_png: Path) -> None:
    result = ok("convolve", grey_png, "-k", "sobel-x", "-k", "laplacian", "-k", "box:5", "--json")
    report = json.loads(result.stdout)
    assert report["out_shape"] == [3, 9, 11]
    assert [m["name"] for m in report["maps"]] == ["sobel-x:L", "laplacian:L", "box:5:L"]
    stem = "grey.sobel-x+laplacian+box_5"
    assert listing() == sorted(f"{stem}.{k}.png" for k in ("sobel-x", "laplacian", "box_5"))
    ok("convolve", grey_png, "-k", "sobel-x", "-k", "laplacian", "-k", "box:5", "-o", "b.npy")
    stack = np.load("b.npy")
    x = read_image(grey_png)
    for i, name in enumerate(("sobel-x", "laplacian", "box:5")):
        np.testing.assert_allclose(stack[i], conv2d(x, load_kernel(name))[0], atol=1e-6)


def test_4d_layer_kernel_writes_one_grey_file_per_map_with_the_layer_values(
    rgb_png: Path,
) -> None:
    layer = KERNELS / "rgb-layer.yaml"
    ok("convolve", rgb_png, "-k", layer, "-o", "o")
    assert listing("o") == ["rgb.rgb-layer.0.png", "rgb.rgb-layer.1.png"]
    for name in listing("o"):
        with Image.open(Path("o", name)) as im:
            assert im.mode == "L" and im.size == (11, 9)
    ok("convolve", rgb_png, "-k", layer, "-o", "layer.npy")
    maps = np.load("layer.npy")
    a = read_image(rgb_png).astype(np.float64)
    luma = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]  # map 0: centre-tap luma, relu
    np.testing.assert_allclose(maps[0], luma, atol=1e-6)
    assert maps.shape == (2, 9, 11) and maps.min() >= 0


def test_montage_adds_one_grid_image(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "sobel", "-o", "o", "--montage")
    assert listing("o") == [
        "rgb.sobel.montage.png", "rgb.sobel.sobel-x.png", "rgb.sobel.sobel-y.png"
    ]  # fmt: skip
    with Image.open("o/rgb.sobel.montage.png") as im:
        assert im.width > 2 * 11 and im.height > 9  # six tiles with labels


def test_montage_beside_a_named_file(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "gaussian", "-o", "pics/blur.png", "--montage")
    assert listing("pics") == ["blur.montage.png", "blur.png"]


# --------------------------------------------------------------------------- -o and names


def test_o_names_the_file_and_its_extension_picks_the_format(rgb_png: Path) -> None:
    for name in ("a.png", "b.tif", "c.tiff", "d.npy", "e.npz"):
        ok("convolve", rgb_png, "-k", "box", "-o", f"sub/{name}", "-q")
    assert listing("sub") == ["a.png", "b.tif", "c.tiff", "d.npy", "e.npz"]
    with Image.open("sub/c.tiff") as im:
        assert im.mode == "F"
    assert not Path("convcli-out").exists()


def test_o_with_a_bank_needs_a_folder(
    rgb_png: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "convolve", rgb_png, "-k", "sobel", "-o", "x.png")
    # known before any image is read: a usage error, as for two inputs to one file
    assert code == 2 and "writes 2 maps" in err and "give a folder" in err
    assert not Path("x.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "blurred.gif"], "cannot write gif files"),  # was .jpg, before jpeg output
        (["-o", "b.png", "--format", "npy"], "disagree"),
        (["-o", "-", "--montage"], "--montage needs a folder"),
    ],
)
def test_o_that_cannot_be_honoured_is_a_usage_error(
    args: list[str],
    message: str,
    rgb_png: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "convolve", rgb_png, "-k", "box", *args)
    assert code == 2 and message in err
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["rgb.png"]


def test_output_names_are_sanitised_kernel_specs(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "gaussian:5:1.5")
    assert listing() == ["rgb.gaussian_5_1.5.png"]


# --------------------------------------------------------------------------- the report


def test_json_report_has_every_field_with_the_right_numbers(rgb_png: Path) -> None:
    result = ok("convolve", rgb_png, "-k", "sobel", "--stride", "2", "--pool", "max", "--json")
    r = json.loads(result.stdout)
    assert result.stderr == ""
    assert r["input"] == str(rgb_png) and r["channels"] == "RGB"
    assert r["in_shape"] == [3, 9, 11] and r["out_shape"] == [6, 2, 3]
    conv, pool = r["stages"]
    assert conv["in_shape"] == [3, 9, 11] and conv["out_shape"] == [6, 5, 6]
    # same, stride 2: out = ceil(in / 2); total padding 2 on H (1 + 1), 2 on W (1 + 1)
    assert conv["formula"]["H"].endswith("= 5") and conv["formula"]["W"].endswith("= 6")
    assert conv["padding"] == {"top": 1, "bottom": 1, "left": 1, "right": 1}
    assert conv["params"] == 18 and conv["macs"] == 6 * 5 * 6 * 9
    assert conv["receptive_field"] == [3, 3] and conv["effective_stride"] == [2, 2]
    assert conv["options"]["stride"] == [2, 2]
    assert pool["formula"]["H"] == "floor((5 + 0 - 2) / 2) + 1 = 2"
    assert pool["receptive_field"] == [5, 5] and pool["effective_stride"] == [4, 4]
    assert pool["params"] == 0
    assert r["total_params"] == 18
    assert r["total_macs"] == conv["macs"] + pool["macs"]
    assert pool["warnings"] and any("unused" in w or "ignore" in w for w in r["warnings"])
    assert [m["name"] for m in r["maps"]] == [f"sobel-{a}:{c}" for a in "xy" for c in "RGB"]
    assert all(m["min"] <= m["mean"] <= m["max"] for m in r["maps"])
    assert r["outputs"] == [
        "convcli-out/rgb.sobel-maxpool.sobel-x.png", "convcli-out/rgb.sobel-maxpool.sobel-y.png"
    ]  # fmt: skip
    # was one shared minmax mapping (old auto); now each file is mapped on its own: signed
    # (0 at mid-grey), or non-negative where max pooling left no negative value
    assert [m["file"] for m in r["mappings"]] == r["outputs"]
    maps = {m["name"]: m for m in r["maps"]}
    for m, axis in zip(r["mappings"], "xy", strict=True):
        lows = [maps[f"sobel-{axis}:{c}"]["min"] for c in "RGB"]
        assert m["range"] == ("signed" if min(lows) < 0 else "nonneg")
        assert m["lo"] == (-m["hi"] if m["range"] == "signed" else 0)
        top = max(max(-maps[f"sobel-{axis}:{c}"]["min"], maps[f"sobel-{axis}:{c}"]["max"])
                  for c in "RGB")  # fmt: skip
        assert 0 < m["hi"] <= top
    assert r["dry_run"] is False
    assert all(Path(p).is_file() for p in r["outputs"])


def test_json_maps_match_the_written_npy(rgb_png: Path) -> None:
    result = ok("convolve", rgb_png, "-k", "laplacian", "-o", "l.npy", "--json")
    stack = np.load("l.npy")
    for m, arr in zip(json.loads(result.stdout)["maps"], stack, strict=True):
        assert m["min"] == pytest.approx(float(arr.min()))
        assert m["max"] == pytest.approx(float(arr.max()))
        assert m["mean"] == pytest.approx(float(arr.mean(dtype=np.float64)), abs=1e-7)


def test_rich_report_tells_shapes_formulas_mapping_and_files(rgb_png: Path) -> None:
    out = ok("convolve", rgb_png, "-k", "sobel", "--stride", "2", "--pool", "max").stdout
    for text in (
        "rgb.png: 3×9×11 RGB",
        "conv sobel (bank of 2, 3×3)",
        "max pool 2×2",
        "6×5×6",
        "6×2×3",
        "floor((9 + 2·1 - 1·(3-1) - 1) / 2) + 1 = 5",
        "padding top 1, bottom 1, left 1, right 1 (reflect)",
        "receptive field 5 px, effective stride 4",
        "png mappings, one per file:",  # was "png mapping: minmax:" (old auto, one mapping)
        "auto → signed, 0 = mid-grey",
        "wrote 2 files:",
        "convcli-out/rgb.sobel-maxpool.sobel-x.png",
        "sobel-y:B",
    ):
        assert text in out, text


def test_dry_run_reports_and_writes_nothing(rgb_png: Path) -> None:
    result = ok("convolve", rgb_png, "-k", "sobel", "--montage", "--dry-run")
    assert "would write 3 files" in result.stdout
    assert "convcli-out/rgb.sobel.montage.png" in result.stdout
    assert not Path("convcli-out").exists()
    r = json.loads(ok("convolve", rgb_png, "-k", "sobel", "--dry-run", "--json").stdout)
    assert r["dry_run"] is True and "maps" not in r and len(r["outputs"]) == 2
    assert r["out_shape"] == [6, 9, 11]
    assert not Path("convcli-out").exists()


def test_quiet_prints_nothing_on_success(rgb_png: Path) -> None:
    result = ok("convolve", rgb_png, "-k", "box", "-q")
    assert result.stdout == "" and result.stderr == ""
    assert listing() == ["rgb.box.png"]


def test_preview_draws_half_blocks(rgb_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, as far as Rich can tell
    out = ok("convolve", rgb_png, "-k", "box", "--preview").stdout
    assert out.count("▀") >= 9 * 11 // 2  # one half block per two pixels


def test_preview_off_a_terminal_says_so(rgb_png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = ok("convolve", rgb_png, "-k", "box", "--preview").stdout
    assert "▀" not in out and "--preview draws in a terminal" in out


def test_dry_run_reports_an_output_the_real_run_would_refuse(rgb_png: Path) -> None:
    ok("convolve", rgb_png, "-k", "box")
    result = cli("convolve", rgb_png, "-k", "box", "--dry-run")
    assert result.exit_code == 1
    assert "rgb.box.png exists (use --force" in result.output
    assert ok("convolve", rgb_png, "-k", "box", "--dry-run", "--force").exit_code == 0


# --------------------------------------------------------------------------- overwriting


def test_existing_output_is_refused_untouched_then_overwritten_with_force(
    rgb_png: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("old.png").write_bytes(b"precious")
    code, _, err = run_main(monkeypatch, capsys, "convolve", rgb_png, "-k", "box", "-o", "old.png")
    assert code == 1
    assert err == "error: old.png exists (use --force to overwrite or --skip-existing to resume)\n"
    assert Path("old.png").read_bytes() == b"precious"
    ok("convolve", rgb_png, "-k", "box", "-o", "old.png", "--force", "-q")
    assert pixels(Path("old.png")).shape == (9, 11, 3)


def test_a_bank_writes_none_of_its_files_when_one_exists(rgb_png: Path) -> None:
    Path("o").mkdir()
    Path("o/rgb.sobel.sobel-y.png").write_bytes(b"old")
    result = cli("convolve", rgb_png, "-k", "sobel", "-o", "o")
    assert result.exit_code == 1
    assert listing("o") == ["rgb.sobel.sobel-y.png"]  # no partial output, no temp files


def test_the_input_is_never_overwritten_even_with_force(
    rgb_png: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = rgb_png.read_bytes()
    code, _, err = run_main(
        monkeypatch, capsys, "convolve", rgb_png, "-k", "box", "-o", rgb_png, "--force"
    )
    assert code == 1 and "is an input; refusing to overwrite it" in err
    assert rgb_png.read_bytes() == before


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stride", "0"], "stride must be >= 1, got 0"),
        (["--stride", "a"], "stride must be a whole number"),
        (["--padding", "-2"], "padding must not be negative"),
        (["--padding", "middle"], "padding must be valid, same, full"),
        (["--dilation", "0"], "dilation must be >= 1"),
        (["--pad-mode", "mirror"], "pad mode must be one of zeros, constant, reflect"),
        (["--activation", "swish"], "swish"),
        (["--bias", "x"], "bias must be a number"),
        (["--pool", "max", "--pool-size", "0"], "pool size must be >= 1"),
        (["--pool", "avg", "--pool-size", "2", "--pool-padding", "2"], "at most half"),
        (["--bit-depth", "12"], "8 or 16"),
        (["--groups", "0"], "--groups"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_bad_option_values_exit_2_with_one_line_and_write_nothing(
    args: list[str],
    message: str,
    rgb_png: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "convolve", rgb_png, "-k", "box", *args)
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert "Traceback" not in err and "internal error" not in err
    assert not Path("convcli-out").exists()


def test_unknown_kernel_exits_2_with_a_did_you_mean(
    rgb_png: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "convolve", rgb_png, "-k", "sobelx")
    assert code == 2
    assert err.strip() == (
        "error: unknown kernel 'sobelx' (did you mean 'sobel-x'?); see `convcli kernels list`"
    )


def test_missing_kernel_option_is_usage(
    rgb_png: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "convolve", rgb_png)
    assert code == 2 and "Missing option '--kernel'" in err and "convcli convolve --help" in err


def test_no_arguments_shows_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys)
    assert code == 2 and "convolve" in out + err and "Usage" in out + err


def test_version_and_help_exit_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(monkeypatch, capsys, "--version")
    assert code == 0 and out.startswith("convcli ")
    code, out, _ = run_main(monkeypatch, capsys, "convolve", "--help")
    assert code == 0 and "--kernel" in out


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["missing.png", "-k", "box"], "missing.png: no such file"),
        ("tiny", ["tiny.png", "-k", "box:3", "--padding", "valid"], "larger than the padded input"),
        ("broken", ["broken.png", "-k", "box"], "broken.png: not an image Pillow can read"),
        ("truncated", ["cut.png", "-k", "box"], "cut.png: "),
        ("empty", ["empty.png", "-k", "box"], "empty.png: empty file"),
        ("rgb", ["rgb.png", "-k", str(KERNELS / "layer2.yaml")], "rgb.png: "),
    ],
)
def test_failing_inputs_exit_1_with_one_line_naming_the_file(
    setup: str | None,
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if setup == "tiny":
        save(tmp_path / "tiny.png", np.full((1, 1), 9, np.uint8))
    elif setup == "broken":
        (tmp_path / "broken.png").write_bytes(b"this is not an image")
    elif setup == "truncated":
        save(tmp_path / "full.png", rgb_array(40, 40))
        data = (tmp_path / "full.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    elif setup == "empty":
        (tmp_path / "empty.png").write_bytes(b"")
    elif setup == "rgb":
        save(tmp_path / "rgb.png", rgb_array())
    code, out, err = run_main(monkeypatch, capsys, "convolve", *args)
    assert code == 1, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not Path("convcli-out").exists()


def test_a_kernel_on_a_1x1_image_with_same_padding_still_works(tmp_path: Path) -> None:
    save(tmp_path / "dot.png", np.full((1, 1), 200, np.uint8))
    ok("convolve", "dot.png", "-k", "box:3", "--pad-mode", "replicate", "-o", "d.png")
    assert pixels(Path("d.png")).tolist() == [[200]]


# --------------------------------------------------------------------------- the real script


def test_script_stdin_to_stdout_carries_binary_png(tmp_path: Path) -> None:
    src = save(tmp_path / "rgb.png", rgb_array())
    proc = sh("convolve", "-", "-k", "identity", "-o", "-", cwd=tmp_path, stdin=src.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "piped.png"
    out.write_bytes(proc.stdout)
    np.testing.assert_array_equal(pixels(out), rgb_array())
    assert b"- (stdout)" in proc.stderr  # the report moved to stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piped.png", "rgb.png"]


def test_script_stdin_to_a_folder_names_the_output_stdin(tmp_path: Path) -> None:
    src = save(tmp_path / "rgb.png", rgb_array())
    proc = sh("convolve", "-", "-k", "box", "-o", "o", "-q", cwd=tmp_path, stdin=src.read_bytes())
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    assert listing(tmp_path / "o") == ["stdin.box.png"]


def test_script_stdout_tiff_and_npy_are_binary_too(tmp_path: Path) -> None:
    src = save(tmp_path / "rgb.png", rgb_array())
    proc = sh("convolve", src, "-k", "box", "-o", "-", "--format", "npy", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    import io

    arr = np.load(io.BytesIO(proc.stdout))
    assert arr.shape == (3, 9, 11) and arr.dtype == np.float32


def test_script_errors_are_one_red_line_with_the_right_exit_code(tmp_path: Path) -> None:
    save(tmp_path / "rgb.png", rgb_array())
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.run(
        [*convcli_exe(), "convolve", "missing.png", "-k", "box"],
        cwd=tmp_path, capture_output=True, env={**env, "FORCE_COLOR": "1", "COLUMNS": "100"},
    )  # fmt: skip
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "\x1b[1;31merror:" in err and "missing.png: no such file" in err
    proc = sh("convolve", "rgb.png", "-k", "box", "--stride", "0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.decode() == "error: stride must be >= 1, got 0\n"
    proc = sh("convolve", "rgb.png", "-k", "box", "--pad-mode", "bad", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.decode().count("\n") == 1
    assert proc.stdout == b""


def test_script_traceback_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"junk")
    proc = sh("convolve", "broken.png", "-k", "box", cwd=tmp_path)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    proc = sh("convolve", "broken.png", "-k", "box", "--traceback", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in err and "ImageError" in err
    proc = sh("convolve", "rgb.png", "-k", "nope", "--traceback", cwd=tmp_path)
    assert proc.returncode == 2 and "KernelError" in proc.stderr.decode()  # same exit code


def test_script_runs_on_a_sample_photo(tmp_path: Path) -> None:
    sample = REPO / "samples" / "chelsea.jpg"
    proc = sh("convolve", sample, "-k", "sobel", "--stride", "2", "--pool", "max", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "3×300×451" in out and "6×75×113" in out and "wrote 2 files" in out
    for name in ("chelsea.sobel-maxpool.sobel-x.png", "chelsea.sobel-maxpool.sobel-y.png"):
        with Image.open(tmp_path / "convcli-out" / name) as im:
            assert im.size == (113, 75) and im.mode == "RGB"
            assert np.asarray(im).std() > 5  # a picture, not a flat field


# --------------------------------------------------------------------------- the gallery


def test_gallery_pictures_are_small_and_show_something() -> None:
    gallery = sorted((REPO / "docs" / "gallery").glob("*.png"))
    assert len(gallery) >= 4
    assert sum(p.stat().st_size for p in gallery) < 600_000
    for path in gallery:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"), dtype=np.float64)
            # a montage of a trained layer's 16 maps needs 4 tiles a row
            assert im.width <= (480 if "montage" in path.name else 256), path.name
        assert 20 < a.mean() < 235 and a.std() > 10, path.name  # not flat black/white


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_script_ctrl_c_exits_130_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [*convcli_exe(), "convolve", "-", "-k", "box", "-o", "out"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **ENV},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        # wait until it is blocked reading stdin (past start-up), not a fixed time:
        # under load start-up alone can take longer than any fixed sleep
        wchan = Path(f"/proc/{proc.pid}/wchan")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if wchan.exists() and "pipe" in wchan.read_text():
                break
            time.sleep(0.05)
        else:
            time.sleep(1.5)  # no /proc: fall back to a fixed wait
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert err == b"error: interrupted\n" and out == b""
    assert not (tmp_path / "out").exists()


def test_json_keeps_text_readable(rgb_png: Path) -> None:
    """Formulas stay as written (``·``), not ``\\u00b7`` escapes, and still parse."""
    raw = ok("convolve", rgb_png, "-k", "box", "--json").stdout
    assert "1·(3-1)" in raw and "\\u00b7" not in raw
    assert json.loads(raw)["stages"][0]["formula"]["H"].startswith("floor((9 + 2·1 - 1·(3-1) - 1)")


def test_script_exit_flushes_everything_and_keeps_exit_codes(tmp_path: Path) -> None:
    """The script ends without the interpreter's teardown: what it printed to a pipe
    arrives whole, the exit code is main's, and an escaping exception still shows."""
    vgg = REPO / "kernels" / "pipelines" / "vgg16.yaml"
    done = sh("shape", vgg, "--input", "3x224x224", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # complete JSON: every byte was flushed
    assert report["total_params"] == 14_714_688 and len(report["stages"]) == 18
    bad = sh("convolve", "missing.png", "-k", "box", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.decode().strip() == "error: missing.png: no such file"
    usage = sh("convolve", "x.png", "-k", "box", "--stride", "0", cwd=tmp_path)
    assert usage.returncode == 2 and usage.stderr.decode().count("\n") == 1


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["kernels", "show"], "Missing argument 'NAME'"),
        (["run"], "Missing argument 'PIPELINE'"),
        (["convolve"], "Missing argument 'INPUT'"),
        (["convolve", "x.png"], "Missing option '--kernel' / '-k'"),
        (["kernels", "validate"], "Missing argument 'FILE'"),
    ],
)
def test_a_missing_argument_is_a_usage_error_naming_it(
    tmp_path: Path, args: list[str], named: str
) -> None:
    done = sh(*args, cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith(f"error: {named}.") and err.count("\n") == 1, err
