"""Tests for convcli.imageio: reading every mode, float -> pixel mapping, writers."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from convcli.errors import ImageError, OutputError, ParameterError
from convcli.imageio import (
    ImageData,
    WriteResult,
    check_outputs,
    encode_png16,
    load_image,
    montage_image,
    plan_outputs,
    read_image,
    to_pixels,
    write_feature_maps,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def u16(x: np.ndarray) -> np.ndarray:
    """Float samples back to the 16-bit integers they came from (exactly)."""
    return np.round(np.asarray(x, dtype=np.float64) * 65535).astype(np.int64)


def u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) * 255).astype(np.int64)


def save(img: Image.Image, path: Path, fmt: str | None = None, **kw) -> Path:
    img.save(path, fmt, **kw)
    return path


# --------------------------------------------------------------------------- reading: modes

RGB_PIXELS = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [0, 0, 0], [255, 255, 255]]],
    dtype=np.uint8,
)  # (H=2, W=3, 3)


def test_reads_rgb_png_exactly(tmp_path):
    path = save(Image.fromarray(RGB_PIXELS), tmp_path / "rgb.png")
    im = load_image(path)
    assert isinstance(im, ImageData)
    assert (im.channels, im.mode, im.bit_depth, im.path) == ("RGB", "RGB", 8, str(path))
    assert im.array.shape == (3, 2, 3) and im.array.dtype == np.float32
    assert not im.has_alpha
    np.testing.assert_array_equal(u8(im.array), np.moveaxis(RGB_PIXELS, -1, 0))
    np.testing.assert_array_equal(im.array[:, 1, 0], np.float32([10, 20, 30]) / np.float32(255))


def test_read_image_returns_array_only(tmp_path):
    path = save(Image.fromarray(RGB_PIXELS), tmp_path / "rgb.png")
    x = read_image(path)
    assert isinstance(x, np.ndarray) and x.shape == (3, 2, 3)


def test_mode_1(tmp_path):
    img = Image.new("1", (4, 2), 0)
    img.putpixel((1, 0), 1)
    im = load_image(save(img, tmp_path / "bw.png"))
    assert (im.channels, im.mode, im.bit_depth) == ("L", "1", 1)
    expected = np.zeros((1, 2, 4), np.float32)
    expected[0, 0, 1] = 1.0
    np.testing.assert_array_equal(im.array, expected)


def test_mode_l_and_la(tmp_path):
    grey = np.array([[0, 51, 255]], dtype=np.uint8)
    im = load_image(save(Image.fromarray(grey), tmp_path / "l.png"))
    assert (im.channels, im.bit_depth, im.array.shape) == ("L", 8, (1, 1, 3))
    np.testing.assert_allclose(im.array[0, 0], [0, 0.2, 1], atol=1e-7)
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(255 - grey)])
    im = load_image(save(la, tmp_path / "la.png"))
    assert (im.channels, im.mode, im.has_alpha) == ("LA", "LA", True)
    np.testing.assert_array_equal(u8(im.array[1]), 255 - grey.astype(int))


def test_rgba(tmp_path):
    px = np.zeros((2, 2, 4), np.uint8)
    px[..., 0] = 200
    px[..., 3] = [[0, 85], [170, 255]]
    im = load_image(save(Image.fromarray(px), tmp_path / "rgba.png"))
    assert im.channels == "RGBA" and im.has_alpha and im.array.shape == (4, 2, 2)
    np.testing.assert_array_equal(u8(im.array[3]), [[0, 85], [170, 255]])


def test_palette_without_transparency_is_rgb(tmp_path):
    img = Image.fromarray(RGB_PIXELS).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    im = load_image(save(img, tmp_path / "p.png"))
    assert (im.channels, im.mode, im.bit_depth) == ("RGB", "P", 8)
    np.testing.assert_array_equal(u8(im.array), np.moveaxis(RGB_PIXELS, -1, 0))


def test_palette_with_transparency_is_rgba(tmp_path):
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    img.info["transparency"] = 1
    im = load_image(save(img, tmp_path / "pt.png", transparency=1))
    assert (im.channels, im.mode) == ("RGBA", "P")
    np.testing.assert_array_equal(u8(im.array[3, 0]), [255, 0, 255])
    np.testing.assert_array_equal(u8(im.array[:3, 0, 0]), [255, 0, 0])


def test_cmyk_becomes_rgb(tmp_path):
    img = Image.new("CMYK", (2, 1))
    img.putpixel((0, 0), (0, 0, 0, 0))  # white
    img.putpixel((1, 0), (255, 0, 0, 0))  # cyan
    im = load_image(save(img, tmp_path / "cmyk.jpg", quality=100))
    assert (im.channels, im.mode) == ("RGB", "CMYK")
    tiff = load_image(save(img, tmp_path / "cmyk.tif"))  # lossless: exact values
    np.testing.assert_array_equal(u8(tiff.array[:, 0, 0]), [255, 255, 255])
    np.testing.assert_array_equal(u8(tiff.array[:, 0, 1]), [0, 255, 255])


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_grey_keeps_full_precision(tmp_path, ext):
    values = np.array([[0, 1, 257, 32768, 65534, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / f"g16.{ext}")
    im = load_image(path)
    assert im.channels == "L" and im.bit_depth == 16 and im.mode.startswith("I;16")
    assert im.array[0, 0, 5] == 1.0
    assert im.array[0, 0, 2] == np.float32(257 / 65535)
    assert im.array[0, 0, 1] == np.float32(1 / 65535)  # not representable in 8 bits
    np.testing.assert_array_equal(u16(im.array[0]), values)
    im64 = load_image(path, dtype=np.float64)
    assert im64.array.dtype == np.float64 and im64.array[0, 0, 2] == 257 / 65535


def test_16bit_big_endian_tiff(tmp_path):
    values = np.array([[0, 257, 65535]], dtype=np.uint16)
    img = Image.frombytes("I;16B", (3, 1), values.astype(">u2").tobytes())
    im = load_image(save(img, tmp_path / "be.tif"))
    assert im.mode == "I;16B" and im.bit_depth == 16
    np.testing.assert_array_equal(u16(im.array[0]), values)


def test_mode_i_and_f_keep_raw_values(tmp_path):
    ints = np.array([[-5, 0, 70000]], dtype=np.int32)
    im = load_image(save(_mode_i(ints), tmp_path / "i.tif"))
    assert (im.channels, im.mode, im.bit_depth) == ("L", "I", 32)
    np.testing.assert_array_equal(im.array[0], ints.astype(np.float32))
    floats = np.array([[-1.5, 0.25, 1e6]], dtype=np.float32)
    im = load_image(save(Image.fromarray(floats), tmp_path / "f.tif"))
    assert (im.channels, im.mode, im.bit_depth) == ("L", "F", 32)
    np.testing.assert_array_equal(im.array[0], floats)


def _mode_i(ints: np.ndarray) -> Image.Image:
    h, w = ints.shape
    return Image.frombytes("I", (w, h), ints.astype("<i4").tobytes())


# 16-bit colour PNGs: Pillow reads them as 8-bit, so convcli decodes them itself.

PNG_FILTERS = (0, 1, 2, 3, 4)


def _filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = a
        elif kind == 2:
            pred = b
        elif kind == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (x - pred) & 0xFF
    return bytes(out)


def reference_png16(hwc: np.ndarray, *, interlace: bool = False) -> bytes:
    """An independent, slow PNG encoder: every filter type in turn, optional Adam7."""
    h, w, c = hwc.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c
    passes = (
        [
            (0, 0, 8, 8),
            (0, 4, 8, 8),
            (4, 0, 8, 4),
            (0, 2, 4, 4),
            (2, 0, 4, 2),
            (0, 1, 2, 2),
            (1, 0, 2, 1),
        ]
        if interlace
        else [(0, 0, 1, 1)]
    )
    raw = bytearray()
    k = 0
    for y0, x0, dy, dx in passes:
        sub = hwc[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        rows = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
        prev = bytes(rows.shape[1])
        for r in rows:
            kind = PNG_FILTERS[k % 5]
            k += 1
            raw += bytes([kind]) + _filter_row(kind, r.tobytes(), prev, bpp)
            prev = r.tobytes()

    def chunk(t: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_colour_png_all_filters(tmp_path, channels, interlace):
    rng = np.random.default_rng(channels)
    hwc = rng.integers(0, 65536, size=(11, 13, channels), dtype=np.uint16)
    hwc[0, 0] = 257
    hwc[0, 1] = 65535
    path = tmp_path / "c16.png"
    path.write_bytes(reference_png16(hwc, interlace=interlace))
    im = load_image(path)
    assert im.channels == {2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    assert im.bit_depth == 16
    np.testing.assert_array_equal(u16(im.array), np.moveaxis(hwc, -1, 0))
    assert im.array[0, 0, 0] == np.float32(257 / 65535) and im.array[0, 0, 1] == 1.0


def test_16bit_colour_png_from_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 65536, size=(40, 50, 3), dtype=np.uint16)
    hwc[:20] = (np.arange(50) * 1000)[None, :, None]  # smooth rows: libpng picks other filters
    cv2.imwrite(str(tmp_path / "cv.png"), hwc[..., ::-1])
    np.testing.assert_array_equal(u16(read_image(tmp_path / "cv.png")), np.moveaxis(hwc, -1, 0))


def test_16bit_colour_png_exif_orientation(tmp_path):
    hwc = np.zeros((2, 3, 3), np.uint16)
    hwc[0, 0] = 65535  # top-left marker
    data = reference_png16(hwc)
    img = Image.open(io.BytesIO(data))
    assert img.mode == "RGB"  # Pillow would lose 8 bits here
    exif = Image.Exif()
    exif[0x0112] = 6
    # insert an eXIf chunk after IHDR (offset 8 + 25)
    body = exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + body))
    path = tmp_path / "rot.png"
    path.write_bytes(data[:33] + chunk + data[33:])
    x = read_image(path)
    assert x.shape == (3, 3, 2)
    assert x[0, 0, 1] == 1.0  # rotated 90° clockwise: top-left goes to top-right


# --------------------------------------------------------------------------- reading: formats


@pytest.mark.parametrize("fmt,ext", [("BMP", "bmp"), ("TIFF", "tif"), ("PNG", "png")])
def test_lossless_formats(tmp_path, fmt, ext):
    im = load_image(save(Image.fromarray(RGB_PIXELS), tmp_path / f"x.{ext}", fmt))
    np.testing.assert_array_equal(u8(im.array), np.moveaxis(RGB_PIXELS, -1, 0))


def test_jpeg(tmp_path):
    img = Image.new("RGB", (16, 8), (200, 100, 50))
    im = load_image(save(img, tmp_path / "x.jpg", quality=95))
    assert im.array.shape == (3, 8, 16)
    np.testing.assert_allclose(im.array[:, 4, 4], np.array([200, 100, 50]) / 255, atol=3 / 255)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_webp(tmp_path):
    img = Image.fromarray(RGB_PIXELS)
    im = load_image(save(img, tmp_path / "x.webp", lossless=True))
    np.testing.assert_array_equal(u8(im.array), np.moveaxis(RGB_PIXELS, -1, 0))


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    im = load_image(path)
    assert im.channels in ("RGB", "RGBA") and im.array.shape[1:] == (4, 4)
    np.testing.assert_array_equal(u8(im.array[:3, 0, 0]), [255, 0, 0])


def test_exif_orientation_jpeg(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(img, tmp_path / "rot.jpg", exif=exif.tobytes())
    im = load_image(path)
    assert im.array.shape == (3, 40, 20)  # H and W swapped


def test_exif_orientation_moves_pixels(tmp_path):
    px = np.zeros((2, 3), np.uint8)
    px[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = save(Image.fromarray(px), tmp_path / "rot.png", exif=exif.tobytes())
    x = read_image(path)
    assert x.shape == (1, 3, 2)
    assert x[0, 0, 1] == 1.0 and x.sum() == 1.0


def test_float_tiff_pages_stack_as_channels(tmp_path):
    maps = np.random.default_rng(0).normal(size=(3, 5, 6)).astype(np.float32)
    pages = [Image.fromarray(m) for m in maps]
    path = tmp_path / "f.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    im = load_image(path)
    assert (im.channels, im.mode, im.bit_depth) == ("RGB", "F", 32)
    np.testing.assert_array_equal(im.array, maps)


# --------------------------------------------------------------------------- gray


def test_gray_uses_itu_601_luma(tmp_path):
    path = save(Image.fromarray(RGB_PIXELS), tmp_path / "rgb.png")
    im = load_image(path, gray=True)
    assert im.channels == "L" and im.mode == "RGB" and im.array.shape == (1, 2, 3)
    np.testing.assert_allclose(im.array[0, 0], [0.299, 0.587, 0.114], rtol=1e-6)
    expected = (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255
    assert im.array[0, 1, 0] == pytest.approx(expected, rel=1e-6)
    assert im.array[0, 1, 2] == pytest.approx(1.0)


def test_gray_keeps_alpha(tmp_path):
    px = np.zeros((1, 2, 4), np.uint8)
    px[0, :, 1] = 255
    px[0, :, 3] = [51, 255]
    im = load_image(save(Image.fromarray(px), tmp_path / "rgba.png"), gray=True)
    assert im.channels == "LA" and im.has_alpha and im.array.shape == (2, 1, 2)
    np.testing.assert_allclose(im.array[0, 0], [0.587, 0.587], rtol=1e-6)
    np.testing.assert_allclose(im.array[1, 0], [0.2, 1.0], rtol=1e-6)


def test_gray_is_computed_in_float_on_16bit_data(tmp_path):
    hwc = np.array([[[1, 2, 3], [65535, 0, 0]]], dtype=np.uint16)
    path = tmp_path / "c16.png"
    path.write_bytes(encode_png16(np.moveaxis(hwc, -1, 0)))
    x = read_image(path, gray=True, dtype=np.float64)
    assert x[0, 0, 0] == pytest.approx((0.299 * 1 + 0.587 * 2 + 0.114 * 3) / 65535, rel=1e-12)
    assert x[0, 0, 1] == pytest.approx(0.299, rel=1e-12)


def test_gray_on_grey_image_is_unchanged(tmp_path):
    path = save(Image.fromarray(np.array([[7, 9]], np.uint8)), tmp_path / "l.png")
    np.testing.assert_array_equal(read_image(path, gray=True), read_image(path))


# --------------------------------------------------------------------------- sources


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RGB_PIXELS).save(buf, "PNG")
    return buf.getvalue()


def test_reads_binary_file_object():
    im = load_image(io.BytesIO(_png_bytes()))
    assert im.path == "-" and im.array.shape == (3, 2, 3)
    im = load_image(io.BytesIO(_png_bytes()), name="upload.png")
    assert im.path == "upload.png"


def test_reads_stdin(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(_png_bytes())

    monkeypatch.setattr("sys.stdin", FakeStdin())
    im = load_image("-")
    assert im.path == "-"
    np.testing.assert_array_equal(u8(im.array), np.moveaxis(RGB_PIXELS, -1, 0))


def test_reads_open_file(tmp_path):
    path = save(Image.fromarray(RGB_PIXELS), tmp_path / "rgb.png")
    with open(path, "rb") as fh:
        im = load_image(fh)
    assert im.path == str(path)


def test_bad_dtype():
    with pytest.raises(ParameterError, match="float32 or float64"):
        load_image(io.BytesIO(_png_bytes()), dtype=np.int16)


def test_samples_are_readable():
    files = sorted(SAMPLES.glob("*.png")) + sorted(SAMPLES.glob("*.jpg"))
    assert len(files) >= 4
    channels = {load_image(f).channels for f in files}
    assert {"L", "RGB"} <= channels
    assert sum(f.stat().st_size for f in SAMPLES.iterdir()) < 1_000_000


# --------------------------------------------------------------------------- read errors


def _assert_one_line(exc: pytest.ExceptionInfo, name: str) -> str:
    text = str(exc.value)
    assert text.startswith(f"{name}: "), text
    assert "\n" not in text
    return text


def test_missing_file(tmp_path):
    path = tmp_path / "photo.png"
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert _assert_one_line(exc, str(path)).endswith("no such file")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert "empty file" in _assert_one_line(exc, str(path))


def test_random_bytes(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert "not an image Pillow can read" in _assert_one_line(exc, str(path))


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert _assert_one_line(exc, str(path)) == (
        f"{path}: not an image Pillow can read (cannot identify image file)"
    )


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated(tmp_path, fmt):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    path = save(Image.fromarray(noise), tmp_path / f"photo.{fmt}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert "truncated" in _assert_one_line(exc, str(path))


def test_truncated_16bit_colour_png(tmp_path):
    hwc = np.random.default_rng(0).integers(0, 65536, size=(32, 32, 3), dtype=np.uint16)
    data = encode_png16(np.moveaxis(hwc, -1, 0))
    path = tmp_path / "c16.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as exc:
        load_image(path)
    _assert_one_line(exc, str(path))


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path)
    assert "folder" in _assert_one_line(exc, str(tmp_path))


def test_empty_stream():
    with pytest.raises(ImageError, match=r"^in\.png: empty"):
        load_image(io.BytesIO(b""), name="in.png")


@pytest.mark.parametrize("limit", [100, 40])  # 64 px: warning zone (> limit) and error (> 2x)
def test_decompression_bomb(tmp_path, monkeypatch, limit):
    path = save(Image.new("L", (8, 8)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    if limit >= 64:
        load_image(path)  # under the limit: fine
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert "too many pixels" in _assert_one_line(exc, str(path))


# --------------------------------------------------------------------------- to_pixels


def test_auto_in_range_is_an_image():
    # was: auto -> "identity" (old rule); the new auto calls values in [0, 1] an image
    x = np.array([0.0, 0.25, 0.5, 1.0])
    px, m = to_pixels(x)
    assert px.dtype == np.uint8 and px.tolist() == [0, 64, 128, 255]
    assert (m.kind, m.lo, m.hi, m.clipped_fraction) == ("image", 0.0, 1.0, 0.0)


def test_auto_signed_values_put_zero_at_mid_grey():
    # was: auto -> minmax for values outside [0, 1]; the new auto maps signed values
    # symmetrically (here the robust scale is the exact |x| maximum: three values)
    px, m = to_pixels(np.array([-2.0, 0.0, 2.0]))
    assert px.tolist() == [0, 128, 255]
    assert (m.kind, m.lo, m.hi, m.clipped_fraction) == ("signed", -2.0, 2.0, 0.0)


def test_clip_counts_clipped():
    px, m = to_pixels(np.array([-1.0, 0.2, 0.6, 1.5]), range_mode="clip")
    assert px.tolist() == [0, 51, 153, 255]
    assert (m.range_mode, m.clipped_fraction) == ("clip", 0.5)


def test_minmax():
    px, m = to_pixels(np.array([[10.0, 12.0], [14.0, 20.0]]), range_mode="minmax")
    assert px.tolist() == [[0, 51], [102, 255]]
    assert (m.lo, m.hi) == (10.0, 20.0)


def test_minmax_constant_is_zeros():
    px, m = to_pixels(np.full((2, 3), 7.0), range_mode="minmax")
    assert px.tolist() == [[0, 0, 0], [0, 0, 0]] and m.clipped_fraction == 0.0


def test_abs():
    px, m = to_pixels(np.array([-4.0, -1.0, 0.0, 2.0]), range_mode="abs")
    assert px.tolist() == [255, 64, 0, 128]
    assert (m.range_mode, m.lo, m.hi) == ("abs", 0.0, 4.0)


def test_abs_minimum_is_not_zero():
    px, m = to_pixels(np.array([-3.0, 1.0, 2.0]), range_mode="abs")
    assert px.tolist() == [255, 0, 128] and (m.lo, m.hi) == (1.0, 3.0)


def test_offset():
    px, m = to_pixels(np.array([-2.0, -1.0, 0.0, 0.5, 2.0]), range_mode="offset")
    # v = 0.5 + x / 4 -> 0, .25, .5, .625, 1
    assert px.tolist() == [0, 64, 128, 159, 255]
    assert (m.lo, m.hi) == (-2.0, 2.0)


def test_offset_all_zero_is_mid_grey():
    px, _ = to_pixels(np.zeros(3), range_mode="offset")
    assert px.tolist() == [128, 128, 128]
    px16, _ = to_pixels(np.zeros(3), range_mode="offset", bit_depth=16)
    assert px16.tolist() == [32768] * 3


def test_16_bit():
    px, _ = to_pixels(np.array([0.0, 257 / 65535, 1.0]), bit_depth=16)
    assert px.dtype == np.uint16 and px.tolist() == [0, 257, 65535]


def test_nan_and_inf():
    x = np.array([np.nan, 0.0, 0.5, 1.0, np.inf])
    px, m = to_pixels(x, range_mode="minmax")
    assert px.tolist() == [0, 0, 128, 255, 255]
    assert m.clipped_fraction == pytest.approx(2 / 5) and (m.lo, m.hi) == (0.0, 1.0)
    px, m = to_pixels(np.array([np.nan, 0.5]))  # was "identity" under the old auto rule
    assert m.kind == "image" and px.tolist() == [0, 128] and m.clipped_fraction == 0.5


def test_shape_is_kept():
    px, _ = to_pixels(np.zeros((3, 4, 5), np.float32))
    assert px.shape == (3, 4, 5)


@pytest.mark.parametrize("kw", [{"range_mode": "loud"}, {"bit_depth": 12}])
def test_to_pixels_bad_arguments(kw):
    with pytest.raises(ParameterError):
        to_pixels(np.zeros(2), **kw)


# --------------------------------------------------------------------------- writers


def ramp(c: int, h: int = 3, w: int = 4) -> np.ndarray:
    """Values k/255 (exact in 8 bits) spread over c maps."""
    return (np.arange(c * h * w) % 256).reshape(c, h, w).astype(np.float32) / 255


def test_png_8bit_roundtrip_and_names(tmp_path):
    maps = ramp(3)
    res = write_feature_maps(maps, out=tmp_path, stem="cat", name="blur")
    assert isinstance(res, WriteResult)
    assert res.paths == [tmp_path / "cat.blur.png"] == res.planned
    assert res.mapping is not None and res.mapping.kind == "image"  # was "identity" (old auto)
    assert (res.mapping.lo, res.mapping.hi, res.mapping.clipped_fraction) == (0.0, 1.0, 0.0)
    back = load_image(res.paths[0])
    assert back.channels == "RGB" and back.mode == "RGB"
    np.testing.assert_array_equal(back.array, maps)


@pytest.mark.parametrize("c,mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_image_layout_channel_count_picks_mode(tmp_path, c, mode):
    res = write_feature_maps(ramp(c), out=tmp_path, stem="s", name="k")
    with Image.open(res.paths[0]) as img:
        assert img.mode == mode


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_png_16bit_roundtrip(tmp_path, c):
    rng = np.random.default_rng(c)
    ints = rng.integers(0, 65536, size=(c, 5, 7))
    ints.flat[0], ints.flat[1] = 257, 65535
    maps = (ints / 65535).astype(np.float64)
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", bit_depth=16)
    back = load_image(res.paths[0])
    assert back.bit_depth == 16 and back.channels == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    np.testing.assert_array_equal(u16(back.array), ints)


def test_png_16bit_readable_by_others(tmp_path):
    cv2 = pytest.importorskip("cv2")
    ints = np.random.default_rng(0).integers(0, 65536, size=(4, 6, 9))
    res = write_feature_maps(ints / 65535, out=tmp_path, stem="s", name="k", bit_depth=16)
    bgra = cv2.imread(str(res.paths[0]), cv2.IMREAD_UNCHANGED)
    assert bgra.dtype == np.uint16
    np.testing.assert_array_equal(np.moveaxis(bgra[..., [2, 1, 0, 3]], -1, 0), ints)


def test_tiff_float32_exact(tmp_path):
    maps = np.random.default_rng(0).normal(size=(3, 6, 5)).astype(np.float32)
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", fmt="tiff")
    assert res.paths == [tmp_path / "s.k.tif"] and res.mapping is None
    with Image.open(res.paths[0]) as img:
        assert img.mode == "F" and img.n_frames == 3
    np.testing.assert_array_equal(read_image(res.paths[0]), maps)


def test_tiff_maps_layout_one_grey_float_file_per_map(tmp_path):
    maps = np.random.default_rng(0).normal(size=(5, 4, 4)).astype(np.float32)
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", fmt="tiff", layout="maps")
    assert [p.name for p in res.paths] == [f"s.k.{i}.tif" for i in range(5)]
    for i, p in enumerate(res.paths):
        np.testing.assert_array_equal(read_image(p)[0], maps[i])


def test_tiff_readable_by_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    maps = np.random.default_rng(0).normal(size=(3, 6, 5)).astype(np.float32)
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", fmt="tiff")
    np.testing.assert_array_equal(tifffile.imread(res.paths[0]), maps)


def test_npy_exact(tmp_path):
    maps = np.random.default_rng(0).normal(size=(7, 3, 2)).astype(np.float32)
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", fmt="npy", layout="maps")
    assert res.paths == [tmp_path / "s.k.npy"] and res.mapping is None
    np.testing.assert_array_equal(np.load(res.paths[0]), maps)


def test_npz_holds_maps_labels_params(tmp_path):
    maps = np.random.default_rng(0).normal(size=(4, 3, 2))
    params = {"kernel": "sobel", "stride": [1, 1], "out": tmp_path}
    res = write_feature_maps(
        maps,
        out=tmp_path,
        stem="s",
        name="sobel",
        fmt="npz",
        layout="bank:2",
        labels=["x", "y"],
        params=params,
    )
    assert res.paths == [tmp_path / "s.sobel.npz"]
    with np.load(res.paths[0]) as z:
        assert z["maps"].dtype == np.float32
        np.testing.assert_array_equal(z["maps"], maps.astype(np.float32))
        assert z["labels"].tolist() == ["x.L", "x.A", "y.L", "y.A"]
        loaded = json.loads(str(z["params"]))
    assert loaded == {"kernel": "sobel", "stride": [1, 1], "out": str(tmp_path)}


def test_bank_layout_one_picture_per_kernel(tmp_path):
    maps = ramp(6)  # 2 kernels x RGB
    res = write_feature_maps(
        maps, out=tmp_path, stem="cat", name="sobel", layout="bank:2", labels=["x", "y"]
    )
    assert [p.name for p in res.paths] == ["cat.sobel.x.png", "cat.sobel.y.png"]
    np.testing.assert_array_equal(read_image(res.paths[1]), maps[3:])


def test_maps_layout_zero_padded_indices(tmp_path):
    maps = np.random.default_rng(0).random((12, 2, 2))
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="layer", layout="maps")
    assert [p.name for p in res.paths] == [f"s.layer.{i:02d}.png" for i in range(12)]
    with Image.open(res.paths[0]) as img:
        assert img.mode == "L"


def test_one_mapping_for_all_files_with_input_scope(tmp_path):
    # was the default (one mapping for all files, old auto = minmax); now range_scope="input"
    maps = np.stack([np.zeros((2, 2)), np.full((2, 2), 4.0)])
    res = write_feature_maps(
        maps, out=tmp_path, stem="s", name="k", layout="maps", range_mode="minmax",
        range_scope="input",
    )  # fmt: skip
    assert (res.mapping.range_mode, res.mapping.lo, res.mapping.hi) == ("minmax", 0.0, 4.0)
    assert res.mappings == [res.mapping, res.mapping]
    assert read_image(res.paths[0]).max() == 0.0 and read_image(res.paths[1]).min() == 1.0


@pytest.mark.parametrize("mode", ["clip", "minmax", "abs", "offset"])
def test_range_mode_is_passed_on(tmp_path, mode):
    maps = np.array([[[-1.0, 0.0, 0.5]]])
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", range_mode=mode)
    expected, mapping = to_pixels(maps, range_mode=mode)
    assert mapping.kind == mode
    assert res.mapping == mapping
    np.testing.assert_array_equal(u8(read_image(res.paths[0])), expected)


def test_names_are_made_safe(tmp_path):
    res = write_feature_maps(ramp(1), out=tmp_path, stem="a/b", name="gaussian:5:1.5")
    assert res.paths == [tmp_path / "a_b.gaussian_5_1.5.png"]


def test_file_names_the_output(tmp_path):
    target = tmp_path / "sub" / "blurred.tiff"
    res = write_feature_maps(ramp(3), out="ignored", stem="s", name="k", file=target)
    assert res.paths == [target] and res.mapping is None
    np.testing.assert_array_equal(read_image(target), ramp(3))
    assert not Path("ignored").exists()


def test_file_with_montage_goes_beside(tmp_path):
    res = write_feature_maps(ramp(3), stem="s", name="k", file=tmp_path / "b.png", montage=True)
    assert res.paths == [tmp_path / "b.png", tmp_path / "b.montage.png"]


def test_file_needs_one_output(tmp_path):
    with pytest.raises(OutputError, match="makes 2 files"):
        write_feature_maps(ramp(2), stem="s", name="k", layout="maps", file=tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_file_extension_unknown(tmp_path):
    # was ".jpg" (refused before jpeg output existed)
    with pytest.raises(ParameterError, match=r"\.gif"):
        write_feature_maps(ramp(3), stem="s", name="k", file=tmp_path / "x.gif")


def test_stdout(monkeypatch):
    class FakeStdout:
        buffer = io.BytesIO()

    fake = FakeStdout()
    monkeypatch.setattr("sys.stdout", fake)
    res = write_feature_maps(ramp(3), out="-", stem="s", name="k")
    assert res.paths == [Path("-")]
    np.testing.assert_array_equal(read_image(io.BytesIO(fake.buffer.getvalue())), ramp(3))


def test_stdout_one_image_only(monkeypatch):
    with pytest.raises(OutputError):
        write_feature_maps(ramp(2), file="-", stem="s", name="k", layout="maps")


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"layout": "rows"}, "unknown layout"),
        ({"layout": "bank:4"}, "do not split"),
        ({"layout": "bank:x"}, "unknown layout"),
        ({"layout": "maps", "labels": ["a"]}, "1 labels given for 6 maps"),
        ({"layout": "maps", "labels": ["a"] * 6}, "same file name"),
        ({"fmt": "gif"}, "format must be one of png, jpeg, webp, tiff, npy, npz, keep; got 'gif'"),
        ({"layout": "maps", "bit_depth": 10}, "bit depth"),
        ({"layout": "maps", "range_mode": "x"}, "range mode"),
        ({}, "6 channels cannot form one png"),
    ],
)
def test_bad_write_parameters(tmp_path, kw, match):
    with pytest.raises(ParameterError, match=match):
        write_feature_maps(ramp(6), out=tmp_path, stem="s", name="k", **kw)
    assert list(tmp_path.iterdir()) == []


def test_bad_map_shapes(tmp_path):
    with pytest.raises(ParameterError):
        write_feature_maps(np.zeros((1, 2, 3, 4)), out=tmp_path, stem="s", name="k")
    with pytest.raises(ParameterError):
        write_feature_maps(np.zeros((1, 0, 3)), out=tmp_path, stem="s", name="k")


def test_two_d_maps_are_one_grey_picture(tmp_path):
    res = write_feature_maps(np.zeros((3, 4)), out=tmp_path, stem="s", name="k")
    assert read_image(res.paths[0]).shape == (1, 3, 4)


def test_plan_outputs_matches_write(tmp_path):
    kw = dict(out=tmp_path, stem="s", name="k", layout="bank:3", montage=True)
    planned = plan_outputs("s", "k", 6, "bank:3", out=tmp_path, fmt="png", montage=True)
    res = write_feature_maps(ramp(6), **kw)
    assert res.paths == planned == res.planned
    assert [p.name for p in planned] == ["s.k.0.png", "s.k.1.png", "s.k.2.png", "s.k.montage.png"]


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "out"
    res = write_feature_maps(ramp(3), out=out, stem="s", name="k", montage=True, dry_run=True)
    assert res.paths == [] and res.planned == [out / "s.k.png", out / "s.k.montage.png"]
    assert not out.exists()


# --------------------------------------------------------------------------- montage


def test_montage(tmp_path):
    maps = np.random.default_rng(0).normal(size=(6, 20, 30))
    res = write_feature_maps(
        maps,
        out=tmp_path,
        stem="s",
        name="k",
        layout="maps",
        montage=True,
        labels=[f"map-{i}" for i in range(6)],
    )
    assert res.paths[-1] == tmp_path / "s.k.montage.png" and len(res.paths) == 7
    with Image.open(res.paths[-1]) as img:
        assert img.mode == "L"
        w, h = img.size
    # 3 columns x 2 rows of 90x60 tiles (30x20 enlarged 3x to reach 64 px), 4-px gaps
    assert w == 4 + 3 * (90 + 4) and h > 4 + 2 * (60 + 4)


def test_montage_tiles_are_normalised_each_on_its_own():
    row = np.linspace(0, 1, 64)
    maps = np.stack([np.tile(row, (64, 1)), np.tile(9 * row - 3, (64, 1))])
    # was the montage default; tiles now follow the files' rule, so ask for minmax
    sheet = np.asarray(montage_image(maps, ["a", "b"], gap=4, range_mode="minmax"))
    left = sheet[4 : 4 + 64, 4 : 4 + 64]
    right = sheet[4 : 4 + 64, 4 + 68 : 4 + 68 + 64]
    np.testing.assert_array_equal(left, right)
    assert left.min() == 0 and left.max() == 255


def test_montage_shrinks_big_maps():
    sheet = montage_image(np.zeros((1, 1000, 500)))
    assert sheet.width == 4 + 128 + 4


# --------------------------------------------------------------------------- safety


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_no_temp_files_left(tmp_path):
    write_feature_maps(ramp(4), out=tmp_path, stem="s", name="k", layout="maps", montage=True)
    assert _leftovers(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 5


def test_output_permissions_follow_umask(tmp_path):
    res = write_feature_maps(ramp(1), out=tmp_path, stem="s", name="k")
    mask = os.umask(0o022)
    os.umask(mask)
    assert res.paths[0].stat().st_mode & 0o777 == 0o666 & ~mask


def test_creates_out_folders(tmp_path):
    res = write_feature_maps(ramp(1), out=tmp_path / "a" / "b", stem="s", name="k")
    assert res.paths[0].exists()


def test_failing_write_leaves_nothing(tmp_path, monkeypatch):
    import convcli.imageio.write as writer

    real_encode = writer.write_png
    calls = []

    def failing_encode(fh, pixels, **kwargs):
        calls.append(pixels)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_encode(fh, pixels, **kwargs)

    monkeypatch.setattr(writer, "write_png", failing_encode)
    with pytest.raises(OutputError) as exc:
        write_feature_maps(ramp(3), out=tmp_path, stem="s", name="k", layout="maps")
    assert str(exc.value) == f"{tmp_path / 's.k.1.png'}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []  # neither the first file nor any temp file


def test_interrupt_leaves_nothing(tmp_path, monkeypatch):
    import convcli.imageio.write as writer

    def interrupted(fh, pixels, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "write_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_feature_maps(ramp(3), out=tmp_path, stem="s", name="k")
    assert list(tmp_path.iterdir()) == []


def test_failing_rename_leaves_nothing(tmp_path, monkeypatch):
    real_link = os.link  # the rename step: link to claim a new name (os.replace with force)
    calls = []

    def failing_link(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EACCES, "Permission denied")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(OutputError, match="Permission denied"):
        write_feature_maps(ramp(2), out=tmp_path, stem="s", name="k", layout="maps")
    assert _leftovers(tmp_path) == []


def test_existing_output_needs_force(tmp_path):
    write_feature_maps(ramp(1), out=tmp_path, stem="s", name="k")
    with pytest.raises(OutputError) as exc:
        write_feature_maps(ramp(1) / 2, out=tmp_path, stem="s", name="k")
    assert str(exc.value) == (
        f"{tmp_path / 's.k.png'} exists (use --force to overwrite or --skip-existing to resume)"
    )
    write_feature_maps(ramp(1) / 2, out=tmp_path, stem="s", name="k", force=True)
    np.testing.assert_array_equal(u8(read_image(tmp_path / "s.k.png")), u8(ramp(1) / 2))


def test_all_outputs_checked_before_any_is_written(tmp_path):
    (tmp_path / "s.k.2.png").write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"s\.k\.2\.png exists"):
        write_feature_maps(ramp(3), out=tmp_path, stem="s", name="k", layout="maps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.k.2.png"]
    assert (tmp_path / "s.k.2.png").read_bytes() == b"keep me"


def test_never_overwrites_an_input(tmp_path):
    src = save(Image.fromarray(RGB_PIXELS), tmp_path / "in.png")
    before = src.read_bytes()
    with pytest.raises(OutputError, match="is an input"):
        write_feature_maps(ramp(3), stem="s", name="k", file=src, force=True, inputs=[src])
    # same file spelled differently
    other = tmp_path / "x" / ".." / "in.png"
    (tmp_path / "x").mkdir()
    with pytest.raises(OutputError, match="is an input"):
        write_feature_maps(ramp(3), stem="s", name="k", file=other, force=True, inputs=[src])
    assert src.read_bytes() == before


def test_never_overwrites_an_input_through_a_link(tmp_path):
    src = save(Image.fromarray(RGB_PIXELS), tmp_path / "in.png")
    link = tmp_path / "out.png"
    os.link(src, link)
    with pytest.raises(OutputError, match="is an input"):
        write_feature_maps(ramp(3), stem="s", name="k", file=link, force=True, inputs=[src])


def test_file_where_folder_should_be(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("I am a file")
    with pytest.raises(OutputError) as exc:
        write_feature_maps(ramp(1), out=blocker / "deeper", stem="s", name="k")
    assert str(exc.value).startswith(f"{blocker}: is a file, not a folder")


def test_folder_where_file_should_be(tmp_path):
    (tmp_path / "s.k.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_feature_maps(ramp(1), out=tmp_path, stem="s", name="k", force=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            write_feature_maps(ramp(1), out=ro, stem="s", name="k")
    finally:
        ro.chmod(0o700)


def test_check_outputs_allows_stdout_and_new_files(tmp_path):
    check_outputs([Path("-"), tmp_path / "new.png"], inputs=["-"])


def _imagemagick() -> bool:
    """A real ImageMagick ``convert`` (not a stand-in of the same name)."""
    if shutil.which("convert") is None:
        return False
    try:
        done = subprocess.run(["convert", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return "ImageMagick" in done.stdout


@pytest.mark.skipif(not _imagemagick(), reason="ImageMagick not installed")
def test_16bit_png_understood_by_imagemagick(tmp_path):
    ints = np.array([[[0, 257, 65535]]] * 3)
    res = write_feature_maps(ints / 65535, out=tmp_path, stem="s", name="k", bit_depth=16)
    out = subprocess.run(
        ["convert", str(res.paths[0]), "-depth", "16", "txt:-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(0,0,0)" in out.replace(" ", "") or "0,0,0" in out
    assert "65535,65535,65535" in out.replace(" ", "")


def test_grey_and_rgb_with_transparent_colour_get_alpha(tmp_path):
    grey = Image.fromarray(np.array([[0, 100, 200]], np.uint8))
    im = load_image(save(grey, tmp_path / "l.png", transparency=100))
    assert im.channels == "LA"
    np.testing.assert_array_equal(im.array[1, 0], [1, 0, 1])
    rgb = Image.fromarray(np.array([[[0, 0, 0], [1, 2, 3]]], np.uint8))
    im = load_image(save(rgb, tmp_path / "rgb.png", transparency=(1, 2, 3)))
    assert im.channels == "RGBA"
    np.testing.assert_array_equal(im.array[3, 0], [1, 0])


def test_montage_labels_for_a_bank(tmp_path):
    res = write_feature_maps(
        ramp(6), out=tmp_path, stem="s", name="k", fmt="npz", layout="bank:2", labels=["x", "y"]
    )
    with np.load(res.paths[0]) as z:
        assert z["labels"].tolist() == ["x.R", "x.G", "x.B", "y.R", "y.G", "y.B"]
