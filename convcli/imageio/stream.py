"""Streaming output: feature maps written band by band while a tiled run computes them.

:func:`write_tiled` takes a :class:`~convcli.pipeline_tiles.TiledRun` and
writes the files :func:`~convcli.imageio.write_feature_maps` would write, with
the same names, checks and temp-file-then-rename commit (an error or Ctrl-C
leaves no partial file), but never holds more than one band of the output:

- **png**: :class:`~convcli.imageio.png.PngWriter`, one zlib stream, one IDAT
  chunk per band;
- **tiff**: a tiled BigTIFF written by ``tifffile`` (256×256 tiles, zlib),
  float32 samples, or 8/16-bit integers mapped like png with ``bit_depth``;
- **npy**: the float32 ``(C, H, W)`` array, each band written at its place.

A float → pixel mapping that needs statistics of the whole output (``auto``,
``minmax``, ``abs``, ``offset``) gets them from a **first pass** over the
tiles (:class:`StreamStats`: exact min/max, so the pixels equal the
whole-image run's); ``clip``/``identity`` need none and run one pass. The
mapping is a function decided before any band is written
(:func:`pixel_map` builds it from the statistics; any ``band -> (pixels,
clipped count)`` callable fits the same slot).
"""

from __future__ import annotations

import os
import queue
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from convcli.errors import OutputError, ParameterError
from convcli.imageio.pixels import RANGE_MODES, MapImage
from convcli.imageio.png import PngWriter
from convcli.imageio.write import (
    _PENDING,
    _UMASK,
    WriteResult,
    _new_temp,
    _plan,
    check_outputs,
)

if TYPE_CHECKING:
    from convcli.pipeline_tiles import ProgressCallback, Rect, TiledRun

#: Tile size of streamed TIFF files.
TIFF_TILE = 256
#: Formats :func:`write_tiled` can stream.
STREAM_FORMATS = ("png", "tiff", "npy")

TileSource = Callable[[], Iterator[tuple["Rect", np.ndarray]]]


# --------------------------------------------------------------------------- statistics


@dataclass
class StreamStats:
    """Statistics of a whole output gathered band by band (a first pass, or the write pass).

    ``vmin``/``vmax`` (and ``amin``/``amax`` of ``|x|``) cover the finite values,
    as :func:`~convcli.imageio.to_pixels` takes them; ``mins``/``maxs``/``sums``
    are per map, for the report.
    """

    channels: int
    count: int = 0
    all_finite: bool = True
    vmin: float = np.inf
    vmax: float = -np.inf
    amin: float = np.inf
    amax: float = -np.inf
    mins: np.ndarray = field(default_factory=lambda: np.zeros(0))
    maxs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.mins = np.full(self.channels, np.inf)
        self.maxs = np.full(self.channels, -np.inf)
        self.sums = np.zeros(self.channels)

    def add(self, band: np.ndarray, *, need_abs: bool = False) -> None:
        flat = band.reshape(band.shape[0], -1)
        lo, hi = flat.min(axis=1), flat.max(axis=1)  # NaN wherever a map holds one
        self.mins = np.where(np.isnan(self.mins) | np.isnan(lo), np.nan, np.fmin(self.mins, lo))
        self.maxs = np.where(np.isnan(self.maxs) | np.isnan(hi), np.nan, np.fmax(self.maxs, hi))
        self.sums += flat.sum(axis=1, dtype=np.float64)
        self.count += flat.shape[1]
        finite_band = bool(np.isfinite(lo).all() and np.isfinite(hi).all())
        if finite_band:
            self.vmin = min(self.vmin, float(lo.min()))
            self.vmax = max(self.vmax, float(hi.max()))
            values = flat if need_abs else None
        else:
            self.all_finite = False
            values = flat[np.isfinite(flat)]
            if values.size:
                self.vmin = min(self.vmin, float(values.min()))
                self.vmax = max(self.vmax, float(values.max()))
            if not need_abs:
                values = None
        if values is not None and values.size:
            a = np.abs(values)
            self.amin = min(self.amin, float(a.min()))
            self.amax = max(self.amax, float(a.max()))

    def map_stats(self) -> list[tuple[float, float, float]]:
        """``(min, max, mean)`` of every map, as :meth:`convcli.pipeline.Result.map_stats`."""
        n = max(self.count, 1)
        return [
            (float(lo), float(hi), float(s / n))
            for lo, hi, s in zip(self.mins, self.maxs, self.sums, strict=True)
        ]

    def extent(self) -> tuple[float, float]:
        return (self.vmin, self.vmax) if self.vmin <= self.vmax else (0.0, 0.0)

    def abs_extent(self) -> tuple[float, float]:
        return (self.amin, self.amax) if self.amin <= self.amax else (0.0, 0.0)


# --------------------------------------------------------------------------- pixel mapping


class PixelMap:
    """``band -> pixels`` with one mapping fixed in advance; counts clipped values.

    Gives exactly what :func:`~convcli.imageio.to_pixels` gives on the whole
    output when built by :func:`pixel_map` from that output's statistics.
    """

    def __init__(
        self, mode: str, lo: float, hi: float, *, bit_depth: int, all_finite: bool
    ) -> None:
        self.mode, self.lo, self.hi = mode, lo, hi
        self.full = 255 if bit_depth == 8 else 65535
        self.dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        self.all_finite = all_finite
        self.clipped = 0
        self.count = 0

    def __call__(self, band: np.ndarray) -> np.ndarray:
        x = band.astype(np.result_type(band.dtype, np.float32), copy=False)
        self.count += x.size
        fast = self.all_finite
        if self.mode in ("identity", "clip"):  # the two paths agree here: decide per band
            fast = bool(np.isfinite(x.min()) and np.isfinite(x.max()))
        if fast:
            px, clipped = self._fast(x)
        else:
            px, clipped = self._general(x)
        self.clipped += clipped
        return px

    def _fast(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """As ``pixels._fast_pixels`` (every value finite)."""
        work = x.dtype.type
        span = self.hi - self.lo
        scale = self.full / span if span > 0 else 0.0
        base = 0.5 + (self.full / 2 if (self.mode == "offset" and span == 0) else 0.0)
        t = np.abs(x) if self.mode == "abs" else x.copy()
        t -= work(self.lo)
        t *= work(scale)
        t += work(base)
        clipped = 0
        if self.mode in ("identity", "clip"):
            clipped = int(np.count_nonzero(t < 0.5)) + int(np.count_nonzero(t > self.full + 0.5))
        np.clip(t, 0.5, self.full + 0.5, out=t)
        out = np.empty(t.shape, self.dtype)
        np.copyto(out, t, casting="unsafe")
        return out, clipped

    def _general(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """As the general path of ``to_pixels`` (NaN or inf somewhere in the output)."""
        work = x.dtype
        lo, hi, mode = self.lo, self.hi, self.mode
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            if mode in ("identity", "clip"):
                v = x
            elif mode in ("minmax", "abs"):
                src = np.abs(x) if mode == "abs" else x
                if hi > lo:
                    v = (src - work.type(lo)) / work.type(hi - lo)
                else:
                    v = np.where(np.isnan(src), np.nan, 0.0).astype(work)
            else:
                m = hi
                if m > 0:
                    v = work.type(0.5) + x / work.type(2 * m)
                else:
                    v = np.where(np.isnan(x), np.nan, 0.5).astype(work)
            outside = (v < 0) | (v > 1)
            nan = np.isnan(v)
            clipped = int(np.count_nonzero(outside | nan))
            v = np.where(nan, 0.0, np.clip(v, 0.0, 1.0))
            return np.floor(v * self.full + 0.5).astype(self.dtype), clipped

    def mapping(self) -> MapImage:
        fraction = self.clipped / self.count if self.count else 0.0
        return MapImage(self.mode, fraction, float(self.lo), float(self.hi))


def needs_statistics(range_mode: str) -> bool:
    """Whether a mapping needs a first pass over the output (all but clip/identity)."""
    return range_mode not in ("clip", "identity")


def pixel_map(range_mode: str, stats: StreamStats | None, *, bit_depth: int) -> PixelMap:
    """The mapping :func:`~convcli.imageio.to_pixels` would choose for the whole output."""
    if range_mode not in RANGE_MODES:
        raise ParameterError(
            f"unknown range mode {range_mode!r} (choose from {', '.join(RANGE_MODES)})"
        )
    if range_mode in ("clip", "identity"):
        return PixelMap(range_mode, 0.0, 1.0, bit_depth=bit_depth, all_finite=True)
    assert stats is not None
    vmin, vmax = stats.extent()
    mode = range_mode
    if mode == "auto":
        mode = "identity" if (vmin >= 0.0 and vmax <= 1.0) else "minmax"
    if mode == "identity":
        lo, hi = 0.0, 1.0
    elif mode == "minmax":
        lo, hi = vmin, vmax
    elif mode == "abs":
        lo, hi = stats.abs_extent()
    else:
        m = max(abs(vmin), abs(vmax))
        lo, hi = -m, m
    return PixelMap(mode, lo, hi, bit_depth=bit_depth, all_finite=stats.all_finite)


# --------------------------------------------------------------------------- file writers


class _PngOut:
    def __init__(self, fh: BinaryIO, c: int, h: int, w: int, bit_depth: int) -> None:
        self.writer = PngWriter(fh, width=w, height=h, channels=c, bit_depth=bit_depth)

    def put(self, pixels: np.ndarray) -> None:
        self.writer.write_rows(pixels)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        pass


class _NpyOut:
    def __init__(self, fh: BinaryIO, c: int, h: int, w: int) -> None:
        self.fh, self.shape = fh, (c, h, w)
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (c, h, w)}
        )
        self.offset = fh.tell()
        self.row = 0
        fh.truncate(self.offset + c * h * w * 4)

    def put(self, band: np.ndarray) -> None:
        c, h, w = self.shape
        data = np.ascontiguousarray(band, dtype="<f4")
        for ch in range(c):
            self.fh.seek(self.offset + ((ch * h) + self.row) * w * 4)
            self.fh.write(data[ch].tobytes())
        self.row += band.shape[1]

    def close(self) -> None:
        self.fh.seek(0, os.SEEK_END)

    def abort(self) -> None:
        pass


class _TiffOut:
    """A tiled BigTIFF written by tifffile on its own thread, fed band by band."""

    _END = object()

    def __init__(self, fh: str, c: int, h: int, w: int, dtype: np.dtype) -> None:
        self.c, self.h, self.w, self.dtype = c, h, w, dtype
        self.q: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, args=(fh,), daemon=True)
        self.thread.start()

    def _tiles(self) -> Iterator[bytes]:
        buf = np.empty((TIFF_TILE, self.w, self.c), self.dtype)
        have = 0
        while True:
            band = self.q.get()
            if band is self._END:
                break
            if band is None:  # abort
                raise OutputError("tiff writing interrupted")
            hwc = np.moveaxis(band, 0, -1)
            pos = 0
            while pos < hwc.shape[0]:
                n = min(TIFF_TILE - have, hwc.shape[0] - pos)
                buf[have : have + n] = hwc[pos : pos + n]
                have += n
                pos += n
                if have == TIFF_TILE:
                    yield from self._row_tiles(buf, have)
                    have = 0
        if have:
            yield from self._row_tiles(buf, have)

    def _row_tiles(self, buf: np.ndarray, rows: int) -> Iterator[bytes]:
        """One row of tiles, each zero-padded to full size and deflated, on the core's threads.

        zlib level 1 with the run-length strategy (as the png writer): several
        times faster than tifffile's own per-tile compression, and any TIFF
        reader inflates it.
        """
        from convcli.ops import parallel

        def deflate(x: int) -> bytes:
            tile = np.zeros((TIFF_TILE, TIFF_TILE, self.c), self.dtype.newbyteorder("<"))
            part = buf[:rows, x : x + TIFF_TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            co = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
            return co.compress(tile.data) + co.flush()

        starts = list(range(0, self.w, TIFF_TILE))
        yield from parallel.run_tasks(deflate, starts, values=rows * self.w * self.c)

    def _write(self, fh: str) -> None:
        import tifffile

        c = self.c
        photometric = "rgb" if c in (3, 4) else "minisblack"
        extra = {2: ["unassalpha"], 4: ["unassalpha"]}.get(c, ["unspecified"] * (c - 1))
        if c == 3:
            extra = []
        try:
            with tifffile.TiffWriter(fh, bigtiff=True, byteorder="<") as tw:
                tw.write(
                    self._tiles(), shape=(self.h, self.w, c) if c > 1 else (self.h, self.w),
                    dtype=self.dtype, tile=(TIFF_TILE, TIFF_TILE), photometric=photometric,
                    planarconfig="contig" if c > 1 else None, extrasamples=extra or None,
                    compression="zlib", software="convcli", metadata=None,
                )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self.q.get_nowait()
                except queue.Empty:
                    break

    def put(self, band: np.ndarray) -> None:
        while self.thread.is_alive():
            try:
                self.q.put(band, timeout=0.1)
                return
            except queue.Full:
                continue
        self._raise()

    def close(self) -> None:
        if self.thread.is_alive():
            self.q.put(self._END)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        if self.thread.is_alive():
            try:
                self.q.put(None, timeout=1)
            except queue.Full:
                pass
            self.thread.join(timeout=5)

    def _raise(self) -> None:
        if self.error is not None:
            if isinstance(self.error, OSError):
                raise OutputError(f"cannot write tiff ({self.error})") from self.error
            raise self.error


# --------------------------------------------------------------------------- the driver


@dataclass
class StreamResult:
    """What :func:`write_tiled` did: the files, the mapping and the output's statistics."""

    write: WriteResult
    stats: StreamStats
    passes: int


def write_tiled(
    run: TiledRun,
    *,
    out: Path | str = "convcli-out",
    stem: str,
    name: str,
    fmt: str = "png",
    layout: str = "image",
    labels: Sequence[str] = (),
    file: Path | str | None = None,
    range_mode: str = "auto",
    bit_depth: int | None = None,
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    tiles: TileSource | None = None,
    on_progress: ProgressCallback | None = None,
) -> StreamResult:
    """Compute ``run`` tile by tile and stream its output to files (see the module docstring).

    Parameters are those of :func:`~convcli.imageio.write_feature_maps`, plus
    ``tiles``: a function returning the ``(rect, tile)`` pairs in row-major order
    (default ``run.tiles``; a Dask cluster supplies its own), called once per pass.
    ``on_progress`` receives a :class:`~convcli.pipeline_tiles.TileProgress` per tile
    of every pass (``phase`` "scan" for the statistics pass, "write" for the other).

    Raises
    ------
    ParameterError
        A format that cannot be streamed (npz, a montage, stdout), a bad range mode
        or bit depth.
    OutputError
        An output exists (without ``force``), is an input, or cannot be written.
    """
    c, h, w = run.tiled_shape
    if not run.streams:
        raise ParameterError("a global pool's output is one value per map: nothing to stream")
    if bit_depth not in (None, 8, 16):
        raise ParameterError(f"bit depth must be 8 or 16, not {bit_depth!r}")
    if range_mode not in RANGE_MODES:
        raise ParameterError(
            f"unknown range mode {range_mode!r} (choose from {', '.join(RANGE_MODES)})"
        )
    single = None if file is None else Path(file)
    fmt, pictures, _ = _plan(
        stem, name, c, layout, out=out, fmt=fmt, single_file=single, montage=False, labels=labels
    )
    if fmt not in STREAM_FORMATS or any(str(p.path) == "-" for p in pictures):
        where = "stdout" if any(str(p.path) == "-" for p in pictures) else fmt
        raise ParameterError(
            f"an image processed in tiles cannot be written as {where}; use png, tiff or npy files"
        )
    planned = [p.path for p in pictures]
    check_outputs(planned, force=force, inputs=inputs)
    source: TileSource = tiles or (lambda: run.tiles())
    pixels_wanted = fmt == "png" or (fmt == "tiff" and bit_depth is not None)
    bits = bit_depth or 8
    passes = 1
    stats: StreamStats | None = None
    if pixels_wanted and needs_statistics(range_mode):
        stats = StreamStats(c)
        for _, _, scanned in _bands(run, source(), on_progress, "scan"):
            stats.add(scanned, need_abs=range_mode == "abs")
        passes = 2
    pmap = pixel_map(range_mode, stats, bit_depth=bits) if pixels_wanted else None
    final = StreamStats(c)

    temps: list[tuple[str, Path]] = []
    outs: list[Any] = []
    handles: list[BinaryIO] = []
    try:
        for pic in pictures:
            try:
                pic.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"{pic.path.parent}: cannot create folder ({exc.strerror or exc})"
                ) from exc
            tmp_name, fh = _new_temp(pic.path)
            temps.append((tmp_name, pic.path))
            handles.append(fh)
            n = pic.stop - pic.start
            if fmt == "png":
                outs.append(_PngOut(fh, n, h, w, bits))
            elif fmt == "npy":
                outs.append(_NpyOut(fh, n, h, w))
            else:
                dt = np.dtype(np.float32) if pmap is None else pmap.dtype
                outs.append(_TiffOut(tmp_name, n, h, w, dt))  # tifffile opens it by name
        for _, _, band in _bands(run, source(), on_progress, "write"):
            final.add(band)
            data = pmap(band) if pmap is not None else band
            for pic, o in zip(pictures, outs, strict=True):
                o.put(data[pic.start : pic.stop])
        for o in outs:
            o.close()
        for (tmp_name, _), fh in zip(temps, handles, strict=True):
            fh.close()
            os.chmod(tmp_name, 0o666 & ~_UMASK)
        for tmp_name, path in temps:
            try:
                os.replace(tmp_name, path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            _PENDING.discard(tmp_name)
        temps = []
    except OSError as exc:
        raise OutputError(f"{pictures[0].path}: cannot write ({exc.strerror or exc})") from exc
    finally:
        for o in outs:
            o.abort()
        for fh in handles:
            fh.close()
        for tmp_name, _ in temps:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
            _PENDING.discard(tmp_name)
    mapping = pmap.mapping() if pmap is not None and fmt == "png" else None
    if pmap is not None and fmt == "tiff":
        mapping = pmap.mapping()
    return StreamResult(WriteResult(list(planned), mapping, list(planned)), final, passes)


def _bands(
    run: TiledRun,
    tiles: Iterator[tuple[Rect, np.ndarray]],
    on_progress: ProgressCallback | None,
    phase: str,
) -> Iterator[tuple[int, int, np.ndarray]]:
    from convcli.pipeline_tiles import TileProgress

    def report(p: TileProgress) -> None:
        if on_progress is not None:
            on_progress(TileProgress(p.tiles_done, p.tiles_total, p.rows_done, p.rows_total, phase))

    return run.bands(tiles=tiles, on_progress=report)


__all__ = [
    "STREAM_FORMATS",
    "PixelMap",
    "StreamResult",
    "StreamStats",
    "needs_statistics",
    "pixel_map",
    "write_tiled",
]
