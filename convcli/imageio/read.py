"""Reading: any image Pillow opens -> :class:`ImageData` with a ``(C, H, W)`` float array."""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from convcli.errors import ImageError, ParameterError
from convcli.imageio._common import CHANNELS, one_line
from convcli.imageio.limits import check_pixels, pillow_limit, resolve_max_pixels
from convcli.imageio.png import decode_png16

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")


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
    max_pixels: int | str | None = "default",
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
    max_pixels : int, "default" or None
        The decompression-bomb guard: refuse images with more pixels
        (default: ``PIL.Image.MAX_IMAGE_PIXELS``; None: no limit).

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
    limit = resolve_max_pixels(max_pixels)
    label, data = _open_source(source, name)
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd but readable files (corrupt EXIF, palette
            # transparency, ...): not our user's problem. The decompression-bomb
            # warning is the exception: it must stop the read.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with pillow_limit(limit) if limit != Image.MAX_IMAGE_PIXELS else nullcontext():
                img = Image.open(io.BytesIO(data) if data is not None else label)
            with img:
                return _decode(img, label, data, gray=gray, dtype=out_dtype, limit=limit)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        problem = (
            f"too many pixels, refusing to decode ({one_line(exc)}; raise the limit with"
            " --max-pixels N or lift it with --max-pixels none)"
        )
        raise ImageError(f"{label}: {problem}") from exc
    except FileNotFoundError as exc:
        raise ImageError(f"{label}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{label}: is a folder, not an image file") from exc
    except PermissionError as exc:
        raise ImageError(f"{label}: permission denied") from exc
    except UnidentifiedImageError as exc:
        fallback = _tiff_fallback(label, data, gray=gray, dtype=out_dtype, limit=limit)
        if fallback is not None:  # a TIFF Pillow cannot open (float RGB, 16-bit grey+alpha)
            return fallback
        raise ImageError(
            f"{label}: not an image Pillow can read (cannot identify image file)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        text = one_line(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageError(f"{label}: truncated image ({text})") from exc
        raise ImageError(f"{label}: broken image data ({text})") from exc


def _tiff_fallback(
    label: str, data: bytes | None, *, gray: bool, dtype: np.dtype, limit: int | None
) -> ImageData | None:
    """The whole image through the tifffile region reader, for a TIFF file Pillow refuses."""
    if data is not None:
        return None
    from convcli.imageio.regions import open_regions

    try:
        with open(label, "rb") as fh:
            head = fh.read(4)
        if head not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return None
        with open_regions(label, gray=gray, dtype=dtype, max_pixels=limit) as reader:
            _, h, w = reader.shape
            arr = reader.read_region(0, h, 0, w)
            return ImageData(arr, reader.channels, reader.mode, reader.bit_depth, label)
    except (ImageError, OSError, ValueError):
        return None


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ParameterError(f"dtype must be float32 or float64, not {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, not {dt}")
    return dt


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
    img: Image.Image,
    label: str,
    data: bytes | None,
    *,
    gray: bool,
    dtype: np.dtype,
    limit: int | None = None,
) -> ImageData:
    src_mode = img.mode
    fmt = img.format
    # Also checked here, not only through Pillow's warning, whose filter is
    # process-wide state that another thread may be changing.
    check_pixels(label, img.width, img.height, limit)
    rawmode = _tile_rawmode(img)
    if fmt == "TIFF" and rawmode.startswith(("RGB;16", "RGBA;16")):
        # Pillow reads 16-bit colour TIFF at 8 bits: tifffile reads the samples exactly
        from convcli.imageio.regions import tiff_array

        got = tiff_array(io.BytesIO(data) if data is not None else label)
        if got is not None:
            arr, channels = got
            arr = _orient_array(img, arr)
            return _finish(
                arr, channels, src_mode, 16, label, gray=gray, dtype=dtype, divisor=65535
            )
    float_pages = _float_tiff_pages(img)
    img.load()  # full decode here, so truncation is an error of the read
    png16 = fmt == "PNG" and rawmode in ("RGB;16B", "RGBA;16B", "LA;16B")
    if png16:
        raw = data if data is not None else Path(label).read_bytes()
        arr, channels = decode_png16(raw)
        arr = _orient_array(img, arr)
        return _finish(arr, channels, src_mode, 16, label, gray=gray, dtype=dtype, divisor=65535)
    _exif_transpose(img)
    if float_pages:
        pages = [np.asarray(img, dtype=np.float32)]
        for k in range(1, float_pages):
            img.seek(k)
            img.load()
            pages.append(np.asarray(img, dtype=np.float32))
        arr = np.stack(pages, axis=-1)
        return _finish(arr, CHANNELS[float_pages], "F", 32, label, gray=gray, dtype=dtype)
    arr, channels, bits = _to_array(img, rawmode)
    divisor = {8: 255, 16: 65535}.get(bits) if arr.dtype.kind in "ui" else None
    del img  # the decoded picture is no longer needed: keep peak memory down
    return _finish(arr, channels, src_mode, bits, label, gray=gray, dtype=dtype, divisor=divisor)


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
    """(H, W[, C]) samples as stored (uint8 / uint16 / raw I and F), channel names, bit depth.

    8- and 16-bit samples stay integers here; :func:`_finish` scales them by
    their type's maximum straight into the float output.
    """
    mode = img.mode
    has_trns = "transparency" in img.info
    if mode == "1":
        return np.asarray(img, dtype=np.float64), "L", 1
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16), "L", 16
    if mode == "I":
        arr = np.asarray(img)
        if img.format == "PNG" and rawmode.startswith("I;16"):
            # Older Pillow opens 16-bit grey PNG as "I": still 16-bit data.
            return arr.astype(np.uint16), "L", 16
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
    return np.asarray(img, dtype=np.uint8)


def _finish(
    arr: np.ndarray,
    channels: str,
    mode: str,
    bits: int,
    label: str,
    *,
    gray: bool,
    dtype: np.dtype,
    divisor: float | None = None,
) -> ImageData:
    """Channels first, in ``dtype``, integers divided by ``divisor`` (their type's maximum).

    Each channel is converted straight into the output array: no full-size
    float64 temporaries (an 8192×8192 RGB photo stays under 1 GiB here).
    """
    chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    out = np.empty(chw.shape, dtype=dtype)
    for c in range(chw.shape[0]):
        if divisor is None:
            np.copyto(out[c], chw[c], casting="unsafe")
        else:
            np.divide(chw[c], dtype.type(divisor), out=out[c], dtype=dtype)
    if gray and channels in ("RGB", "RGBA"):
        luma = out[0] * dtype.type(_LUMA[0])
        luma += out[1] * dtype.type(_LUMA[1])
        luma += out[2] * dtype.type(_LUMA[2])
        if channels == "RGBA":
            out = np.stack([luma, out[3]])
            channels = "LA"
        else:
            out = luma[None]
            channels = "L"
    return ImageData(array=out, channels=channels, mode=mode, bit_depth=bits, path=label)
