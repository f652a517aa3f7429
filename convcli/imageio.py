"""Images in and out: Pillow <-> ``(C, H, W)`` float arrays, feature-map writers.

Reading (:func:`load_image`, :func:`read_image`) turns any image Pillow opens
into a channels-first float array: colour channels first, alpha last; integer
images scaled to ``[0, 1]`` by their type's maximum (8-bit / 255, 16-bit /
65535, without going through 8 bits), ``I`` and ``F`` images kept raw. EXIF
orientation is applied. Every failure is one :class:`~convcli.errors.ImageError`
whose message starts with the file name.

Writing (:func:`write_feature_maps`) turns a ``(C, H, W)`` stack into png
(8- or 16-bit, through :func:`to_pixels`), float32 tiff, npy or npz files named
``<out>/<stem>.<name>[.<map>].<ext>``. Every file is written to a temporary
file in its folder and renamed into place only when all files of the call were
encoded, so an error or Ctrl-C leaves no partial output. Existing outputs are
not overwritten without ``force``; inputs never are.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from convcli.errors import ImageError, OutputError, ParameterError

__all__ = [
    "FORMATS",
    "RANGE_MODES",
    "ImageData",
    "MapImage",
    "WriteResult",
    "check_outputs",
    "encode_png16",
    "load_image",
    "montage_image",
    "plan_outputs",
    "read_image",
    "to_pixels",
    "write_feature_maps",
]

#: Output formats, and the file extensions that select them with ``file=``.
FORMATS = ("png", "tiff", "npy", "npz")
_EXTENSIONS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".npz": "npz"}
#: Float -> pixel mappings accepted by :func:`to_pixels` (``identity`` is ``clip`` by its name).
RANGE_MODES = ("auto", "identity", "clip", "minmax", "abs", "offset")
#: Channel names of a picture with 1..4 channels.
_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ImageData:
    """An image as a channels-first float array, with where it came from.

    Attributes
    ----------
    array : numpy.ndarray
        ``(C, H, W)`` float32 (or the dtype asked for); colour channels first,
        alpha last when present.
    channels : str
        What the array's channels are: ``"L"``, ``"LA"``, ``"RGB"`` or ``"RGBA"``.
    mode : str
        The Pillow mode of the file, e.g. ``"P"``, ``"I;16"``, ``"CMYK"``.
    bit_depth : int
        Bits per sample in the file: 1, 8, 16 or 32 (``I`` and ``F``).
    path : str
        The file name as given, ``"-"`` for stdin.
    """

    array: np.ndarray
    channels: str
    mode: str
    bit_depth: int
    path: str

    @property
    def has_alpha(self) -> bool:
        """True when the last channel is alpha."""
        return self.channels in ("LA", "RGBA")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of :attr:`array`."""
        c, h, w = self.array.shape
        return c, h, w


def read_image(
    source: str | Path | BinaryIO, *, gray: bool = False, dtype: Any = np.float32
) -> np.ndarray:
    """Read an image file into a ``(C, H, W)`` float array.

    Same as ``load_image(...).array``; see :func:`load_image` for the rules.

    Parameters
    ----------
    source : str, Path or binary file object
        A path, ``"-"`` for stdin, or an open binary file.
    gray : bool
        Convert colour to ITU-R 601-2 luma first (alpha is kept).
    dtype : numpy dtype
        ``float32`` (default) or ``float64``.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)``; colour channels first, alpha last.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (4, 2), (255, 0, 51)).save(buf, "PNG")
    >>> x = read_image(io.BytesIO(buf.getvalue()))
    >>> x.shape, x.dtype, x[:, 0, 0].tolist()
    ((3, 2, 4), dtype('float32'), [1.0, 0.0, 0.20000000298023224])
    """
    return load_image(source, gray=gray, dtype=dtype).array


def load_image(
    source: str | Path | BinaryIO,
    *,
    gray: bool = False,
    dtype: Any = np.float32,
    name: str | None = None,
) -> ImageData:
    """Read an image into an :class:`ImageData` (channels-first float array + facts).

    Reads every mode Pillow opens. ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ...
    become ``L``/``LA``/``RGB``/``RGBA`` floats: ``P`` becomes ``RGB``, or ``RGBA``
    when it has transparency; ``CMYK`` and ``YCbCr`` become ``RGB``. Integer
    samples are divided by their type's maximum (255 or 65535; 16-bit data is
    converted in numpy, never through 8 bits, including 16-bit colour PNGs that
    Pillow itself would truncate). ``I`` (32-bit integer) and ``F`` (float)
    images keep their raw values. GIFs and other animations give their first
    frame; a multi-page TIFF whose 2 to 4 pages are all 32-bit float of one size
    (what :func:`write_feature_maps` writes for a colour picture) gives one
    channel per page. EXIF orientation is applied.

    Parameters
    ----------
    source : str, Path or binary file object
        A path, ``"-"`` for stdin, or an open binary file (read to its end).
    gray : bool
        Convert to luma ``L = 0.299 R + 0.587 G + 0.114 B`` (ITU-R 601-2),
        computed in float on the scaled data; alpha is kept (``RGBA`` -> ``LA``).
    dtype : numpy dtype
        ``float32`` (default) or ``float64``.
    name : str, optional
        The name to use in messages and :attr:`ImageData.path` (default: the
        path, the file object's ``name``, or ``"-"``).

    Returns
    -------
    ImageData

    Raises
    ------
    convcli.errors.ImageError
        Missing, empty, truncated or unreadable file, or one larger than
        ``PIL.Image.MAX_IMAGE_PIXELS`` (decompression-bomb guard). The message
        is one line that starts with the file name.
    convcli.errors.ParameterError
        A dtype other than float32/float64.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGBA", (3, 2), (255, 255, 255, 128)).save(buf, "PNG")
    >>> im = load_image(io.BytesIO(buf.getvalue()), gray=True, name="white.png")
    >>> im.channels, im.mode, im.bit_depth, im.has_alpha, im.array.shape
    ('LA', 'RGBA', 8, True, (2, 2, 3))
    >>> round(float(im.array[1, 0, 0]), 4)  # alpha 128 / 255
    0.502
    """
    out_dtype = _float_dtype(dtype)
    label, data = _open_source(source, name)
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd but readable files (corrupt EXIF, palette
            # transparency, ...): not our user's problem. The decompression-bomb
            # warning is the exception: it must stop the read.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if data is not None:
                img = Image.open(io.BytesIO(data))
            else:
                img = Image.open(label)
            with img:
                return _decode(img, label, data, gray=gray, dtype=out_dtype)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        problem = f"too many pixels, refusing to decode ({_one_line(exc)})"
        raise ImageError(f"{label}: {problem}") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"{label}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{label}: is a folder, not an image file") from exc
    except PermissionError as exc:
        raise ImageError(f"{label}: permission denied") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{label}: not an image Pillow can read (cannot identify image file)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        text = _one_line(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageError(f"{label}: truncated image ({text})") from exc
        raise ImageError(f"{label}: broken image data ({text})") from exc


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ParameterError(f"dtype must be float32 or float64, not {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, not {dt}")
    return dt


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def _open_source(source: str | Path | BinaryIO, name: str | None) -> tuple[str, bytes | None]:
    """Return the label for messages and the bytes (None: open the path directly)."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        label = name or str(text)
        if text == "-":
            data = sys.stdin.buffer.read()
            if not data:
                raise ImageError(f"{label}: empty input (0 bytes)")
            return label, data
        try:
            size = os.stat(text).st_size
        except FileNotFoundError as exc:
            raise ImageError(f"{label}: no such file") from exc
        except OSError as exc:
            raise ImageError(f"{label}: cannot read ({exc.strerror or exc})") from exc
        if os.path.isdir(text):
            raise ImageError(f"{label}: is a folder, not an image file")
        if size == 0:
            raise ImageError(f"{label}: empty file (0 bytes)")
        return label, None
    label = name or str(getattr(source, "name", "") or "-")
    try:
        data = source.read()
    except OSError as exc:
        raise ImageError(f"{label}: cannot read ({exc.strerror or exc})") from exc
    if not isinstance(data, bytes | bytearray):
        raise ImageError(f"{label}: not a binary file object (read() gave {type(data).__name__})")
    if not data:
        raise ImageError(f"{label}: empty file (0 bytes)")
    return label, bytes(data)


def _decode(
    img: Image.Image, label: str, data: bytes | None, *, gray: bool, dtype: np.dtype
) -> ImageData:
    src_mode = img.mode
    fmt = img.format
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and img.width * img.height > limit:
        # Also checked here, not only through Pillow's warning, whose filter is
        # process-wide state that another thread may be changing.
        raise ImageError(
            f"{label}: too many pixels, refusing to decode ({img.width}x{img.height} = "
            f"{img.width * img.height} pixels > PIL.Image.MAX_IMAGE_PIXELS = {limit})"
        )
    rawmode = _tile_rawmode(img)
    float_pages = _float_tiff_pages(img)
    img.load()  # full decode here, so truncation is an error of the read
    png16 = fmt == "PNG" and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B")
    if png16:
        raw = data if data is not None else Path(label).read_bytes()
        arr, channels = _decode_png16(raw)
        arr = _orient_array(img, arr)
        return _finish(arr / 65535.0, channels, src_mode, 16, label, gray=gray, dtype=dtype)
    _exif_transpose(img)
    if float_pages:
        pages = [np.asarray(img, dtype=np.float32)]
        for k in range(1, float_pages):
            img.seek(k)
            img.load()
            pages.append(np.asarray(img, dtype=np.float32))
        arr = np.stack(pages, axis=-1)
        return _finish(arr, _CHANNELS[float_pages], "F", 32, label, gray=gray, dtype=dtype)
    arr, channels, bits = _to_array(img, rawmode)
    return _finish(arr, channels, src_mode, bits, label, gray=gray, dtype=dtype)


def _tile_rawmode(img: Image.Image) -> str:
    tile = getattr(img, "tile", None) or []
    try:
        args = tile[0][3]
    except (IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _float_tiff_pages(img: Image.Image) -> int:
    """2..4 when img is a multi-page TIFF of same-size float pages (our colour tiff)."""
    if img.format != "TIFF" or img.mode != "F":
        return 0
    n = getattr(img, "n_frames", 1)
    if not 2 <= n <= 4:
        return 0
    size = img.size
    try:
        for k in range(1, n):
            img.seek(k)
            if img.mode != "F" or img.size != size:
                return 0
    finally:
        img.seek(0)
    return n


def _exif_transpose(img: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except (SyntaxError, ValueError, OSError, KeyError, TypeError, struct.error):
        pass  # unreadable EXIF: keep the stored orientation


def _orient_array(img: Image.Image, arr: np.ndarray) -> np.ndarray:
    """Apply EXIF orientation to an (H, W, C) array decoded outside Pillow."""
    try:
        orientation = img.getexif().get(0x0112, 1)
    except (SyntaxError, ValueError, OSError, KeyError, TypeError, struct.error):
        return arr
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _to_array(img: Image.Image, rawmode: str) -> tuple[np.ndarray, str, int]:
    """(H, W[, C]) samples scaled to [0, 1] (or raw for I/F), channel names, bit depth."""
    mode = img.mode
    has_trns = "transparency" in img.info
    if mode == "1":
        return np.asarray(img, dtype=np.float64), "L", 1
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.float64) / 65535.0, "L", 16
    if mode == "I":
        arr = np.asarray(img)
        if img.format == "PNG" and rawmode.startswith("I;16"):
            # Older Pillow opens 16-bit grey PNG as "I": still 16-bit data.
            return arr.astype(np.float64) / 65535.0, "L", 16
        return arr.astype(np.float64), "L", 32
    if mode == "F":
        return np.asarray(img, dtype=np.float64), "L", 32
    if mode == "L":
        if has_trns:
            return _u8(img.convert("LA")), "LA", 8
        return _u8(img), "L", 8
    if mode in ("LA", "La"):
        return _u8(img if mode == "LA" else img.convert("LA")), "LA", 8
    if mode in ("P", "PA"):
        if mode == "PA" or has_trns:
            return _u8(img.convert("RGBA")), "RGBA", 8
        return _u8(img.convert("RGB")), "RGB", 8
    if mode == "RGB":
        if has_trns:
            return _u8(img.convert("RGBA")), "RGBA", 8
        return _u8(img), "RGB", 8
    if mode == "RGBA":
        return _u8(img), "RGBA", 8
    if mode in ("RGBa", "RGBX") or mode.startswith("RGBA"):
        target = "RGBA" if mode == "RGBa" else "RGB"
        return _u8(img.convert(target)), target, 8
    # CMYK, YCbCr, LAB, HSV, ...: Pillow's own conversion to RGB.
    return _u8(img.convert("RGB")), "RGB", 8


def _u8(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8).astype(np.float64) / 255.0


def _finish(
    arr: np.ndarray, channels: str, mode: str, bits: int, label: str, *, gray: bool, dtype: np.dtype
) -> ImageData:
    chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    if gray and channels in ("RGB", "RGBA"):
        r, g, b = (chw[i].astype(np.float64) for i in range(3))
        luma = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
        if channels == "RGBA":
            chw = np.stack([luma, chw[3]])
            channels = "LA"
        else:
            chw = luma[None]
            channels = "L"
    out = np.ascontiguousarray(chw, dtype=dtype)
    return ImageData(array=out, channels=channels, mode=mode, bit_depth=bits, path=label)


# --------------------------------------------------------------------------- 16-bit PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_PNG_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
# Adam7 passes: (first row, first column, row step, column step)
_ADAM7 = (
    (0, 0, 8, 8),
    (0, 4, 8, 8),
    (4, 0, 8, 4),
    (0, 2, 4, 4),
    (2, 0, 4, 2),
    (0, 1, 2, 2),
    (1, 0, 2, 1),
)


def encode_png16(pixels: np.ndarray) -> bytes:
    """Encode 16-bit samples as a PNG file (grey, grey+alpha, RGB or RGBA).

    Pillow cannot write 16-bit colour PNGs, so this small encoder does it for
    every channel count: one IDAT chunk, "Sub" row filter, zlib level 6.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``(C, H, W)`` with C in 1..4, or ``(H, W)``; values 0..65535.

    Returns
    -------
    bytes
        The complete PNG file.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> png = encode_png16(np.array([[[0, 257, 65535]]], dtype=np.uint16))
    >>> im = Image.open(io.BytesIO(png))
    >>> im.mode, np.asarray(im).tolist()
    ('I;16', [[0, 257, 65535]])
    """
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[None]
    if px.ndim != 3 or px.shape[0] not in _PNG_COLOR_TYPE:
        raise ParameterError(f"a png holds 1 to 4 channels, got an array of shape {px.shape}")
    c, h, w = px.shape
    if h == 0 or w == 0:
        raise ParameterError(f"cannot write an empty image ({h}x{w}) as png")
    rows = np.ascontiguousarray(np.moveaxis(px, 0, -1), dtype=">u2").view(np.uint8)
    rows = rows.reshape(h, w * c * 2)
    bpp = c * 2
    filtered = rows.copy()
    filtered[:, bpp:] = rows[:, bpp:] - rows[:, :-bpp]  # Sub filter, uint8 wraps mod 256
    raw = np.empty((h, 1 + w * bpp), dtype=np.uint8)
    raw[:, 0] = 1
    raw[:, 1:] = filtered
    ihdr = struct.pack(">IIBBBBB", w, h, 16, _PNG_COLOR_TYPE[c], 0, 0, 0)
    return b"".join(
        [
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)),
            _png_chunk(b"IEND", b""),
        ]
    )


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _decode_png16(data: bytes) -> tuple[np.ndarray, str]:
    """Decode a 16-bit grey+alpha / RGB / RGBA PNG to (H, W, C) uint16 (Pillow gives 8 bits)."""
    if data[:8] != _PNG_SIGNATURE:
        raise SyntaxError("not a PNG file")
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise EOFError("truncated PNG chunk")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise SyntaxError("PNG without IHDR or IDAT")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 16 or ctype not in _PNG_CHANNELS:
        raise SyntaxError(f"unexpected PNG header (bit depth {depth}, colour type {ctype})")
    c = _PNG_CHANNELS[ctype]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise EOFError(f"truncated PNG data ({exc})") from exc
    bpp = 2 * c
    out = np.empty((h, w, c), dtype=np.uint16)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    pos = 0
    for y0, x0, dy, dx in passes:
        ph, pw = len(range(y0, h, dy)), len(range(x0, w, dx))
        if ph == 0 or pw == 0:
            continue
        n = ph * (1 + pw * bpp)
        chunk = raw[pos : pos + n]
        if len(chunk) != n:
            raise EOFError("truncated PNG data")
        pos += n
        rows = _unfilter(np.frombuffer(chunk, dtype=np.uint8).reshape(ph, 1 + pw * bpp), bpp)
        sub = rows.view(">u2").reshape(ph, pw, c)
        out[y0::dy, x0::dx] = sub
    return out, _CHANNELS[c]


def _unfilter(scan: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters; scan is (rows, 1 + row bytes) with the filter byte first.

    Rows filtered with None/Sub/Up are undone a row at a time. Average and
    Paeth depend on the decoded pixel to the left, so images using them are
    decoded along anti-diagonals (every pixel of one diagonal only needs the
    previous diagonals): h + w numpy steps instead of a Python loop per byte.
    """
    h, n = scan.shape[0], scan.shape[1] - 1
    kinds = scan[:, 0]
    if h and int(kinds.max()) > 4:
        raise SyntaxError(f"bad PNG filter type {int(kinds.max())}")
    raw = scan[:, 1:]
    if not np.isin(kinds, (3, 4)).any():
        out = np.empty((h, n), dtype=np.uint8)
        prev = np.zeros(n, dtype=np.uint8)
        for y in range(h):
            kind, line = kinds[y], raw[y]
            if kind == 0:
                out[y] = line
            elif kind == 1:
                out[y] = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(n)
            else:
                out[y] = line + prev  # uint8 wraps mod 256
            prev = out[y]
        return out
    w = n // bpp
    r = raw.reshape(h, w, bpp).astype(np.int16)
    dec = np.zeros((h + 1, w + 1, bpp), dtype=np.int16)  # dec[y + 1, x + 1] is pixel (y, x)
    k = kinds.astype(np.int16)
    for d in range(h + w - 1):
        ys = np.arange(max(0, d - w + 1), min(h, d + 1))
        xs = d - ys
        a, b, c = dec[ys + 1, xs], dec[ys, xs + 1], dec[ys, xs]  # left, up, up-left
        kk = k[ys][:, None]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([kk == 1, kk == 2, kk == 3, kk == 4], [a, b, (a + b) >> 1, paeth], 0)
        dec[ys + 1, xs + 1] = (r[ys, xs] + pred) & 0xFF
    return dec[1:, 1:].astype(np.uint8).reshape(h, n)


# --------------------------------------------------------------------------- float -> pixels


@dataclass(frozen=True)
class MapImage:
    """How floats were turned into pixels by :func:`to_pixels`.

    Attributes
    ----------
    range_mode : str
        The mapping actually used: ``identity``, ``clip``, ``minmax``, ``abs`` or
        ``offset`` (``auto`` resolves to ``identity`` or ``minmax``).
    clipped_fraction : float
        Share of values (0..1) that fell outside the mapped range, plus NaNs.
    lo, hi : float
        The input values mapped to 0 and to full scale (for ``abs``: of ``|x|``).
    """

    range_mode: str
    clipped_fraction: float
    lo: float
    hi: float


def to_pixels(
    maps: np.ndarray, *, range_mode: str = "auto", bit_depth: int = 8
) -> tuple[np.ndarray, MapImage]:
    """Map float values to 8- or 16-bit pixels, all values with one mapping.

    ``v`` in [0, 1] becomes ``floor(v * full + 0.5)`` with ``full`` = 255 or 65535.

    - ``auto``: ``identity`` when every finite value lies in [0, 1], else ``minmax``.
    - ``identity`` / ``clip``: ``v = x``, values outside [0, 1] clipped (and counted).
    - ``minmax``: ``v = (x - min) / (max - min)``; a constant input gives all zeros.
    - ``abs``: ``minmax`` of ``|x|`` (edge maps: both signs bright).
    - ``offset``: ``v = 0.5 + x / (2 max|x|)``: 0 is mid-grey (128 / 32768),
      sign is kept, the scale is symmetric; all zeros give mid-grey.

    NaN becomes 0 and counts as clipped; ±inf clip to the ends and count as
    clipped; min and max are taken over finite values only.

    Parameters
    ----------
    maps : numpy.ndarray
        Any shape.
    range_mode : str
        One of :data:`RANGE_MODES`.
    bit_depth : int
        8 (uint8) or 16 (uint16).

    Returns
    -------
    pixels : numpy.ndarray
        uint8 or uint16, same shape as ``maps``.
    mapping : MapImage

    Examples
    --------
    >>> px, m = to_pixels(np.array([-1.0, 0.0, 0.5, 1.0]), range_mode="offset")
    >>> px.tolist(), m.range_mode, m.lo, m.hi
    ([0, 128, 191, 255], 'offset', -1.0, 1.0)
    >>> px, m = to_pixels(np.array([0.0, 0.5, 2.0]), range_mode="clip")
    >>> px.tolist(), round(m.clipped_fraction, 3)
    ([0, 128, 255], 0.333)
    >>> to_pixels(np.array([0.0, 2.0]))[1].range_mode   # auto: out of [0, 1]
    'minmax'
    """
    if range_mode not in RANGE_MODES:
        raise ParameterError(
            f"unknown range mode {range_mode!r} (choose from {', '.join(RANGE_MODES)})"
        )
    if bit_depth not in (8, 16):
        raise ParameterError(f"bit depth must be 8 or 16, not {bit_depth!r}")
    full = 255 if bit_depth == 8 else 65535
    out_dtype = np.uint8 if bit_depth == 8 else np.uint16
    x = np.asarray(maps)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    work = np.result_type(x.dtype, np.float32)
    x = x.astype(work, copy=False)
    n = x.size
    if n == 0:
        return np.zeros(x.shape, dtype=out_dtype), MapImage(
            "identity" if range_mode == "auto" else range_mode, 0.0, 0.0, 1.0
        )
    all_finite = bool(np.isfinite(x).all())
    finite = x if all_finite else x[np.isfinite(x)]

    def extent(a: np.ndarray) -> tuple[float, float]:
        return (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)

    vmin, vmax = extent(finite)
    mode = range_mode
    if mode == "auto":
        mode = "identity" if (vmin >= 0.0 and vmax <= 1.0) else "minmax"
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if mode in ("identity", "clip"):
            lo, hi = 0.0, 1.0
            v = x
        elif mode in ("minmax", "abs"):
            src = np.abs(x) if mode == "abs" else x
            lo, hi = extent(np.abs(finite)) if mode == "abs" else (vmin, vmax)
            if hi > lo:
                v = (src - work.type(lo)) / work.type(hi - lo)
            else:
                v = (
                    np.where(np.isnan(src), np.nan, 0.0).astype(work)
                    if not all_finite
                    else (np.zeros_like(src))
                )
        else:  # offset
            m = max(abs(vmin), abs(vmax))
            lo, hi = -m, m
            if m > 0:
                v = work.type(0.5) + x / work.type(2 * m)
            else:
                v = np.where(np.isnan(x), np.nan, 0.5).astype(work)
        outside = (v < 0) | (v > 1)
        nan = np.isnan(v)
        clipped = int(np.count_nonzero(outside | nan))
        v = np.where(nan, 0.0, np.clip(v, 0.0, 1.0))
        pixels = np.floor(v * full + 0.5).astype(out_dtype)
    return pixels, MapImage(mode, clipped / n, float(lo), float(hi))


# --------------------------------------------------------------------------- planning


@dataclass
class WriteResult:
    """What :func:`write_feature_maps` wrote (or would write, for a dry run).

    Attributes
    ----------
    paths : list of Path
        Every file written, in order (empty for a dry run).
    mapping : MapImage or None
        The float -> pixel mapping of the png files (None for tiff/npy/npz).
    planned : list of Path
        The files of the call, written or not.
    """

    paths: list[Path] = field(default_factory=list)
    mapping: MapImage | None = None
    planned: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Picture:
    path: Path
    start: int  # channel slice of the (C, H, W) stack
    stop: int


_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


def _safe(part: str) -> str:
    """A name part that is one file-name component (separators, colons, controls -> '_')."""
    return _UNSAFE.sub("_", part)


def _parse_layout(layout: str, n_maps: int) -> tuple[str, int]:
    """Return ('image'|'bank'|'maps', number of pictures)."""
    if layout == "image":
        return "image", 1
    if layout == "maps":
        return "maps", n_maps
    if layout.startswith("bank:"):
        try:
            k = int(layout[5:])
        except ValueError:
            k = 0
        if k < 1:
            raise ParameterError(f"layout {layout!r}: the bank size must be a positive integer")
        if n_maps % k:
            raise ParameterError(
                f"layout {layout!r}: {n_maps} maps do not split into {k} kernels of equal size"
            )
        return "bank", k
    raise ParameterError(f"unknown layout {layout!r} (use image, bank:N or maps)")


def _labels(labels: Sequence[str], n: int, what: str) -> list[str]:
    if not labels:
        width = len(str(n - 1)) if n > 1 else 1
        return [str(i).zfill(width) for i in range(n)]
    if len(labels) != n:
        raise ParameterError(f"{len(labels)} labels given for {n} {what}")
    return [_safe(str(label)) for label in labels]


def _format_of(fmt: str, single_file: Path | None) -> str:
    if single_file is not None and str(single_file) != "-":
        ext = single_file.suffix.lower()
        if ext not in _EXTENSIONS:
            raise ParameterError(
                f"{single_file}: cannot tell the output format from the extension "
                f"{ext or '(none)'!r} (use .png, .tif, .tiff, .npy or .npz)"
            )
        return _EXTENSIONS[ext]
    fmt = fmt.lower().lstrip(".")
    fmt = "tiff" if fmt == "tif" else fmt
    if fmt not in FORMATS:
        raise ParameterError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    return fmt


def _is_stdout(out: Path | str | None) -> bool:
    return out is not None and str(out) == "-"


def _plan(
    stem: str,
    name: str,
    n_maps: int,
    layout: str,
    *,
    out: Path | str,
    fmt: str,
    single_file: Path | None,
    montage: bool,
    labels: Sequence[str] = (),
) -> tuple[str, list[_Picture], Path | None]:
    """Resolve format, pictures (path + channel slice) and the montage path."""
    if n_maps < 1:
        raise ParameterError("nothing to write: the stack has no maps")
    fmt = _format_of(fmt, single_file)
    kind, n_pictures = _parse_layout(layout, n_maps)
    if fmt in ("npy", "npz"):
        kind, n_pictures = "image", 1
    per = n_maps // n_pictures
    if fmt == "png" and per > 4:
        raise ParameterError(
            f"{per} channels cannot form one png picture (1 to 4: grey, grey+alpha, RGB, RGBA); "
            "use the 'maps' layout, or tiff/npy/npz"
        )
    ext = "tif" if fmt == "tiff" else fmt
    stdout = _is_stdout(single_file) or _is_stdout(out)
    base = f"{_safe(stem)}.{_safe(name)}"
    folder = Path(out)
    if kind == "image":
        names = [f"{base}.{ext}"]
    else:
        tags = _labels(labels, n_pictures, "kernels" if kind == "bank" else "maps")
        names = [f"{base}.{tag}.{ext}" for tag in tags]
    if (single_file is not None or stdout) and len(names) != 1:
        where = "stdout" if stdout else str(single_file)
        raise OutputError(
            f"{where}: this result makes {len(names)} files ({names[0]}, ...); "
            "give a folder as the output instead of one file name"
        )
    if stdout:
        if montage:
            raise OutputError("-: cannot write a montage to stdout as well as the image")
        return fmt, [_Picture(Path("-"), 0, n_maps)], None
    if single_file is not None:
        paths = [Path(single_file)]
        montage_path = Path(single_file).with_name(Path(single_file).stem + ".montage.png")
    else:
        paths = [folder / n for n in names]
        montage_path = folder / f"{base}.montage.png"
    pictures = [_Picture(p, i * per, (i + 1) * per) for i, p in enumerate(paths)]
    every = [p.path for p in pictures] + ([montage_path] if montage else [])
    if len(set(every)) != len(every):
        raise ParameterError("two outputs would have the same file name (repeated labels?)")
    return fmt, pictures, montage_path if montage else None


def plan_outputs(
    stem: str,
    name: str,
    n_maps: int,
    layout: str,
    *,
    out: Path | str,
    fmt: str,
    single_file: Path | None = None,
    montage: bool = False,
    labels: Sequence[str] = (),
) -> list[Path]:
    """The files :func:`write_feature_maps` would write, in order, touching nothing.

    Parameters are those of :func:`write_feature_maps` (``single_file`` is its
    ``file``); ``n_maps`` is the number of maps C of the ``(C, H, W)`` stack.

    Examples
    --------
    >>> [p.as_posix() for p in plan_outputs("cat", "sobel", 6, "bank:2", out="o", fmt="png")]
    ['o/cat.sobel.0.png', 'o/cat.sobel.1.png']
    >>> [p.name for p in plan_outputs("cat", "k", 3, "maps", out="o", fmt="tiff", montage=True)]
    ['cat.k.0.tif', 'cat.k.1.tif', 'cat.k.2.tif', 'cat.k.montage.png']
    >>> plan_outputs("cat", "k", 12, "maps", out="o", fmt="npz")
    [PosixPath('o/cat.k.npz')]
    """
    _, pictures, montage_path = _plan(
        stem,
        name,
        n_maps,
        layout,
        out=out,
        fmt=fmt,
        single_file=single_file,
        montage=montage,
        labels=labels,
    )
    return [p.path for p in pictures] + ([montage_path] if montage_path else [])


def check_outputs(
    paths: Sequence[Path], *, force: bool = False, inputs: Sequence[Path | str] = ()
) -> None:
    """Refuse outputs that must not be written, before anything is written.

    Raises :class:`~convcli.errors.OutputError` when a path is one of ``inputs``
    (even with ``force``), exists and ``force`` is off, is a folder, or has a
    file where one of its folders should be. ``"-"`` (stdout) always passes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d, "x.png")
    ...     _ = p.write_bytes(b"old")
    ...     try:
    ...         check_outputs([p])
    ...     except OutputError as e:
    ...         print(str(e).replace(d, "out"))
    out/x.png exists (use --force to overwrite or --skip-existing to resume)
    """
    existing_inputs = []
    for inp in inputs:
        if str(inp) != "-" and os.path.exists(inp):
            existing_inputs.append(Path(inp))
    for path in paths:
        path = Path(path)
        if str(path) == "-":
            continue
        for parent in reversed(path.parents):
            if parent.exists() and not parent.is_dir():
                raise OutputError(f"{parent}: is a file, not a folder (needed for {path})")
        if not os.path.lexists(path):
            continue
        if path.is_dir():
            raise OutputError(f"{path}: is a folder, cannot write a file there")
        for inp in existing_inputs:
            try:
                same = os.path.samefile(path, inp)
            except OSError:
                same = path.resolve() == inp.resolve()
            if same:
                raise OutputError(f"{path}: is an input; refusing to overwrite it")
        if not force:
            raise OutputError(
                f"{path} exists (use --force to overwrite or --skip-existing to resume)"
            )


# --------------------------------------------------------------------------- writing


def write_feature_maps(
    maps: np.ndarray,
    *,
    out: Path | str = "convcli-out",
    stem: str,
    name: str,
    fmt: str = "png",
    layout: str = "image",
    labels: Sequence[str] = (),
    file: Path | str | None = None,
    range_mode: str = "auto",
    bit_depth: int = 8,
    montage: bool = False,
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> WriteResult:
    """Write a ``(C, H, W)`` stack of feature maps as image or array files.

    Files are named ``<out>/<stem>.<name>[.<label>].<ext>`` (ext: png, tif, npy,
    npz). All png pictures of one call share one float -> pixel mapping (see
    :func:`to_pixels`), so their brightness is comparable. Every output is
    checked (exists? an input? a file where a folder should be?) before any is
    written; all files are then encoded to temporary files beside their targets
    and renamed into place together, so a failure or Ctrl-C leaves nothing
    behind.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(C, H, W)`` or ``(H, W)``.
    out : Path or str
        Output folder (created as needed); ``"-"`` writes the one file to stdout.
    stem, name : str
        Input stem and kernel/op name of the file names (``:``, ``/`` ... -> ``_``).
    fmt : str
        ``png`` (default), ``tiff`` (float32, lossless; a picture with several
        channels is a multi-page TIFF, one page per channel), ``npy`` (the whole
        stack) or ``npz`` (``maps``, ``labels``, ``params`` as a JSON string).
    layout : str
        ``image``: all channels form one picture (1 grey, 2 grey+alpha, 3 RGB,
        4 RGBA); ``bank:N``: N kernels x C channels, kernel-major, one picture per
        kernel; ``maps``: one grey file per map. npy/npz always hold the whole stack.
    labels : sequence of str
        Names of the per-kernel (``bank:N``) or per-map (``maps``) files; default
        0-based indices zero-padded to one width.
    file : Path or str, optional
        The output file itself (its extension picks the format); only when the
        result is one file. ``"-"``: stdout.
    range_mode, bit_depth
        png mapping (:func:`to_pixels`); bit_depth 8 or 16.
    montage : bool
        Also write ``<stem>.<name>.montage.png``: a grid of labelled grey tiles,
        one per map, each normalised on its own (with ``file``:
        ``<file stem>.montage.png`` beside it).
    force : bool
        Overwrite existing outputs (never an input).
    inputs : sequence of Path
        Files that must never be overwritten.
    params : mapping, optional
        Saved in npz files as JSON (non-JSON values as their ``str``).
    dry_run : bool
        Validate the parameters and return the plan; touch nothing.

    Returns
    -------
    WriteResult

    Raises
    ------
    convcli.errors.ParameterError
        Bad format, layout, labels, range mode or bit depth.
    convcli.errors.OutputError
        An output exists, is an input, cannot be created or written.

    Examples
    --------
    >>> import tempfile
    >>> maps = np.linspace(-1, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = write_feature_maps(maps, out=d, stem="cat", name="sobel", layout="maps",
    ...                              labels=["x", "y"])
    ...     [p.name for p in res.paths], res.mapping.range_mode, read_image(res.paths[0]).shape
    (['cat.sobel.x.png', 'cat.sobel.y.png'], 'minmax', (1, 3, 4))
    """
    arr = np.asarray(maps)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ParameterError(f"feature maps must be (C, H, W) or (H, W), got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ParameterError(f"cannot write empty maps of shape {arr.shape}")
    single = None if file is None else Path(file)
    fmt, pictures, montage_path = _plan(
        stem,
        name,
        arr.shape[0],
        layout,
        out=out,
        fmt=fmt,
        single_file=single,
        montage=montage,
        labels=labels,
    )
    if bit_depth not in (8, 16):
        raise ParameterError(f"bit depth must be 8 or 16, not {bit_depth!r}")
    if range_mode not in RANGE_MODES:
        raise ParameterError(
            f"unknown range mode {range_mode!r} (choose from {', '.join(RANGE_MODES)})"
        )
    planned = [p.path for p in pictures] + ([montage_path] if montage_path else [])
    kind, _ = _parse_layout(layout, arr.shape[0])
    mapping: MapImage | None = None
    if fmt == "png" and not dry_run:
        pixels, mapping = to_pixels(arr, range_mode=range_mode, bit_depth=bit_depth)
    if dry_run:
        return WriteResult(paths=[], mapping=None, planned=planned)

    encoders: list[tuple[Path, Callable[[BinaryIO], None]]] = []
    for pic in pictures:
        if fmt == "png":
            encoders.append((pic.path, _png_encoder(pixels[pic.start : pic.stop], bit_depth)))
        elif fmt == "tiff":
            encoders.append((pic.path, _tiff_encoder(arr[pic.start : pic.stop])))
        elif fmt == "npy":
            encoders.append((pic.path, _npy_encoder(arr)))
        else:
            tags = _tile_labels(kind, labels, arr.shape[0], layout)
            encoders.append((pic.path, _npz_encoder(arr, tags, params)))
    if montage_path is not None:
        tags = _tile_labels(kind, labels, arr.shape[0], layout)
        encoders.append((montage_path, _montage_encoder(arr, tags)))

    if planned == [Path("-")]:
        buf = io.BytesIO()
        encoders[0][1](buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return WriteResult(paths=[Path("-")], mapping=mapping, planned=planned)

    check_outputs(planned, force=force, inputs=inputs)
    _commit(encoders)
    return WriteResult(paths=list(planned), mapping=mapping, planned=planned)


def _tile_labels(kind: str, labels: Sequence[str], n_maps: int, layout: str) -> list[str]:
    """One label per map: for the montage and the npz ``labels`` array."""
    if kind == "maps":
        return _labels(labels, n_maps, "maps")
    if kind == "bank":
        k = _parse_layout(layout, n_maps)[1]
        per = n_maps // k
        kernels = _labels(labels, k, "kernels")
        names = _CHANNELS.get(per)
        return [
            kern if per == 1 else f"{kern}.{names[c] if names else c}"
            for kern in kernels
            for c in range(per)
        ]
    names = _CHANNELS.get(n_maps)
    return list(names) if names and n_maps > 1 else _labels((), n_maps, "maps")


def _png_encoder(pixels: np.ndarray, bit_depth: int) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        if bit_depth == 16:
            fh.write(encode_png16(pixels))
            return
        hwc = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
        Image.fromarray(np.ascontiguousarray(hwc)).save(fh, format="PNG")

    return encode


def _tiff_encoder(maps: np.ndarray) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        pages = [Image.fromarray(np.ascontiguousarray(m, dtype=np.float32)) for m in maps]
        if len(pages) == 1:
            pages[0].save(fh, format="TIFF")
        else:
            pages[0].save(fh, format="TIFF", save_all=True, append_images=pages[1:])

    return encode


def _npy_encoder(maps: np.ndarray) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        np.save(fh, np.ascontiguousarray(maps, dtype=np.float32), allow_pickle=False)

    return encode


def _npz_encoder(
    maps: np.ndarray, labels: list[str], params: Mapping[str, Any] | None
) -> Callable[[BinaryIO], None]:
    text = json.dumps(dict(params or {}), default=str, sort_keys=True)

    def encode(fh: BinaryIO) -> None:
        np.savez_compressed(
            fh,
            maps=np.ascontiguousarray(maps, dtype=np.float32),
            labels=np.array(labels, dtype=str),
            params=np.array(text),
        )

    return encode


def _montage_encoder(maps: np.ndarray, labels: list[str]) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        montage_image(maps, labels).save(fh, format="PNG")

    return encode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _commit(encoders: Sequence[tuple[Path, Callable[[BinaryIO], None]]]) -> None:
    """Encode every output to a temp file beside it, then rename all into place."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, encode in encoders:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise OutputError(f"{path.parent}: is a file, not a folder") from exc
            except OSError as exc:
                why = exc.strerror or exc
                raise OutputError(f"{path.parent}: cannot create folder ({why})") from exc
            try:
                tmp = tempfile.NamedTemporaryFile(
                    dir=path.parent, delete=False, prefix="." + path.name + ".", suffix=".tmp"
                )
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            temps.append((tmp.name, path))
            try:
                with tmp:
                    encode(tmp)  # type: ignore[arg-type]
                os.chmod(tmp.name, 0o666 & ~_UMASK)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        while temps:
            tmp_name, path = temps[0]
            try:
                os.replace(tmp_name, path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            temps.pop(0)
    finally:
        for tmp_name, _ in temps:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


# --------------------------------------------------------------------------- montage


def montage_image(
    maps: np.ndarray,
    labels: Sequence[str] = (),
    *,
    max_tile: int = 256,
    min_tile: int = 64,
    gap: int = 4,
) -> Image.Image:
    """A grid of grey tiles, one per map, each min-max normalised on its own, labelled.

    Tiles keep the maps' aspect ratio: larger maps are shrunk (long side
    ``max_tile``), tiny ones enlarged by a whole factor with nearest-neighbour
    (long side at least ``min_tile``), so pooled maps stay blocky and readable.
    The grid has ``ceil(sqrt(C))`` columns on a white background; each label is
    drawn under its tile with Pillow's default font.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(C, H, W)`` or ``(H, W)``.
    labels : sequence of str
        One per map (default: the map indices).

    Returns
    -------
    PIL.Image.Image
        Mode ``L``.

    Examples
    --------
    >>> im = montage_image(np.zeros((5, 8, 8)), ["a", "b", "c", "d", "e"])
    >>> im.mode, im.width   # 3 columns of 64-px tiles (8 px enlarged 8x) and 4-px gaps
    ('L', 208)
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    n, h, w = arr.shape
    tags = list(labels) if labels else _labels((), n, "maps")
    if len(tags) != n:
        raise ParameterError(f"{len(tags)} labels given for {n} maps")
    long_side = max(h, w)
    if long_side > max_tile:
        scale = max_tile / long_side
    elif long_side < min_tile:
        scale = float(math.ceil(min_tile / long_side))
    else:
        scale = 1.0
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    font = _font()
    text_h = _text_height(font)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell_w, cell_h = tw + gap, th + text_h + 2 + gap
    sheet = Image.new("L", (gap + cols * cell_w, gap + rows * cell_h), 255)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        px, _ = to_pixels(arr[i], range_mode="minmax")
        tile = Image.fromarray(px)
        if (tw, th) != (w, h):
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BOX
            tile = tile.resize((tw, th), resample)
        x0 = gap + (i % cols) * cell_w
        y0 = gap + (i // cols) * cell_h
        sheet.paste(tile, (x0, y0))
        draw.text((x0, y0 + th + 1), _fit_text(draw, font, str(tags[i]), tw), fill=0, font=font)
    return sheet


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType / before 10.1
        return ImageFont.load_default()


def _text_height(font: Any) -> int:
    box = font.getbbox("Ag")
    return int(box[3]) + 1


def _fit_text(draw: ImageDraw.ImageDraw, font: Any, text: str, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".." if text else ""
