"""Streaming output equals the whole-image writers (convcli.run.stream, PngWriter)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from convcli.errors import OutputError, ParameterError
from convcli.imageio import ImageData, load_image, to_pixels, write_feature_maps
from convcli.imageio.png import PngWriter, encode_png
from convcli.kernels.model import Kernel
from convcli.pipeline import ConvStage, Pipeline, PoolStage, run
from convcli.pipeline.tiles import TiledRun
from convcli.run.stream import StreamStats, pixel_map, write_tiled

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_png_writer_in_bands(c: int, bit_depth: int) -> None:
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    px = RNG.integers(0, np.iinfo(dtype).max, (c, 23, 17), dtype=dtype)
    buf = io.BytesIO()
    w = PngWriter(buf, width=17, height=23, channels=c, bit_depth=bit_depth)
    for y0, y1 in ((0, 1), (1, 9), (9, 9), (9, 23)):
        w.write_rows(px[:, y0:y1])
    w.close()
    ref = load_image(io.BytesIO(encode_png(px, bit_depth=bit_depth)), dtype=np.float64)
    got = load_image(io.BytesIO(buf.getvalue()), dtype=np.float64)
    np.testing.assert_array_equal(got.array, ref.array)
    Image.open(io.BytesIO(buf.getvalue())).verify()  # CRCs and the zlib stream are valid


def test_png_writer_refuses_wrong_rows() -> None:
    w = PngWriter(io.BytesIO(), width=4, height=2, channels=1)
    with pytest.raises(ParameterError, match="4-wide"):
        w.write_rows(np.zeros((1, 1, 5), np.uint8))
    w.write_rows(np.zeros((1, 1, 4), np.uint8))
    with pytest.raises(ParameterError, match="1 of its 2 rows"):
        w.close()


def _data(kind: str) -> np.ndarray:
    x = (RNG.standard_normal((3, 20, 16)) * 2).astype(np.float32)
    if kind == "unit":
        x = RNG.random((3, 20, 16), dtype=np.float32)
    elif kind == "nan":
        x[0, 3, 4], x[1, 5, 6], x[2, 7, 8] = np.nan, np.inf, -np.inf
    elif kind == "const":
        x[:] = 0.0
    return x


@pytest.mark.parametrize("kind", ["signed", "unit", "nan", "const"])
@pytest.mark.parametrize("mode", ["auto", "clip", "minmax", "abs", "offset"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_pixel_map_equals_to_pixels(kind: str, mode: str, bit_depth: int) -> None:
    x = _data(kind)
    want, m = to_pixels(x, range_mode=mode, bit_depth=bit_depth)
    stats = StreamStats(3)
    stats.keep_sample(x.size)  # small: every value, so the percentiles are exact
    for y in range(0, 20, 7):
        stats.add(x[:, y : y + 7], need_abs=True)
    pm = pixel_map(mode, stats, bit_depth=bit_depth)
    got = np.concatenate([pm(x[:, y : y + 7]) for y in range(0, 20, 7)], axis=1)
    np.testing.assert_array_equal(got, want)
    assert pm.mapping() == m
    with np.errstate(invalid="ignore"):
        ref = [(float(a.min()), float(a.max()), float(a.mean(dtype=np.float64))) for a in x]
    np.testing.assert_allclose(stats.map_stats(), ref, rtol=1e-6)


def _pipeline() -> Pipeline:
    bank = Kernel("bank", RNG.standard_normal((2, 5, 5)), labels=("a", "b"))
    return Pipeline((ConvStage(bank, pad_mode="circular"), PoolStage("max", 2)), name="s")


def _image() -> ImageData:
    return ImageData(RNG.random((3, 61, 47), dtype=np.float32), "RGB", "RGB", 8, "in.png")


@pytest.mark.parametrize(
    ("fmt", "bit_depth", "range_mode"),
    [("png", None, "auto"), ("png", 16, "offset"), ("png", 8, "clip"), ("tiff", None, "auto"),
     ("tiff", 8, "minmax"), ("tiff", 16, "abs"), ("npy", None, "auto")],
)  # fmt: skip
def test_write_tiled_equals_the_whole_image_files(
    tmp_path: Path, fmt: str, bit_depth: int | None, range_mode: str
) -> None:
    p, img = _pipeline(), _image()
    whole = run(p, img)
    assert whole.maps is not None
    ref_fmt = "npy" if fmt == "npy" else "png"
    ref = write_feature_maps(
        whole.maps, out=tmp_path / "whole", stem="in", name="s", fmt=ref_fmt,
        layout=whole.layout, labels=whole.labels, range_mode=range_mode, bit_depth=bit_depth or 8,
    )  # fmt: skip
    seen = []
    res = write_tiled(
        TiledRun(p, img, tile=(5, 7)), out=tmp_path / "tiled", stem="in", name="s", fmt=fmt,
        layout=whole.layout, labels=whole.labels, range_mode=range_mode, bit_depth=bit_depth,
        on_progress=seen.append,
    )  # fmt: skip
    assert [q.name for q in res.write.paths] == [
        q.name.replace(".png", ".tif" if fmt == "tiff" else ".png") for q in ref.paths
    ]
    assert res.passes == (2 if range_mode != "clip" and (fmt == "png" or bit_depth) else 1)
    assert {q.phase for q in seen} == ({"scan", "write"} if res.passes == 2 else {"write"})
    np.testing.assert_allclose(
        [s[:2] for s in res.stats.map_stats()], [s[:2] for s in whole.map_stats()], rtol=1e-6
    )
    for got_path, ref_path in zip(res.write.paths, ref.paths, strict=True):
        if fmt == "npy":
            np.testing.assert_array_equal(np.load(got_path), np.load(ref_path))
        elif fmt == "tiff" and bit_depth is None:
            c = 3
            k = ref.paths.index(ref_path)
            np.testing.assert_array_equal(
                np.moveaxis(tifffile.imread(got_path), -1, 0), whole.maps[k * c : (k + 1) * c]
            )
        elif fmt == "tiff":
            with Image.open(ref_path) as im:
                ref_px = np.asarray(im)
            if bit_depth == 16:
                ref_px = np.moveaxis(load_image(ref_path, dtype=np.float64).array, 0, -1)
                ref_px = np.rint(ref_px * 65535).astype(np.uint16)
            np.testing.assert_array_equal(tifffile.imread(got_path), ref_px)
        else:
            a = load_image(got_path, dtype=np.float64).array
            np.testing.assert_array_equal(a, load_image(ref_path, dtype=np.float64).array)
    if fmt == "png":
        assert res.write.mapping == ref.mapping
    assert not list((tmp_path / "tiled").glob(".*.tmp"))


def test_streamed_float_tiff_reads_back(tmp_path: Path) -> None:
    p = Pipeline((ConvStage(Kernel("g", np.full((3, 3), 1 / 9))),), name="g")
    img = _image()
    res = write_tiled(TiledRun(p, img, tile=16), out=tmp_path, stem="in", name="g", fmt="tiff")
    back = load_image(res.write.paths[0])
    assert back.channels == "RGB" and back.bit_depth == 32
    np.testing.assert_allclose(back.array, run(p, img).maps, rtol=1e-6, atol=1e-7)


def test_interrupted_stream_leaves_no_file(tmp_path: Path) -> None:
    p, img = _pipeline(), _image()

    def stop(progress: object) -> None:
        if getattr(progress, "tiles_done", 0) == 5 and getattr(progress, "phase", "") == "write":
            raise KeyboardInterrupt

    for fmt in ("png", "tiff", "npy"):
        with pytest.raises(KeyboardInterrupt):
            write_tiled(
                TiledRun(p, img, tile=4), out=tmp_path, stem="in", name="s", fmt=fmt,
                layout="bank:2", on_progress=stop,
            )  # fmt: skip
        assert list(tmp_path.iterdir()) == []


def test_refusals(tmp_path: Path) -> None:
    p, img = _pipeline(), _image()
    t = TiledRun(p, img, tile=8)
    with pytest.raises(ParameterError, match="cannot be written as npz"):
        write_tiled(t, out=tmp_path, stem="in", name="s", fmt="npz")
    (tmp_path / "in.s.a.png").write_bytes(b"old")
    with pytest.raises(OutputError, match="exists"):
        write_tiled(t, out=tmp_path, stem="in", name="s", layout="bank:2", labels=("a", "b"))
    assert (tmp_path / "in.s.a.png").read_bytes() == b"old"


def test_a_name_taken_while_streaming_is_never_replaced(tmp_path: Path) -> None:
    """Another run claims one of the names while this one computes: this run fails and
    gives back what it had claimed; the other run's file is untouched, no temp is left."""
    p, img = _pipeline(), _image()
    taken = tmp_path / "in.s.b.png"

    def meanwhile(progress: object) -> None:
        if getattr(progress, "tiles_done", 0) == 3 and not taken.exists():
            taken.write_bytes(b"the other run's picture")

    with pytest.raises(OutputError, match="exists"):
        write_tiled(
            TiledRun(p, img, tile=4), out=tmp_path, stem="in", name="s", layout="bank:2",
            labels=("a", "b"), on_progress=meanwhile,
        )  # fmt: skip
    assert taken.read_bytes() == b"the other run's picture"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["in.s.b.png"]


def test_a_rerun_replaces_only_its_own_files(tmp_path: Path) -> None:
    from convcli.imageio.atomic import RunStamp

    p, img = _pipeline(), _image()
    stamp = RunStamp.new()
    kw = {"out": tmp_path, "stem": "in", "name": "s", "layout": "bank:2"}
    first = write_tiled(TiledRun(p, img, tile=4), **kw, own=stamp)  # type: ignore[arg-type]
    again = write_tiled(TiledRun(p, img, tile=4), **kw, own=stamp)  # type: ignore[arg-type]
    assert again.write.paths == first.write.paths and len(first.write.paths) == 2
    with pytest.raises(OutputError, match="exists"):  # another run's stamp owns nothing here
        write_tiled(TiledRun(p, img, tile=4), **kw, own=RunStamp.new())  # type: ignore[arg-type]


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_whole_image_integer_tiff(tmp_path: Path, bit_depth: int) -> None:
    maps = (RNG.standard_normal((3, 9, 11)) * 3).astype(np.float32)
    res = write_feature_maps(
        maps, out=tmp_path, stem="x", name="k", fmt="tiff", bit_depth=bit_depth, range_mode="offset"
    )
    want, mapping = to_pixels(maps, range_mode="offset", bit_depth=bit_depth)
    got = tifffile.imread(res.paths[0])
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.moveaxis(got, -1, 0), want)
    assert res.mapping == mapping
    back = load_image(res.paths[0], dtype=np.float64)  # read exactly, not at 8 bits
    np.testing.assert_array_equal(np.rint(back.array * (2**bit_depth - 1)), want)
