"""Pillow images → channels-first arrays: the decoding steps the whole-image reader
(:mod:`convcli.imageio.read`) and the region readers (:mod:`convcli.imageio.regions`) share."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from convcli.errors import ParameterError

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


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ParameterError(f"dtype must be float32 or float64, not {dtype!r}") from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, not {dt}")
    return dt


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
    from convcli import parallel

    chw = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    out = np.empty(chw.shape, dtype=dtype)

    def convert(c: int) -> None:  # one channel a task, on the core's threads
        if divisor is None:
            np.copyto(out[c], chw[c], casting="unsafe")
        else:
            np.divide(chw[c], dtype.type(divisor), out=out[c], dtype=dtype)

    parallel.run_tasks(convert, range(chw.shape[0]), values=out.size)
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
