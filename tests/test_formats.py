"""Output formats (jpeg, webp, tiff compression, keep), colour maps, thresholds, the montage
colour bar and the preview."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app, main
from convcli.errors import ParameterError
from convcli.imageio import binarize, montage_image, read_image, to_pixels, write_feature_maps
from convcli.imageio.colormaps import apply_colormap, colormap_name, lut
from convcli.vocab import Colormap

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def ok(*args: Any) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: Any
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["convcli", *(str(a) for a in args)])
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, " ".join(err.split())


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def photo() -> np.ndarray:
    """A smooth RGB picture (3, 64, 96) in [0, 1]: lossy codecs keep it close."""
    y, x = np.mgrid[0:64, 0:96] / 64.0
    return np.stack([0.5 + 0.4 * np.sin(3 * x), 0.5 + 0.4 * np.cos(2 * y), (x + y) / 3])


# --------------------------------------------------------------------------- jpeg / webp


@pytest.mark.parametrize(("fmt", "ext", "pil"), [("jpeg", "jpg", "JPEG"), ("webp", "webp", "WEBP")])
def test_lossy_formats_decode_close_to_the_picture(tmp_path: Path, fmt, ext, pil) -> None:
    maps = photo().astype(np.float32)
    res = write_feature_maps(maps, out=tmp_path, stem="p", name="k", fmt=fmt)
    assert res.paths == [tmp_path / f"p.k.{ext}"] and res.mapping.kind == "image"
    with Image.open(res.paths[0]) as im:
        assert im.format == pil and im.mode == "RGB" and im.size == (96, 64)
    back = read_image(res.paths[0])
    assert np.abs(back - maps).mean() < 3 / 255


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_the_size(tmp_path: Path, fmt: str) -> None:
    noisy = np.random.default_rng(0).random((3, 96, 96)).astype(np.float32)
    sizes = []
    for q in (20, 95):
        res = write_feature_maps(noisy, out=tmp_path / str(q), stem="n", name="k", fmt=fmt,
                                 quality=q)  # fmt: skip
        sizes.append(res.paths[0].stat().st_size)
    assert sizes[0] < sizes[1] * 0.7


def test_grey_webp_and_alpha(tmp_path: Path) -> None:
    res = write_feature_maps(photo()[:1], out=tmp_path, stem="g", name="k", fmt="webp")
    assert read_image(res.paths[0]).shape[1:] == (64, 96)
    rgba = np.concatenate([photo(), np.full((1, 64, 96), 0.5)])
    res = write_feature_maps(rgba, out=tmp_path, stem="a", name="k", fmt="webp")
    with Image.open(res.paths[0]) as im:
        assert im.mode == "RGBA"


def test_jpeg_refuses_alpha_and_16_bits(tmp_path: Path) -> None:
    rgba = np.concatenate([photo(), np.ones((1, 64, 96))])
    with pytest.raises(ParameterError, match="no transparency"):
        write_feature_maps(rgba, out=tmp_path, stem="a", name="k", fmt="jpeg")
    with pytest.raises(ParameterError, match="8-bit"):
        write_feature_maps(photo(), out=tmp_path, stem="a", name="k", fmt="jpeg", bit_depth=16)
    with pytest.raises(ParameterError, match="quality"):
        write_feature_maps(photo(), out=tmp_path, stem="a", name="k", fmt="jpeg", quality=0)
    assert list(tmp_path.iterdir()) == []


def test_cli_o_jpg_writes_a_jpeg(tmp_path: Path) -> None:
    ok("convolve", SAMPLES / "chelsea.jpg", "-k", "gaussian", "-o", "b.jpg", "-q")
    ok("convolve", SAMPLES / "chelsea.jpg", "-k", "gaussian", "-o", "b.jpeg", "-q",
       "--quality", "30")  # fmt: skip
    ok("convolve", SAMPLES / "chelsea.jpg", "-k", "gaussian", "-o", "b.png", "-q")
    with Image.open("b.jpg") as im:
        assert im.format == "JPEG"
    assert Path("b.jpeg").stat().st_size < Path("b.jpg").stat().st_size
    assert Path("b.jpg").stat().st_size * 2 < Path("b.png").stat().st_size


def test_cli_bad_quality_is_a_usage_error(monkeypatch, capsys) -> None:
    src = SAMPLES / "camera.png"
    code, _, err = run_main(monkeypatch, capsys, "convolve", src, "-k", "box", "-o", "x.jpg",
                            "--quality", "101")  # fmt: skip
    assert code == 2 and "--quality" in err and not Path("x.jpg").exists()
    code, _, err = run_main(monkeypatch, capsys, "convolve", src, "-k", "box", "-o", "x.jpg",
                            "--bit-depth", "16")  # fmt: skip
    assert code == 2 and "8-bit" in err and not Path("x.jpg").exists()


def test_format_keep_keeps_each_inputs_format(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pic = (photo() * 255).astype(np.uint8).transpose(1, 2, 0)
    Image.fromarray(pic).save(folder / "a.jpg")
    Image.fromarray(pic).save(folder / "b.png")
    Image.fromarray(pic).save(folder / "c.webp")
    Image.fromarray(pic).save(folder / "d.bmp")
    ok("convolve", folder, "-k", "box", "--format", "keep", "-o", "out", "-q", "--workers", "1")
    names = sorted(p.name for p in Path("out").iterdir())
    assert names == ["a.box.jpg", "b.box.png", "c.box.webp", "d.box.png"]
    with Image.open("out/a.box.jpg") as im:
        assert im.format == "JPEG"


# --------------------------------------------------------------------------- tiff


@pytest.mark.parametrize("compression", ["lzw", "deflate"])
def test_tiff_compression_is_lossless_and_smaller(tmp_path: Path, compression: str) -> None:
    maps = np.tile(np.linspace(-1, 1, 64, dtype=np.float32), (2, 64, 1))
    plain = write_feature_maps(maps, out=tmp_path / "p", stem="t", name="k", fmt="tiff",
                               layout="maps")  # fmt: skip
    packed = write_feature_maps(maps, out=tmp_path / "c", stem="t", name="k", fmt="tiff",
                                layout="maps", compression=compression)  # fmt: skip
    for a, b in zip(plain.paths, packed.paths, strict=True):
        assert b.stat().st_size < a.stat().st_size
        with Image.open(b) as im:
            np.testing.assert_array_equal(np.asarray(im), maps[0])


def test_cli_tiff_compression(tmp_path: Path) -> None:
    ok("convolve", SAMPLES / "camera.png", "-k", "sobel-x", "-o", "e.tif", "--compression",
       "deflate", "-q")  # fmt: skip
    with Image.open("e.tif") as im:
        assert im.info.get("compression") == "tiff_adobe_deflate"


# --------------------------------------------------------------------------- colour maps

MATPLOTLIB = {name: name for name in Colormap.choices()} | {"rdbu": "RdBu"}


@pytest.mark.parametrize("name", Colormap.choices())
def test_lut_matches_matplotlib_within_one_level(name: str) -> None:
    mpl = pytest.importorskip("matplotlib")
    want = mpl.colormaps[MATPLOTLIB[name]](np.linspace(0, 1, 256))[:, :3] * 255
    got = lut(name).astype(np.float64)
    assert got.shape == (256, 3)
    assert np.abs(got - want).max() <= 1.0


def test_colormap_names_and_errors() -> None:
    assert colormap_name("RdBu") == "rdbu" and colormap_name("grey") == "gray"
    with pytest.raises(ParameterError, match="colour map must be one of gray, viridis"):
        colormap_name("jet")


def test_apply_colormap_maps_levels_through_the_table() -> None:
    levels = np.array([[0, 128, 255]], np.uint8)
    rgb = apply_colormap(levels, "viridis")
    assert rgb.shape == (3, 1, 3)
    assert rgb[:, 0, 2].tolist() == lut("viridis")[255].tolist()


def test_cmap_writes_rgb_for_one_channel_and_leaves_colour_alone(tmp_path: Path) -> None:
    edge = np.tile(np.linspace(-1, 1, 32), (1, 8, 1))
    res = write_feature_maps(edge, out=tmp_path, stem="e", name="k", cmap="coolwarm")
    px, _ = to_pixels(edge)
    with Image.open(res.paths[0]) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), lut("coolwarm")[px[0]])
    assert res.mapping.cmap == "coolwarm" and "colour map coolwarm" in res.mapping.text()
    colour = write_feature_maps(photo(), out=tmp_path, stem="c", name="k", cmap="viridis")
    np.testing.assert_allclose(read_image(colour.paths[0]), photo(), atol=0.5 / 255 + 1e-7)
    assert colour.notes and "one-channel" in colour.notes[0]


def test_cmap_with_16_bits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="8-bit"):
        write_feature_maps(photo()[:1], out=tmp_path, stem="e", name="k", cmap="magma",
                           bit_depth=16)  # fmt: skip


def test_montage_colour_bar_shows_the_shared_range() -> None:
    maps = np.stack([np.tile(np.linspace(-2, 2, 64), (32, 1)), np.zeros((32, 64))])
    plain = montage_image(maps, ["a", "b"], groups=[(0, 2)], cmap="coolwarm")
    sheet = montage_image(maps, ["a", "b"], groups=[(0, 2)], cmap="coolwarm", colorbar=True)
    assert sheet.mode == "RGB" and sheet.height > plain.height
    bar = np.asarray(sheet)[plain.height + 2]  # the bar starts where the plain sheet ends
    table = lut("coolwarm")
    assert bar[4].tolist() == table[0].tolist()
    # the zero tile is the middle colour of the diverging map (0 = mid-grey level)
    tile_b = np.asarray(sheet)[4 + 5, 4 + 68 + 5]
    assert tile_b.tolist() == table[128].tolist()


def test_cli_montage_with_cmap_and_colorbar(tmp_path: Path) -> None:
    ok("convolve", SAMPLES / "camera.png", "-k", "sobel", "--montage", "--cmap", "rdbu",
       "--colorbar", "--range-scope", "input", "-o", "m", "-q")  # fmt: skip
    with Image.open("m/camera.sobel.montage.png") as im:
        assert im.mode == "RGB"
    for p in ("m/camera.sobel.sobel-x.png", "m/camera.sobel.sobel-y.png"):
        with Image.open(p) as im:
            assert im.mode == "RGB"


# --------------------------------------------------------------------------- threshold


def test_threshold_value_gives_a_binary_picture() -> None:
    v = np.array([[[-1.0, 0.1, 0.3, 0.9]]])
    px, m = to_pixels(v)
    b, t = binarize(v, px, m, 0.2)
    assert b.tolist() == [[[0, 0, 255, 255]]]
    assert (t.threshold, t.threshold_basis, t.above_fraction) == (0.2, "given", 0.5)
    assert t.text() == "threshold 0.2 (given): above = white, the rest black, 50 % white"


def test_otsu_splits_two_populations_per_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    low, high = rng.normal(0.2, 0.03, (20, 40)), rng.normal(0.8, 0.03, (20, 40))
    maps = np.stack([np.vstack([low, high]), np.vstack([low, high]) * 0.5])
    res = write_feature_maps(maps, out=tmp_path, stem="o", name="k", layout="maps",
                             threshold="otsu")  # fmt: skip
    for path, m, scale in zip(res.paths, res.mappings, (1.0, 0.5), strict=True):
        got = np.asarray(Image.open(path))
        assert set(np.unique(got).tolist()) == {0, 255}
        assert (got[:20] == 0).all() and (got[20:] == 255).all()
        # its own threshold, in value units, in the gap between the two populations
        assert low.max() * scale < m.threshold < high.min() * scale
        assert m.threshold_basis.startswith("Otsu, level")


def test_cli_threshold_reports_the_value_used(tmp_path: Path) -> None:
    result = ok("convolve", SAMPLES / "camera.png", "-k", "sobel", "--combine", "magnitude",
                "--threshold", "otsu", "-o", "t.png", "--json")  # fmt: skip
    r = json.loads(result.stdout)
    got = np.asarray(Image.open("t.png"))
    assert set(np.unique(got).tolist()) == {0, 255}
    assert r["mapping"]["threshold"] > 0
    assert r["mapping"]["white_fraction"] == pytest.approx(np.mean(got == 255))
    assert r["mapping"]["text"].startswith("threshold ")
    ok("convolve", SAMPLES / "camera.png", "-k", "gaussian", "--threshold", "0.5", "-o", "h.png",
       "-q")  # fmt: skip
    blur = np.load(io.BytesIO(_npy_of("gaussian")))[0]
    np.testing.assert_array_equal(np.asarray(Image.open("h.png")) == 255, blur > 0.5)


def _npy_of(kernel: str) -> bytes:
    ok("convolve", SAMPLES / "camera.png", "-k", kernel, "-o", "ref.npy", "-q", "--force")
    return Path("ref.npy").read_bytes()


def test_cli_bad_threshold_and_cmap_are_usage_errors(monkeypatch, capsys) -> None:
    src = SAMPLES / "camera.png"
    code, _, err = run_main(monkeypatch, capsys, "convolve", src, "-k", "box", "--threshold",
                            "half")  # fmt: skip
    assert code == 2 and "threshold must be a number or 'otsu'" in err
    code, _, err = run_main(monkeypatch, capsys, "convolve", src, "-k", "box", "--cmap", "jet")
    assert code == 2 and "colour map must be one of gray, viridis" in err
    assert not Path("convcli-out").exists()


# --------------------------------------------------------------------------- preview


def test_preview_draws_every_map_labelled_and_nothing_under_quiet(tmp_path: Path) -> None:
    from rich.console import Console

    from convcli.cli.options import OutputArgs
    from convcli.cli.outputs import _draw_preview
    from convcli.kernels import load_kernel
    from convcli.pipeline import ConvStage, Pipeline
    from convcli.run.jobs import Job, OutputOptions, process_one

    p = Pipeline((ConvStage(load_kernel("kirsch")),), name="")
    outcome = process_one(p, Job(str(SAMPLES / "camera.png"), "camera", "o"),
                          OutputOptions(out="o", keep_result=True))  # fmt: skip
    buf = io.StringIO()
    con = Console(file=buf, width=60, force_terminal=True, color_system="truecolor")
    _draw_preview(con, outcome, OutputArgs(), p.stages)
    text = buf.getvalue()
    names = [p.name for p in outcome.write.paths][:8]
    assert len(names) == 8 and all(n in text for n in names)
    quiet = CliRunner().invoke(
        app, ["convolve", str(SAMPLES / "camera.png"), "-k", "sobel", "--preview", "-q", "-o",
              "q"], env=ENV,
    )  # fmt: skip
    assert quiet.exit_code == 0 and quiet.output == ""


def test_pipeline_output_section_sets_the_picture_options(tmp_path: Path) -> None:
    Path("p.yaml").write_text(
        "gray: true\nstages:\n  - conv: sobel\n  - combine: magnitude\n"
        "output: {format: webp, quality: 80, cmap: magma, range: 'p1,p99', range_scope: input}\n",
        encoding="utf-8",
    )
    r = json.loads(ok("run", "p.yaml", SAMPLES / "camera.png", "-o", "o", "--json").stdout)
    assert r["outputs"] == ["o/camera.p.webp"]
    assert r["mapping"]["range"] == "percentile" and r["mapping"]["cmap"] == "magma"
    with Image.open("o/camera.p.webp") as im:
        assert im.format == "WEBP" and im.mode == "RGB"
    Path("q.yaml").write_text(
        "stages:\n  - pool: max\noutput: {threshold: half}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["run", "q.yaml", str(SAMPLES / "camera.png")], env=ENV)
    assert result.exit_code != 0
    assert "q.yaml:3: output: threshold must be a number or 'otsu'" in str(result.exception)
