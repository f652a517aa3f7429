"""Reading an image a region at a time, without a float copy of the whole image.

:func:`open_regions` returns a reader whose ``read_region(y0, y1, x0, x1)``
gives exactly the ``(C, h, w)`` floats :func:`convcli.imageio.load_image`
would give for that region (same channel rules, same scaling, same ``gray``
luma, same EXIF/TIFF orientation). The pixels stay in their native 8/16-bit
(or float) form and are converted region by region:

- **TIFF / BigTIFF** through ``tifffile``: an uncompressed, contiguous image
  is memory-mapped (the OS pages in what a region touches); a compressed
  tiled or striped one is decoded a tile/strip at a time, only those a region
  overlaps (the last row of them is kept for the next, overlapping region).
  Grey, grey+alpha, RGB and RGBA with 8, 16 (exact) or 32-bit float samples,
  chunky or planar; anything else goes through Pillow.
- **PNG** (grey, RGB, RGBA without a transparency chunk; 8 or 16 bits) is
  decoded once by OpenCV straight into one native array (3 bytes a pixel for
  RGB, where Pillow keeps 4).
- Everything else is decoded once by Pillow into its own native image; a
  region is cropped from it and converted.

The decompression-bomb guard applies to every reader: ``max_pixels``
(default: ``PIL.Image.MAX_IMAGE_PIXELS``; None lifts it).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
from PIL import Image

from convcli.errors import ImageError
from convcli.imageio._common import CHANNELS, one_line
from convcli.imageio.limits import DEFAULT, check_pixels, pillow_limit, resolve_max_pixels
from convcli.imageio.read import (
    _exif_transpose,
    _finish,
    _float_dtype,
    _tile_rawmode,
    _to_array,
)

# EXIF orientation → the numpy view that puts the stored array upright (as _orient_array)
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


class _Reader:
    """Shared by the readers: ``with reader:`` closes what it holds open."""

    shape: tuple[int, int, int]
    channels: str
    mode: str
    bit_depth: int
    path: str

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (memory maps, tifffile handles, Pillow images)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NativeReader(_Reader):
    """Regions of a native array ``(H, W[, C])`` (in memory or memory-mapped), as floats."""

    def __init__(
        self,
        stored: np.ndarray,
        *,
        channels: str,
        mode: str,
        bits: int,
        path: str,
        gray: bool,
        dtype: Any,
        divisor: float | None,
        orientation: int = 1,
    ) -> None:
        self.array = _ORIENT[orientation](stored) if orientation in _ORIENT else stored
        self.mode = mode
        self.bit_depth = bits
        self.path = path
        self._src_channels = channels
        self._gray = gray
        self._dtype = _float_dtype(dtype)
        self._divisor = divisor
        h, w = self.array.shape[:2]
        self.channels = _gray_channels(channels) if gray else channels
        self.shape = (len(self.channels), h, w)

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        part = self.array[y0:y1, x0:x1]
        return _finish(
            part, self._src_channels, self.mode, self.bit_depth, self.path,
            gray=self._gray, dtype=self._dtype, divisor=self._divisor,
        ).array  # fmt: skip


class PillowReader(_Reader):
    """Regions cropped from an image Pillow has decoded (natively) once."""

    def __init__(self, img: Image.Image, *, path: str, gray: bool, dtype: Any) -> None:
        self.img = img
        self.path = path
        self.mode = img.mode
        self._rawmode = _tile_rawmode(img)
        img.load()
        _exif_transpose(img)  # in place; usually nothing to do
        sample, channels, bits = _to_array(img.crop((0, 0, 1, 1)), self._rawmode)
        self._src_channels = channels
        self.bit_depth = bits
        self._divisor = {8: 255, 16: 65535}.get(bits) if sample.dtype.kind in "ui" else None
        self._gray = gray
        self._dtype = _float_dtype(dtype)
        self.channels = _gray_channels(channels) if gray else channels
        self.shape = (len(self.channels), img.height, img.width)

    def close(self) -> None:
        self.img.close()

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        arr, _, _ = _to_array(self.img.crop((x0, y0, x1, y1)), self._rawmode)
        return _finish(
            arr, self._src_channels, self.mode, self.bit_depth, self.path,
            gray=self._gray, dtype=self._dtype, divisor=self._divisor,
        ).array  # fmt: skip


class TiffSegmentReader:
    """A compressed tiled or striped TIFF page, decoded only where a region needs it."""

    def __init__(self, path: str, page_index: int = 0) -> None:
        import tifffile

        self._tif = tifffile.TiffFile(path)
        page = self._tif.pages[page_index]
        assert isinstance(page, tifffile.TiffPage)
        self.page = page
        self.dtype = page.dtype
        self.planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
        self.samples = page.samplesperpixel
        self.h, self.w = page.imagelength, page.imagewidth
        if page.is_tiled:
            self.th, self.tw = page.tilelength, page.tilewidth
        else:
            self.th, self.tw = page.rowsperstrip or self.h, self.w
            self.th = min(self.th, self.h)
        self.ny = -(-self.h // self.th)
        self.nx = -(-self.w // self.tw)
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        ys, xs = key
        y0, y1, _ = ys.indices(self.h)
        x0, x1, _ = xs.indices(self.w)
        out = np.empty((y1 - y0, x1 - x0, self.samples), dtype=self.dtype)
        used: dict[int, np.ndarray] = {}
        planes = range(self.samples) if self.planar else range(1)
        with self._lock:
            for ty in range(y0 // self.th, (y1 - 1) // self.th + 1):
                for tx in range(x0 // self.tw, (x1 - 1) // self.tw + 1):
                    for plane in planes:
                        index = (plane * self.ny + ty) * self.nx + tx
                        seg = self._cache.get(index)
                        if seg is None:
                            seg = self._decode(index)
                        used[index] = seg
                        ty0, tx0 = ty * self.th, tx * self.tw
                        a0, a1 = max(y0, ty0), min(y1, ty0 + self.th, self.h)
                        b0, b1 = max(x0, tx0), min(x1, tx0 + self.tw, self.w)
                        block = seg[a0 - ty0 : a1 - ty0, b0 - tx0 : b1 - tx0]
                        dst = out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
                        if self.planar:
                            dst[..., plane] = block[..., 0]
                        else:
                            dst[...] = block
            # keep what this region used: the next band overlaps it by a halo
            self._cache = {
                i: s for i, s in used.items() if i // self.nx % self.ny >= (y1 - 1) // self.th
            }
        return out if self.samples > 1 else out[..., 0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.h, self.w, self.samples) if self.samples > 1 else (self.h, self.w)

    def _decode(self, index: int) -> np.ndarray:
        page = self.page
        fh = self._tif.filehandle
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        fh.seek(offset)
        data = fh.read(count)
        seg, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
        if seg is None:  # an empty tile
            seg = np.zeros(shape, self.dtype)
        arr = np.asarray(seg).reshape(shape[-3:])  # (rows, cols, samples of this segment)
        return arr

    def close(self) -> None:
        self._tif.close()


class _SlicedReader(NativeReader):
    """A NativeReader over an object that slices (``obj[y0:y1, x0:x1]``) but is not an array."""

    def __init__(self, source: Any, orientation: int, **kw: Any) -> None:
        self._source = source
        self._orientation = orientation
        h, w = source.shape[:2]
        if orientation in (5, 6, 7, 8):
            h, w = w, h
        self._hw = (h, w)
        self._stored_hw = source.shape[:2]
        super().__init__(np.empty((h, w, 0)), **kw)  # shape bookkeeping only
        self.shape = (len(self.channels), h, w)

    def close(self) -> None:
        self._source.close()

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        sy, sx, op = _stored_box(self._orientation, self._stored_hw, y0, y1, x0, x1)
        part = op(self._source[sy, sx])
        return _finish(
            part, self._src_channels, self.mode, self.bit_depth, self.path,
            gray=self._gray, dtype=self._dtype, divisor=self._divisor,
        ).array  # fmt: skip


def _stored_box(
    orientation: int, stored_hw: tuple[int, int], y0: int, y1: int, x0: int, x1: int
) -> tuple[slice, slice, Callable[[np.ndarray], np.ndarray]]:
    """Stored rows/columns of an upright region, and the view that turns them upright."""
    h, w = stored_hw
    op = _ORIENT.get(orientation, lambda a: a)
    if orientation in (5, 6, 7, 8):  # upright rows are stored columns
        rows = {5: (x0, x1), 6: (h - x1, h - x0), 7: (h - x1, h - x0), 8: (x0, x1)}[orientation]
        cols = {5: (y0, y1), 6: (y0, y1), 7: (w - y1, w - y0), 8: (w - y1, w - y0)}[orientation]
    else:
        rows = (h - y1, h - y0) if orientation in (3, 4) else (y0, y1)
        cols = (w - x1, w - x0) if orientation in (2, 3) else (x0, x1)
    return slice(*rows), slice(*cols), op


def _gray_channels(channels: str) -> str:
    return {"RGB": "L", "RGBA": "LA"}.get(channels, channels)


def _is_tiff(head: bytes) -> bool:
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def open_regions(
    path: str | Path,
    *,
    gray: bool = False,
    dtype: Any = np.float32,
    max_pixels: int | str | None = DEFAULT,
) -> NativeReader | PillowReader:
    """A region reader for an image file (see the module docstring).

    Raises :class:`~convcli.errors.ImageError` (one line naming the file) for a
    missing, unreadable or too large image.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> rgb16 = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3) * 900
    >>> with tempfile.TemporaryDirectory() as d:
    ...     tifffile.imwrite(f"{d}/a.tif", rgb16, photometric="rgb", tile=(16, 16),
    ...                      compression="zlib")
    ...     with open_regions(f"{d}/a.tif") as r:
    ...         region = r.read_region(1, 3, 2, 5)
    >>> r.shape, r.channels, r.bit_depth, region.shape
    ((3, 4, 6), 'RGB', 16, (3, 2, 3))
    >>> bool(np.array_equal(region * 65535, np.moveaxis(rgb16[1:3, 2:5], -1, 0).astype(np.float32)))
    True
    """
    label = str(path)
    limit = resolve_max_pixels(max_pixels)
    try:
        with open(label, "rb") as fh:
            head = fh.read(16)
    except FileNotFoundError as exc:
        raise ImageError(f"{label}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{label}: is a folder, not an image file") from exc
    except OSError as exc:
        raise ImageError(f"{label}: cannot read ({exc.strerror or exc})") from exc
    if not head:
        raise ImageError(f"{label}: empty file (0 bytes)")
    if _is_tiff(head):
        reader = _tiff_reader(label, gray=gray, dtype=dtype, limit=limit)
        if reader is not None:
            return reader
    try:
        with warnings.catch_warnings(), pillow_limit(None):
            warnings.simplefilter("ignore")
            img = Image.open(label)
            try:
                check_pixels(label, img.width, img.height, limit)
                if img.format == "PNG":
                    reader = _png_reader(img, label, gray=gray, dtype=dtype)
                    if reader is not None:
                        img.close()
                        return reader
                return PillowReader(img, path=label, gray=gray, dtype=dtype)
            except BaseException:
                img.close()
                raise
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image
        raise ImageError(f"{label}: cannot read ({one_line(exc)})") from exc


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - unreadable EXIF: the stored orientation
        return 1


def _png_reader(img: Image.Image, label: str, *, gray: bool, dtype: Any) -> NativeReader | None:
    """PNG decoded by OpenCV into one native array (grey, RGB, RGBA; 8/16 bits), else None."""
    from convcli.ops import accel

    cv2 = accel.cv2_module()
    rawmode = _tile_rawmode(img)
    kinds = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "I;16": "L", "I;16B": "L", "I": "L"}
    if cv2 is None or "transparency" in img.info or img.mode not in kinds:
        return None
    if img.mode == "I" and not rawmode.startswith("I;16"):
        return None
    orientation = _orientation(img)
    arr = cv2.imread(label, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        return None
    channels = kinds[img.mode]
    if rawmode.startswith(("RGB;16", "RGBA;16")):
        channels = "RGBA" if rawmode.startswith("RGBA") else "RGB"
    want = len(channels)
    have = 1 if arr.ndim == 2 else arr.shape[2]
    if have != want:
        return None
    if want >= 3:
        arr = arr[..., [2, 1, 0, 3][:want]] if want == 4 else arr[..., ::-1]  # BGR(A) -> RGB(A)
    bits = 16 if arr.dtype == np.uint16 else 8
    return NativeReader(
        arr, channels=channels, mode=img.mode, bits=bits, path=label, gray=gray, dtype=dtype,
        divisor=65535 if bits == 16 else 255, orientation=orientation,
    )  # fmt: skip


def tiff_native(
    label: str,
) -> tuple[Any, str, int, float | None, int] | None:
    """``(pixels, channels, bits, divisor, orientation)`` of a TIFF's first page, or None.

    ``pixels`` is an ``(H, W[, C])`` memory map (uncompressed, contiguous data) or a
    :class:`TiffSegmentReader`. None when the page is not grey/RGB(A) of 8/16-bit
    unsigned or 32-bit float samples (Pillow reads those).
    """
    import tifffile

    try:
        with tifffile.TiffFile(label) as tif:
            page = tif.pages[0]
            if not isinstance(page, tifffile.TiffPage) or len(tif.series) == 0:
                return None
            photometric = page.photometric
            spp = page.samplesperpixel
            dtype = page.dtype
            extra = tuple(page.extrasamples)
            tag = page.tags.get(274)  # Orientation
            orientation = int(tag.value) if tag is not None else 1
            memmappable = page.is_memmappable and not page.is_subsampled
            n_pages = len(tif.pages)
            shape = page.shape
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    except Exception:  # noqa: BLE001 - let Pillow try and report
        return None
    P = tifffile.PHOTOMETRIC
    if dtype not in (np.uint8, np.uint16, np.float32) or page.bitspersample not in (8, 16, 32):
        return None
    if photometric == P.MINISBLACK and spp in (1, 2):
        channels = "L" if spp == 1 else "LA"
    elif photometric == P.RGB and spp in (3, 4):
        channels = "RGB" if spp == 3 else "RGBA"
    else:
        return None
    if spp in (2, 4) and len(extra) != 1:
        return None
    if dtype == np.float32 and n_pages > 1:
        return None  # float colour TIFFs convcli writes whole: pages (Pillow's path)
    bits = {1: 8, 2: 16, 4: 32}[dtype.itemsize]
    divisor = {8: 255.0, 16: 65535.0}.get(bits)
    arr: Any
    if memmappable:
        arr = tifffile.memmap(label, page=0, mode="r")
        if planar and spp > 1:
            arr = np.moveaxis(arr, 0, -1)
        if arr.shape[:2] != shape[:2] and not planar:
            return None
    else:
        arr = TiffSegmentReader(label)
    return arr, channels, bits, divisor, orientation


def _tiff_reader(label: str, *, gray: bool, dtype: Any, limit: int | None) -> NativeReader | None:
    found = tiff_native(label)
    if found is None:
        return None
    arr, channels, bits, divisor, orientation = found
    h, w = arr.shape[:2]
    check_pixels(label, w, h, limit)
    kw: dict[str, Any] = dict(
        channels=channels, mode=channels, bits=bits,
        path=label, gray=gray, dtype=dtype, divisor=divisor,
    )  # fmt: skip
    if isinstance(arr, np.ndarray):
        return NativeReader(arr, orientation=orientation, **kw)
    return _SlicedReader(arr, orientation, **kw)


def tiff_array(source: str | Any) -> tuple[np.ndarray, str] | None:
    """A TIFF's first page as ``(H, W, C)`` native samples and its channel names (16-bit colour).

    What :func:`convcli.imageio.load_image` uses where Pillow would give 8 bits.
    """
    import tifffile

    with tifffile.TiffFile(source) as tif:
        arr = tif.pages[0].asarray()
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in CHANNELS:
        return None
    return arr, CHANNELS[arr.shape[-1]]
