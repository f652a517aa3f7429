"""Streaming output: feature maps written band by band while a tiled run computes them.

:func:`write_tiled` takes a :class:`~convcli.pipeline.tiles.TiledRun` and
writes the files :func:`~convcli.imageio.write_feature_maps` would write, with
the same names, checks and temp-file-then-rename commit (an error or Ctrl-C
leaves no partial file), but never holds more than one band of the output:

- **png**: :class:`~convcli.imageio.png.PngWriter`, one zlib stream, one IDAT
  chunk per band;
- **tiff**: a tiled BigTIFF written by ``tifffile`` (256×256 tiles, zlib),
  float32 samples, or 8/16-bit integers mapped like png with ``bit_depth``;
- **npy**: the float32 ``(C, H, W)`` array, each band written at its place.

A float → pixel mapping that needs statistics of the whole output (``auto``,
``minmax``, ``abs``, ``offset``, percentiles) gets them from a **first pass**
over the tiles (:class:`StreamStats`): exact min/max, and for ``auto``'s and
``pLO,pHI``'s percentiles every value up to 2^18 values a picture (exact, as the
whole-image run), beyond that an evenly strided sample of :data:`SAMPLE_SIZE`
values (the whole-image run samples too, at random positions, so the two may
then differ by a level or so);
``clip`` and ``LO,HI`` need none and run one pass, and so does ``auto`` when the
output is known to be an image inside [0, 1] (``bounded``: an integer input
through stages :func:`~convcli.pipeline.hint.bounded_unit` accepts, with hint
``image``): it maps 0..1 whatever the values. Each picture gets its own
mapping (``range_scope="file"``), or every picture of the input one
(``"input"``), as :func:`~convcli.imageio.write_feature_maps` does. The
mapping is decided before any band is written (:func:`pixel_map`).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from convcli import parallel
from convcli.errors import OutputError, ParameterError
from convcli.imageio import deflate
from convcli.imageio.layout import Layout
from convcli.imageio.pixels import MapImage
from convcli.imageio.png import PngWriter
from convcli.imageio.tone import (
    EXACT_LIMIT,
    SAMPLE_SIZE,
    Extent,
    Hint,
    ToneMap,
    decide,
    parse_range,
)
from convcli.imageio.write import (
    WriteResult,
    check_outputs,
    discard_temps,
    make_folder,
    new_temp,
    plan_pictures,
    publish,
)
from convcli.vocab import Format

if TYPE_CHECKING:
    from convcli.imageio.atomic import RunStamp
    from convcli.pipeline.tiles import ProgressCallback, Rect, TiledRun

#: Tile size of streamed TIFF files.
TIFF_TILE = 256
#: Formats :func:`write_tiled` can stream.
STREAM_FORMATS = (Format.png.value, Format.tiff.value, Format.npy.value)

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

    #: every ``step``-th value is kept in ``samples`` (0: none kept)
    step: int = 0
    samples: list[np.ndarray] = field(default_factory=list)
    _seen: int = 0

    def __post_init__(self) -> None:
        self.mins = np.full(self.channels, np.inf)
        self.maxs = np.full(self.channels, -np.inf)
        self.sums = np.zeros(self.channels)

    def keep_sample(self, total: int) -> None:
        """Keep every value up to :data:`EXACT_LIMIT` of them (the percentiles are then
        exact, as the whole-image run's), else an evenly strided sample of at most
        :data:`SAMPLE_SIZE`."""
        self.step = 1 if total <= EXACT_LIMIT else -(-total // SAMPLE_SIZE)

    def sample(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(0, np.float32)

    def add(self, band: np.ndarray, *, need_abs: bool = False) -> None:
        flat = band.reshape(band.shape[0], -1)
        if self.step:
            every = band.reshape(-1)
            start = (-self._seen) % self.step
            self.samples.append(np.array(every[start :: self.step]))
            self._seen += every.size
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
    """``band -> pixels`` with one mapping decided in advance for the whole output.

    Each band is mapped as :func:`~convcli.imageio.pixels.to_pixels` maps a whole
    output once it has decided (:func:`~convcli.imageio.pixels.apply_tone`); the
    clipped values and the grey levels used are counted across the bands.
    """

    def __init__(self, tone: ToneMap, *, bit_depth: int, all_finite: bool = True) -> None:
        self.tone = tone
        self.bit_depth = bit_depth
        self.full = 255 if bit_depth == 8 else 65535
        self.dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        self.all_finite = all_finite
        self.clipped = 0
        self.count = 0
        self.levels = np.zeros(256, bool)

    def __call__(self, band: np.ndarray) -> np.ndarray:
        from convcli.imageio.pixels import apply_tone, linear_pixels

        if self.all_finite and self.tone.hi > self.tone.lo:  # to_pixels' fast path
            x = band.astype(np.result_type(band.dtype, np.float32), copy=False)
            px = np.empty(x.shape, self.dtype)
            clipped = linear_pixels(x.reshape(-1), self.tone, full=self.full, out=px.reshape(-1))
        else:
            px, clipped = apply_tone(band, self.tone, bit_depth=self.bit_depth)
        self.count += px.size
        self.clipped += clipped
        seen = (
            px if self.full == 255 else (px.astype(np.uint32) * 255 + self.full // 2) // self.full
        )
        self.levels |= np.bincount(seen.reshape(-1), minlength=256).astype(bool)
        return px

    def mapping(self) -> MapImage:
        from convcli.imageio.tone import with_counts

        fraction = self.clipped / self.count if self.count else 0.0
        return with_counts(self.tone, fraction, int(self.levels.sum()))


def needs_statistics(range_mode: str, *, hint: Hint | None = None, bounded: bool = False) -> bool:
    """Whether a mapping needs a first pass over the output.

    Every mapping does but ``clip`` and ``LO,HI``, and ``auto`` with hint
    ``image`` on an output known to lie in [0, 1] (``bounded``), which maps
    0..1 whatever the values.

    >>> needs_statistics("auto"), needs_statistics("auto", hint="image", bounded=True)
    (True, False)
    >>> needs_statistics("auto", hint="nonneg", bounded=True)
    True
    >>> needs_statistics("minmax", hint="image", bounded=True)
    True
    """
    mode = parse_range(range_mode).mode
    if mode in ("clip", "explicit"):
        return False
    return not (mode == "auto" and bounded and hint == "image")


def pixel_map(
    range_mode: str,
    stats: StreamStats | None,
    *,
    bit_depth: int,
    hint: Hint | None = None,
    bounded: bool = False,
) -> PixelMap:
    """The mapping :func:`~convcli.imageio.tone.decide` chooses from a whole output's
    statistics (its extremes and its sample; see the module docstring), or without
    them where :func:`needs_statistics` says none are needed (``bounded``: the
    output lies in [0, 1], finite)."""
    spec = parse_range(range_mode)
    if stats is None:
        if needs_statistics(range_mode, hint=hint, bounded=bounded):
            raise ParameterError(f"range {range_mode!r} needs the output's statistics")
        known = Extent(0.0, 1.0, 0.0, 1.0) if bounded else Extent(0.0, 0.0, 0.0, 0.0)
        tone = decide(np.zeros(0), spec, hint=hint, extent=known)
        return PixelMap(tone, bit_depth=bit_depth, all_finite=True)
    (vmin, vmax), (amin, amax) = stats.extent(), stats.abs_extent()
    tone = decide(stats.sample(), spec, hint=hint, extent=Extent(vmin, vmax, amin, amax))
    return PixelMap(tone, bit_depth=bit_depth, all_finite=stats.all_finite)


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

        Level 1 deflate as the png writer's (:mod:`convcli.imageio.deflate`): several
        times faster than tifffile's own per-tile compression, and any TIFF
        reader inflates it.
        """

        def pack(x: int) -> bytes:
            tile = np.zeros((TIFF_TILE, TIFF_TILE, self.c), self.dtype.newbyteorder("<"))
            part = buf[:rows, x : x + TIFF_TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            co = deflate.compressor(15)
            return co.compress(tile.data) + co.flush()

        starts = list(range(0, self.w, TIFF_TILE))
        yield from parallel.run_tasks(pack, starts, values=rows * self.w * self.c)

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
    layout: Layout | str = "image",
    labels: Sequence[str] = (),
    file: Path | str | None = None,
    range_mode: str = "auto",
    bit_depth: int | None = None,
    hint: Hint | None = None,
    bounded: bool = False,
    range_scope: str = "file",
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    own: RunStamp | None = None,
    tiles: TileSource | None = None,
    on_progress: ProgressCallback | None = None,
) -> StreamResult:
    """Compute ``run`` tile by tile and stream its output to files (see the module docstring).

    Parameters are those of :func:`~convcli.imageio.write_feature_maps`, plus
    ``hint`` and ``range_scope`` choose each picture's mapping as
    :func:`~convcli.imageio.write_feature_maps` does; ``bounded`` says the output
    is known to lie in [0, 1] (:func:`~convcli.pipeline.hint.bounded_unit` of the
    stages, on an integer input), so ``auto`` with hint ``image`` needs no first pass;
    ``tiles``: a function returning the ``(rect, tile)`` pairs in row-major order
    (default ``run.tiles``; a Dask cluster supplies its own), called once per pass.
    ``on_progress`` receives a :class:`~convcli.pipeline.tiles.TileProgress` per tile
    of every pass (``phase`` "scan" for the statistics pass, "write" for the other).
    The files are named as :func:`~convcli.imageio.write_feature_maps` names its own
    (:func:`~convcli.imageio.write.publish`): every name claimed atomically, or
    none, and a name that appeared meanwhile is an error unless ``force`` or ``own``'s.

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
    parse_range(range_mode)
    single = None if file is None else Path(file)
    fmt, pictures, _ = plan_pictures(
        stem, name, c, layout, out=out, fmt=fmt, single_file=single, montage=False, labels=labels
    )
    if fmt not in STREAM_FORMATS or any(str(p.path) == "-" for p in pictures):
        where = "stdout" if any(str(p.path) == "-" for p in pictures) else fmt
        raise ParameterError(
            f"an image processed in tiles cannot be written as {where}; use png, tiff or npy files"
        )
    planned = [p.path for p in pictures]
    check_outputs(planned, force=force, inputs=inputs, own=own)
    # local tiles are read and computed on a thread while this one maps and encodes
    source: TileSource = tiles or (lambda: parallel.ahead(run.tiles()))
    pixels_wanted = fmt == "png" or (fmt == "tiff" and bit_depth is not None)
    bits = bit_depth or 8
    passes = 1
    # one mapping per picture (range_scope "file"), or one for them all ("input")
    groups = [(p.start, p.stop) for p in pictures] if range_scope == "file" else [(0, c)]
    stats: list[StreamStats | None] = [None] * len(groups)
    if pixels_wanted and needs_statistics(range_mode, hint=hint, bounded=bounded):
        scans = [StreamStats(b - a) for a, b in groups]
        for st, (a, b) in zip(scans, groups, strict=True):
            st.keep_sample((b - a) * h * w)
        for _, _, scanned in _bands(run, source(), on_progress, "scan"):
            for st, (a, b) in zip(scans, groups, strict=True):
                st.add(scanned[a:b], need_abs=True)
        stats = list(scans)
        passes = 2
    pmaps = (
        [pixel_map(range_mode, st, bit_depth=bits, hint=hint, bounded=bounded) for st in stats]
        if pixels_wanted
        else []
    )
    pmap_of = [
        next(i for i, (a, b) in enumerate(groups) if a <= p.start and p.stop <= b) for p in pictures
    ]
    final = StreamStats(c)

    temps: list[tuple[str, Path]] = []
    outs: list[Any] = []
    handles: list[BinaryIO] = []
    try:
        for pic in pictures:
            make_folder(pic.path)
            tmp_name, fh = new_temp(pic.path)
            temps.append((tmp_name, pic.path))
            handles.append(fh)
            n = pic.stop - pic.start
            if fmt == "png":
                outs.append(_PngOut(fh, n, h, w, bits))
            elif fmt == "npy":
                outs.append(_NpyOut(fh, n, h, w))
            else:
                dt = np.dtype(np.float32) if not pmaps else pmaps[0].dtype
                outs.append(_TiffOut(tmp_name, n, h, w, dt))  # tifffile opens it by name
        for _, _, band in _bands(run, source(), on_progress, "write"):
            final.add(band)
            for k, (pic, o) in enumerate(zip(pictures, outs, strict=True)):
                part = band[pic.start : pic.stop]
                o.put(pmaps[pmap_of[k]](part) if pmaps else part)
        for o in outs:
            o.close()
        for fh in handles:
            fh.close()
        done, temps = temps, []
        publish(done, force=force, own=own)  # every name claimed, or none
    except OSError as exc:
        raise OutputError(f"{pictures[0].path}: cannot write ({exc.strerror or exc})") from exc
    finally:
        for o in outs:
            o.abort()
        for fh in handles:
            fh.close()
        discard_temps(temps)
    mappings = [pmaps[pmap_of[k]].mapping() for k in range(len(pictures))] if pmaps else []
    write = WriteResult(
        list(planned), mappings[0] if mappings else None, list(planned), mappings, [], fmt
    )
    return StreamResult(write, final, passes)


def _bands(
    run: TiledRun,
    tiles: Iterator[tuple[Rect, np.ndarray]],
    on_progress: ProgressCallback | None,
    phase: str,
) -> Iterator[tuple[int, int, np.ndarray]]:
    from convcli.pipeline.tiles import TileProgress

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
