"""Region readers give exactly what load_image gives, region by region (convcli.imageio.regions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from convcli.errors import ImageError, ParameterError
from convcli.imageio import load_image
from convcli.imageio.limits import resolve_max_pixels
from convcli.imageio.png import encode_png
from convcli.imageio.regions import NativeReader, PillowReader, PngStreamReader, open_regions

RNG = np.random.default_rng(7)
H, W = 37, 29


def _u8(c: int) -> np.ndarray:
    return RNG.integers(0, 256, (H, W, c), dtype=np.uint8).squeeze()


def _u16(c: int) -> np.ndarray:
    return RNG.integers(0, 65536, (H, W, c), dtype=np.uint16).squeeze()


def _write_tiff(path: Path, arr: np.ndarray, **kw: object) -> None:
    photometric = "rgb" if arr.ndim == 3 and arr.shape[-1] >= 3 else "minisblack"
    extra = ["unassalpha"] if arr.ndim == 3 and arr.shape[-1] in (2, 4) else None
    tifffile.imwrite(path, arr, photometric=photometric, extrasamples=extra, **kw)  # type: ignore[arg-type]


def _files(tmp: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}

    def add(name: str, save: object) -> None:
        path = tmp / name
        save(path)  # type: ignore[operator]
        out[name] = path

    add("rgb.png", lambda p: Image.fromarray(_u8(3)).save(p))
    add("rgba.png", lambda p: Image.fromarray(_u8(4)).save(p))
    add("l.png", lambda p: Image.fromarray(_u8(1)).save(p))
    add("la.png", lambda p: Image.fromarray(_u8(2), "LA").save(p))
    add("p.png", lambda p: Image.fromarray(_u8(3)).quantize(16).save(p))
    add("rgb16.png", lambda p: p.write_bytes(encode_png(np.moveaxis(_u16(3), -1, 0), bit_depth=16)))
    add("l16.png", lambda p: p.write_bytes(encode_png(_u16(1)[None], bit_depth=16)))
    add("photo.jpg", lambda p: Image.fromarray(_u8(3)).save(p, quality=90))
    ex = Image.Exif()
    ex[0x0112] = 6
    add("rot6.png", lambda p: Image.fromarray(_u8(3)).save(p, exif=ex))
    add("plain.tif", lambda p: _write_tiff(p, _u8(3)))
    add("tiled.tif", lambda p: _write_tiff(p, _u8(3), tile=(16, 16), compression="zlib"))
    add("strips.tif", lambda p: _write_tiff(p, _u8(4), rowsperstrip=5, compression="zlib"))
    add("rgb16.tif", lambda p: _write_tiff(p, _u16(3), tile=(16, 32), compression="zlib"))
    add("rgb16-plain.tif", lambda p: _write_tiff(p, _u16(3)))
    add("planar.tif", lambda p: _write_tiff(
        p, np.moveaxis(_u8(3), -1, 0), planarconfig="separate", compression="zlib",
        rowsperstrip=8))  # fmt: skip
    add("big.tif", lambda p: _write_tiff(p, _u8(3), bigtiff=True, tile=(16, 16)))
    add("gray16.tif", lambda p: _write_tiff(p, _u16(1), compression="zlib", tile=(16, 16)))
    add("float.tif", lambda p: _write_tiff(p, RNG.random((H, W), np.float32) * 3 - 1))
    for o in (2, 5, 7, 8):
        tags = [(274, "H", 1, o, True)]  # Orientation
        add(f"orient{o}.tif", lambda p, t=tags: _write_tiff(
            p, _u8(3), tile=(16, 16), compression="zlib", extratags=t))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _files(tmp_path_factory.mktemp("regions"))


@pytest.mark.parametrize("gray", [False, True])
def test_regions_equal_load_image(files: dict[str, Path], gray: bool) -> None:
    for name, path in files.items():
        whole = load_image(path, gray=gray)
        with open_regions(path, gray=gray) as reader:
            assert reader.shape == whole.shape, name
            assert reader.channels == whole.channels, name
            h, w = whole.shape[1:]
            for y0, y1, x0, x1 in ((0, h, 0, w), (3, 20, 5, 6), (h - 1, h, 0, w), (10, 30, 17, w)):
                got = reader.read_region(y0, min(y1, h), x0, min(x1, w))
                want = whole.array[:, y0:y1, x0:x1]
                assert got.dtype == want.dtype, name
                np.testing.assert_array_equal(got, want, err_msg=name)


def test_readers_avoid_float_copies(files: dict[str, Path]) -> None:
    with open_regions(files["plain.tif"]) as r:  # uncompressed: memory-mapped
        assert isinstance(r, NativeReader) and isinstance(r.array, np.memmap)
        assert r.array.dtype == np.uint8
    with open_regions(files["rgb.png"]) as r:  # streamed: only the rows a region needs
        assert isinstance(r, PngStreamReader)
        r.read_region(30, 33, 0, 5)
        assert (r.b0, r.b1) == (30, H) and r.rows.dtype == np.uint8
    with open_regions(files["rot6.png"]) as r:  # turned by EXIF: decoded once, natively
        assert isinstance(r, NativeReader) and r.array.dtype == np.uint8
    with open_regions(files["la.png"]) as r:
        assert isinstance(r, PillowReader)


def test_16_bit_colour_tiff_is_read_exactly(files: dict[str, Path]) -> None:
    for name in ("rgb16.tif", "rgb16-plain.tif"):
        img = load_image(files[name], dtype=np.float64)
        native = tifffile.imread(files[name])
        assert img.bit_depth == 16 and img.channels == "RGB"
        np.testing.assert_array_equal(np.rint(img.array * 65535), np.moveaxis(native, -1, 0))
        assert len(np.unique(native[..., 0] >> 8)) > 1 and np.any(native & 0xFF)


def test_max_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(_u8(3)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for read in (load_image, open_regions):
        with pytest.raises(ImageError, match=r"x.png: too many pixels.*--max-pixels"):
            read(path)
        for limit in (H * W, None):
            got = read(path, max_pixels=limit)  # type: ignore[operator]
            assert got.shape == (3, H, W)
            if hasattr(got, "close"):
                got.close()
        with pytest.raises(ImageError, match="too many pixels"):
            read(path, max_pixels=H * W - 1)  # type: ignore[operator]
    assert Image.MAX_IMAGE_PIXELS == 100  # put back
    assert resolve_max_pixels("none") is None and resolve_max_pixels("1e9") == 10**9
    with pytest.raises(ParameterError, match="max-pixels"):
        resolve_max_pixels("lots")
    with pytest.raises(ParameterError, match="max-pixels"):
        resolve_max_pixels(0)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="nope.png: no such file"):
        open_regions(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ImageError, match="bad.png"):
        open_regions(bad)


@pytest.mark.parametrize("name", ["rgb.png", "rgba.png", "l.png", "rgb16.png", "l16.png"])
def test_png_stream_in_overlapping_bands(
    files: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PngStreamReader, "CHUNK_BYTES", 1)  # a few rows at a time
    whole = load_image(files[name]).array
    with open_regions(files[name]) as r:
        assert isinstance(r, PngStreamReader)
        for y0, y1 in ((0, 5), (3, 11), (11, 12), (20, 37), (2, 4), (36, 37)):  # (2, 4): restart
            np.testing.assert_array_equal(r.read_region(y0, y1, 3, 20), whole[:, y0:y1, 3:20])


def test_png_stream_reports_truncation(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["rgb.png"].read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with open_regions(cut) as r, pytest.raises(ImageError, match="cut.png: truncated"):
        r.read_region(0, H, 0, W)
