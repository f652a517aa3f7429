"""Reading: any image Pillow opens -> :class:`ImageData` with a ``(C, H, W)`` float array."""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from contextlib import nullcontext
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from convcli.errors import ImageError
from convcli.imageio import prefetch
from convcli.imageio._common import CHANNELS, one_line, tile_rawmode
from convcli.imageio.decode import (
    ImageData,
    _exif_transpose,
    _finish,
    _float_dtype,
    _orient_array,
    _to_array,
)
from convcli.imageio.limits import check_pixels, pillow_limit, resolve_max_pixels
from convcli.imageio.png import decode_png16
from convcli.imageio.zarrin import is_zarr


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

    Reads every mode Pillow opens, and OME-Zarr / Zarr folders
    (:mod:`convcli.imageio.zarrin`). ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ...
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
    if isinstance(source, str | os.PathLike) and is_zarr(source):
        return _zarr_image(os.fspath(source), name, gray=gray, dtype=out_dtype, limit=limit)
    label, data = _open_source(source, name)
    try:
        with warnings.catch_warnings():
            # Pillow warns about odd but readable files (corrupt EXIF, palette
            # transparency, ...): not our user's problem. The decompression-bomb
            # warning is the exception: it must stop the read.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # a path may have been decoded already, while the program started
            img = prefetch.take(label) if data is None else None
            if img is None:
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


def _zarr_image(
    path: str, name: str | None, *, gray: bool, dtype: np.dtype, limit: int | None
) -> ImageData:
    """The whole image of a Zarr folder, read through its region reader."""
    from convcli.imageio.regions import open_regions

    with open_regions(path, gray=gray, dtype=dtype, max_pixels=limit) as reader:
        _, h, w = reader.shape
        arr = reader.read_region(0, h, 0, w)
        return ImageData(arr, reader.channels, reader.mode, reader.bit_depth, name or path)


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
    rawmode = tile_rawmode(img)
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
