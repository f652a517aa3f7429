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
- **OME-Zarr / Zarr** folders through ``zarr`` (:mod:`convcli.imageio.zarrin`):
  only the chunks a region touches are read.
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
from convcli.imageio import deflate
from convcli.imageio._common import CHANNELS, one_line, tile_rawmode
from convcli.imageio.decode import (
    _exif_transpose,
    _finish,
    _float_dtype,
    _to_array,
)
from convcli.imageio.limits import DEFAULT, check_pixels, pillow_limit, resolve_max_pixels
from convcli.imageio.zarrin import ZarrImage, is_zarr

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
        self._rawmode = tile_rawmode(img)
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


class PngStreamReader(_Reader):
    """A non-interlaced PNG decoded top to bottom, only the rows regions need, kept briefly.

    Regions of a tiled run come in row order (bands overlapping by a halo), so
    the file is inflated as a stream and each run of rows is unfiltered by
    OpenCV: the filtered rows are wrapped, after the previous row (unfiltered,
    filter type None), in a small PNG with stored (level 0) zlib blocks and
    handed to ``cv2.imdecode``. Only the rows of the current region stay in
    memory; a region above them restarts the stream from the top.
    """

    #: Bytes of native rows decoded at a time (at least the rows a region asks for).
    CHUNK_BYTES = 4 << 20

    def __init__(
        self, path: str, header: tuple[int, int, int, int], *, mode: str, gray: bool, dtype: Any
    ) -> None:
        w, h, depth, ctype = header
        self.path, self.mode = path, mode
        self.width, self.height, self.depth, self.ctype = w, h, depth, ctype
        self.bit_depth = depth
        self.n_channels = {0: 1, 2: 3, 6: 4}[ctype]
        self._src_channels = {1: "L", 3: "RGB", 4: "RGBA"}[self.n_channels]
        self._gray, self._dtype = gray, _float_dtype(dtype)
        self._divisor = 65535.0 if depth == 16 else 255.0
        self.channels = _gray_channels(self._src_channels) if gray else self._src_channels
        self.shape = (len(self.channels), h, w)
        self.row_bytes = w * self.n_channels * depth // 8
        self._lock = threading.Lock()
        self._fh: Any = None
        self._restart()

    def _restart(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh = open(self.path, "rb")  # noqa: SIM115 - closed in close() / _restart()
        self._fh.seek(8)
        self._chunk_left = 0  # bytes of the current IDAT chunk not yet read
        self._ended = False
        self._inflate = deflate.decompressor()
        self._pending = bytearray()
        self._prev: bytes | None = None  # the last decoded row, unfiltered, as PNG bytes
        self.b0 = self.b1 = 0  # rows held: [b0, b1)
        self.rows = np.empty((0, self.width, self.n_channels), self._native_dtype())

    def _native_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.depth == 8 else np.uint16)

    def _compressed(self, n: int) -> bytes:
        """Up to ``n`` bytes of the zlib stream (IDAT payloads, chunk by chunk)."""
        import struct

        while self._chunk_left == 0:
            if self._ended:
                return b""
            head = self._fh.read(8)
            if len(head) < 8:
                raise ImageError(f"{self.path}: truncated image (PNG ends before IEND)")
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IDAT":
                self._chunk_left = length
                if length == 0:
                    self._fh.seek(4, 1)
            else:
                if kind == b"IEND":
                    self._ended = True
                self._fh.seek(length + 4, 1)
        data = self._fh.read(min(n, self._chunk_left))
        if not data:
            raise ImageError(f"{self.path}: truncated image (PNG data ends early)")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._fh.seek(4, 1)  # CRC
        return data

    def _scanlines(self, n_rows: int) -> bytes:
        """The next ``n_rows`` filtered scanlines (filter byte + row bytes each)."""
        need = n_rows * (1 + self.row_bytes)
        while len(self._pending) < need:
            tail = self._inflate.unconsumed_tail
            src = tail if tail else self._compressed(1 << 20)
            if not src:
                raise ImageError(f"{self.path}: truncated image (fewer rows than the header says)")
            try:
                self._pending += self._inflate.decompress(src, need - len(self._pending))
            except deflate.ERRORS as exc:
                raise ImageError(f"{self.path}: broken image data ({exc})") from exc
        out = bytes(self._pending[:need])
        del self._pending[:need]
        return out

    def _decode(self, n_rows: int) -> np.ndarray:
        """Unfilter the next ``n_rows`` rows with OpenCV; (n, W, C) native samples, RGB order."""
        import struct
        import zlib

        from convcli.imageio.png import _PNG_SIGNATURE, _png_chunk
        from convcli.opencv import cv2_module

        filtered = self._scanlines(n_rows)
        fast = self._unfilter(filtered, n_rows)
        if fast is not None:
            return fast
        lead = b"" if self._prev is None else b"\x00" + self._prev
        n = n_rows + (1 if lead else 0)
        ihdr = struct.pack(">IIBBBBB", self.width, n, self.depth, self.ctype, 0, 0, 0)
        png = b"".join((
            _PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr),
            _png_chunk(b"IDAT", zlib.compress(lead + filtered, 0)), _png_chunk(b"IEND", b""),
        ))  # fmt: skip
        cv2 = cv2_module()
        arr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageError(f"{self.path}: broken image data (a row filter could not be undone)")
        arr = arr.reshape(n, self.width, self.n_channels)
        if lead:
            arr = arr[1:]
        if self.n_channels >= 3:  # OpenCV gives BGR(A)
            arr = arr[..., [2, 1, 0, 3][: self.n_channels]]
        last = arr[-1].astype(">u2") if self.depth == 16 else arr[-1]
        self._prev = np.ascontiguousarray(last).tobytes()
        return arr

    def _unfilter(self, filtered: bytes, n_rows: int) -> np.ndarray | None:
        """Rows filtered with None, Sub or Up undone in numpy (most encoders' choice); else None."""
        scan = np.frombuffer(filtered, np.uint8).reshape(n_rows, 1 + self.row_bytes)
        kinds = scan[:, 0]
        if int(kinds.max()) > 2:
            return None  # Average or Paeth: OpenCV's C loop
        bpp = self.n_channels * self.depth // 8
        out = np.empty((n_rows, self.row_bytes), np.uint8)
        prev = (
            np.frombuffer(self._prev, np.uint8)
            if self._prev is not None
            else np.zeros(self.row_bytes, np.uint8)
        )
        for y in range(n_rows):
            kind, line = kinds[y], scan[y, 1:]
            if kind == 2:
                np.add(line, prev, out=out[y])  # wraps mod 256, as PNG wants
            elif kind == 1:
                np.cumsum(
                    line.reshape(-1, bpp), axis=0, dtype=np.uint8, out=out[y].reshape(-1, bpp)
                )
            else:
                out[y] = line
            prev = out[y]
        self._prev = out[-1].tobytes()
        dt = np.dtype(np.uint8) if self.depth == 8 else np.dtype(">u2")
        arr = out.view(dt).reshape(n_rows, self.width, self.n_channels)
        return arr if self.depth == 8 else arr.astype(np.uint16)

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        with self._lock:
            if y0 < self.b0:
                self._restart()
            if y0 >= self.b1:  # nothing held is wanted: skip ahead to y0
                chunk = max(1, self.CHUNK_BYTES // max(self.row_bytes, 1))
                while self.b1 < y0:
                    k = min(chunk, y0 - self.b1)
                    self._decode(k)
                    self.b1 += k
                self.b0 = self.b1
                self.rows = self.rows[:0]
            elif y0 > self.b0:
                self.rows = self.rows[y0 - self.b0 :]
                self.b0 = y0
            if y1 > self.b1:
                chunk = max(y1 - self.b1, self.CHUNK_BYTES // max(self.row_bytes, 1))
                k = min(chunk, self.height - self.b1)
                self.rows = np.concatenate([self.rows, self._decode(k)])
                self.b1 += k
            part = self.rows[y0 - self.b0 : y1 - self.b0, x0:x1]
        if self.n_channels == 1:
            part = part[..., 0]
        return _finish(
            part, self._src_channels, self.mode, self.bit_depth, self.path,
            gray=self._gray, dtype=self._dtype, divisor=self._divisor,
        ).array  # fmt: skip

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _png_header(path: str) -> tuple[int, int, int, int] | None:
    """``(w, h, depth, colour type)`` of a PNG the stream reader can take, else None."""
    import struct

    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        head = None
        while True:
            raw = fh.read(8)
            if len(raw) < 8:
                return head  # truncated: the stream reader says so when it gets there
            length, kind = struct.unpack(">I4s", raw)
            if kind == b"IHDR":
                w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", fh.read(13))
                fh.seek(4, 1)
                if interlace or depth not in (8, 16) or ctype not in (0, 2, 6):
                    return None
                head = (w, h, depth, ctype)
                continue
            if kind in (b"tRNS", b"PLTE"):
                return None
            if kind == b"IEND":
                return head
            if kind == b"eXIf":
                return None  # may turn the picture: the readers that apply it
            fh.seek(length + 4, 1)


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
) -> _Reader:
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
    if is_zarr(label):
        return _zarr_reader(label, gray=gray, dtype=dtype, limit=limit)
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
                if img.format == "PNG":  # no eXIf chunk: nothing turns the picture
                    header = _png_header(label)
                    if header is not None:
                        img.close()
                        return PngStreamReader(label, header, mode=img.mode, gray=gray, dtype=dtype)
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
    from convcli.opencv import cv2_module

    cv2 = cv2_module()
    rawmode = tile_rawmode(img)
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


def _zarr_reader(label: str, *, gray: bool, dtype: Any, limit: int | None) -> NativeReader:
    source = ZarrImage(label)
    h, w = source.shape[:2]
    check_pixels(label, w, h, limit)
    return _SlicedReader(
        source, 1, channels=source.channels, mode=source.channels, bits=source.bits,
        path=label, gray=gray, dtype=dtype, divisor=source.divisor,
    )  # fmt: skip


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
