"""Exact tiled execution: one image through a pipeline, a tile of the final output at a time.

The final output is cut into tiles (by default full-width bands whose height
comes from a memory budget). For each tile the rows and columns every stage
must produce are worked out backwards, stage by stage, from the same size
arithmetic the whole-image run uses (:mod:`convcli.shapes`): stride,
dilation, the kernel's reach, pooling windows (with ceil mode's last window)
and the padding at the *true* border of every stage's map. A needed row is a
set of indices, not always one interval: ``circular`` padding at the top of
the image reads rows from its bottom. Padded positions are mapped to the real
rows and columns of that stage's input by the pad mode (``reflect``,
``symmetric``, ``replicate``, ``circular``: the real far side of the map;
``zeros``/``constant``: the fill), the region is gathered, and the stage's own
op runs on it with explicit padding, so every number equals the whole-image
run (bit for bit where the engine computes each output from the same inputs
in the same order; within float rounding where it does not, e.g. the FFT).

A global pool cannot be cut spatially: the stages before it run in tiles, the
pool becomes a reduction over the tiles (running max/min; a float64 sum for
the mean), and the stages after it run on the ``(C, 1, 1)`` result.

Memory: a tile's working set is estimated from the same backward pass
(every stage's gathered input and output, engine temporaries, the decoded
input region and the output band); :func:`choose_tile` picks the largest
full-width band (else the largest square tile) whose estimate fits
``memory_budget`` (:data:`DEFAULT_MEMORY_BUDGET`, 256 MiB, not counting the
interpreter, the libraries or a decoded input image held in memory).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from convcli.errors import ParameterError
from convcli.ops.combine import combine
from convcli.ops.conv import conv2d, result_dtype
from convcli.ops.pool import pool2d
from convcli.pipeline.engine import (
    CombineStage,
    ConvStage,
    Pipeline,
    PoolStage,
    Result,
    Stage,
    plan,
    prepare,
    unpremultiply,
)
from convcli.shapes import StageGeometry, conv_geometry, pool_geometry
from convcli.vocab import PoolOp

if TYPE_CHECKING:
    from convcli.imageio import ImageData

#: Working memory a tiled run aims to stay under by default (bytes).
DEFAULT_MEMORY_BUDGET = 256 << 20
#: Factor for engine temporaries (padded copies, scratch rows) on top of each stage's arrays.
_ENGINE_FACTOR = 2

Rect = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


class RegionReader(Protocol):
    """An image read a region at a time: what a tiled run takes as input.

    ``shape`` is ``(C, H, W)`` of the float image (after ``gray``); ``read_region``
    returns ``(C, y1 - y0, x1 - x0)`` floats, exactly the values
    :func:`convcli.imageio.load_image` would give for that region.
    """

    shape: tuple[int, int, int]
    channels: str
    mode: str
    bit_depth: int
    path: str

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...


class ArrayReader:
    """A :class:`RegionReader` over an image already in memory (an ``ImageData``)."""

    def __init__(self, image: ImageData) -> None:
        self.image = image
        self.shape = image.shape
        self.channels = image.channels
        self.mode = image.mode
        self.bit_depth = image.bit_depth
        self.path = image.path

    def read_region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.image.array[:, y0:y1, x0:x1]


@dataclass(frozen=True)
class TileProgress:
    """Handed to the progress callback after every tile."""

    tiles_done: int
    tiles_total: int
    rows_done: int  # output rows whose every tile is finished
    rows_total: int
    phase: str = "compute"  # "scan" (statistics pass) or "write" when streaming to files


ProgressCallback = Callable[[TileProgress], None]


# --------------------------------------------------------------------------- index arithmetic


def source_index(q: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Real index (0..n-1) each position ``q`` of an axis of length ``n`` reads; -1: the fill.

    ``q`` counts from the first real pixel (negative: the padding before). The
    rules are numpy's (padding wider than the image repeats the rule):

    >>> source_index(np.arange(-3, 7), 4, "reflect").tolist()
    [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    >>> source_index(np.arange(-2, 6), 4, "circular").tolist()
    [2, 3, 0, 1, 2, 3, 0, 1]
    >>> source_index(np.arange(-1, 5), 4, "zeros").tolist()
    [-1, 0, 1, 2, 3, -1]
    """
    q = np.asarray(q, dtype=np.int64)
    if mode == "reflect":
        if n == 1:
            return np.zeros_like(q)
        period = 2 * (n - 1)
        r = np.mod(q, period)
        return np.where(r < n, r, period - r)
    if mode == "symmetric":
        r = np.mod(q, 2 * n)
        return np.where(r < n, r, 2 * n - 1 - r)
    if mode == "replicate":
        return np.clip(q, 0, n - 1)
    if mode == "circular":
        return np.mod(q, n)
    return np.where((q >= 0) & (q < n), q, -1)  # zeros, constant, and pools ("fill")


def index_runs(idx: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Maximal runs of consecutive values in a sorted index array: (first, stop, pos0, pos1).

    >>> index_runs(np.array([0, 1, 2, 7, 8]))
    [(0, 3, 0, 3), (7, 9, 3, 5)]
    """
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [idx.size]))
    return [
        (int(idx[a]), int(idx[b - 1]) + 1, int(a), int(b))
        for a, b in zip(starts, stops, strict=True)
    ]


@dataclass(frozen=True)
class _Axis:
    """One axis of one stage: how output positions read input positions."""

    n_in: int
    n_out: int
    k: int
    s: int
    d: int
    before: int
    mode: str  # the conv pad mode, or "fill" for pools

    @property
    def span(self) -> int:
        return self.d * (self.k - 1) + 1

    def window(self, o0: int, o1: int) -> tuple[int, int]:
        """Real-coordinate interval [q0, q1) the outputs o0..o1-1 read (may leave [0, n))."""
        return o0 * self.s - self.before, (o1 - 1) * self.s + self.span - self.before

    def needed(self, out_idx: np.ndarray) -> np.ndarray:
        """Sorted real input indices the outputs ``out_idx`` need."""
        parts = []
        for o0, o1, _, _ in index_runs(out_idx):
            q0, q1 = self.window(o0, o1)
            src = source_index(np.arange(q0, q1), self.n_in, self.mode)
            parts.append(src[src >= 0])
        if not parts:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate(parts))


@dataclass(frozen=True)
class _Access:
    """How a run of outputs reads a gathered input along one axis."""

    sel: slice | np.ndarray  # positions in the gathered input
    pad: tuple[int, int]  # padding the op itself adds (native path)
    fill: np.ndarray | None  # positions that are the fill (gather path)


def _access(ax: _Axis, o0: int, o1: int, in_idx: np.ndarray, native_ok: bool) -> _Access:
    q0, q1 = ax.window(o0, o1)
    n = ax.n_in
    if native_ok:
        tb, ta = max(0, -q0), max(0, q1 - n)
        a, b = max(q0, 0), min(q1, n)
        m = b - a
        whole = a == 0 and b == n
        ok = m > 0 and (tb == 0 or a == 0) and (ta == 0 or b == n)
        if ok and not whole and (tb or ta):
            if ax.mode == "circular":
                ok = False
            elif ax.mode == "reflect":
                ok = max(tb, ta) <= m - 1
            elif ax.mode == "symmetric":
                ok = max(tb, ta) <= m
        if ok:
            p = int(np.searchsorted(in_idx, a))
            if p + m <= in_idx.size and in_idx[p] == a and in_idx[p + m - 1] == b - 1:
                return _Access(slice(p, p + m), (tb, ta), None)
    src = source_index(np.arange(q0, q1), n, ax.mode)
    if in_idx.size == 0:  # every position is padding (explicit padding wider than the kernel)
        return _Access(np.zeros(src.size, np.int64), (0, 0), np.ones(src.size, bool))
    fill = src < 0
    has_fill = bool(fill.any())
    pos = np.searchsorted(in_idx, np.where(fill, in_idx[0], src))
    if not has_fill and pos.size and int(pos[-1]) - int(pos[0]) == pos.size - 1:
        return _Access(slice(int(pos[0]), int(pos[-1]) + 1), (0, 0), None)
    return _Access(pos, (0, 0), fill if has_fill else None)


def _take(a: np.ndarray, acc_y: _Access, acc_x: _Access, fill: float) -> np.ndarray:
    if 0 in a.shape[1:]:
        ny, nx = (_length(acc.sel, n) for acc, n in ((acc_y, a.shape[1]), (acc_x, a.shape[2])))
        return np.full((a.shape[0], ny, nx), fill, dtype=a.dtype)
    blk = a[:, acc_y.sel] if isinstance(acc_y.sel, slice) else np.take(a, acc_y.sel, axis=1)
    blk = blk[:, :, acc_x.sel] if isinstance(acc_x.sel, slice) else np.take(blk, acc_x.sel, axis=2)
    if acc_y.fill is not None:
        blk[:, acc_y.fill, :] = fill
    if acc_x.fill is not None:
        blk[:, :, acc_x.fill] = fill
    return blk


def _length(sel: slice | np.ndarray, n: int) -> int:
    return len(range(n)[sel]) if isinstance(sel, slice) else int(sel.size)


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class _Step:
    """A stage as the tiled run computes it."""

    index: int  # 1-based, as in the report
    stage: Stage
    options: dict[str, Any]
    geometry: StageGeometry  # padding as the whole-image run applies it
    ay: _Axis
    ax: _Axis
    fill: float

    @property
    def is_conv(self) -> bool:
        return isinstance(self.stage, ConvStage)


def _steps(pipeline: Pipeline, result: Result) -> list[_Step]:
    steps = []
    for record, stage in zip(result.records, pipeline.stages, strict=True):
        opts = record.options
        shape = record.geometry.in_shape
        if isinstance(stage, ConvStage):
            k = stage.kernel
            origin = k.origin
            kh, kw = k.weights.shape[-2:]
            if opts["flip"] and origin is not None:  # as conv2d mirrors the anchor
                origin = (kh - 1 - origin[0], kw - 1 - origin[1])
            geom = conv_geometry(
                shape, k.weights.shape, stride=opts["stride"], padding=opts["padding"],
                dilation=opts["dilation"], groups=opts["groups"], origin=origin,
            )  # fmt: skip
            mode = opts["pad_mode"]
            fill = 0.0 if mode == "zeros" else float(opts["pad_value"])
        elif isinstance(stage, CombineStage):  # per pixel, across channels: no spatial reach
            geom = record.geometry
            mode, fill = "fill", 0.0
        else:
            geom = pool_geometry(
                shape, op=stage.op, size=opts["size"], stride=opts["stride"],
                padding=opts["padding"], ceil_mode=opts["ceil_mode"],
            )  # fmt: skip
            mode = "fill"
            fill = {"max": -np.inf, "min": np.inf}.get(stage.op, 0.0)
        (_, hi, wi), (_, ho, wo) = geom.in_shape, geom.out_shape
        ay = _Axis(
            hi, ho, geom.kernel_hw[0], geom.stride[0], geom.dilation[0], geom.padding[0], mode
        )
        ax = _Axis(
            wi, wo, geom.kernel_hw[1], geom.stride[1], geom.dilation[1], geom.padding[2], mode
        )
        steps.append(_Step(record.index, stage, opts, geom, ay, ax, fill))
    return steps


def _is_global(stage: Stage) -> bool:
    return isinstance(stage, PoolStage) and PoolOp.parse(stage.op).is_global


def _window_counts(ax: _Axis, o0: int, o1: int, include_pad: bool, pad_after: int) -> np.ndarray:
    """Divisor of each average window along one axis (as :func:`convcli.ops.pool.pool2d`)."""
    start = np.arange(o0, o1) * ax.s
    if include_pad:
        lo, hi = 0, ax.n_in + ax.before + pad_after
    else:
        lo, hi = ax.before, ax.before + ax.n_in
    return np.clip(np.minimum(start + ax.k, hi) - np.maximum(start, lo), 1, None)


def _run_block(step: _Step, blk: np.ndarray, pads: tuple[int, int, int, int], dtype: Any) -> Any:
    if isinstance(step.stage, ConvStage):
        y = conv2d(blk, step.stage.kernel, dtype=dtype, **{**step.options, "padding": pads})
        return y[None] if y.ndim == 2 else y
    if isinstance(step.stage, CombineStage):
        return combine(blk, step.options["members"], step.stage.op)
    return pool2d(
        blk, step.stage.op, size=step.geometry.kernel_hw, stride=step.geometry.stride,
        padding=0, dtype=dtype,
    )  # fmt: skip


# --------------------------------------------------------------------------- the tiled run


class TiledRun:
    """A pipeline over one image, computed a tile of the final output at a time.

    Parameters
    ----------
    pipeline : Pipeline
    source : RegionReader or ImageData
        The image; an ``ImageData`` is read from memory.
    tile : int or (int, int), optional
        Force the tile size (rows, columns of the final output). Default: chosen
        by :func:`choose_tile` from ``memory_budget``.
    memory_budget : int, optional
        Bytes of working memory to aim for (default :data:`DEFAULT_MEMORY_BUDGET`,
        or ``$CONVCLI_MEMORY_BUDGET``).

    Examples
    --------
    >>> from convcli.imageio import ImageData
    >>> from convcli.kernels.model import Kernel
    >>> from convcli.pipeline import run
    >>> pixels = np.random.default_rng(0).random((3, 20, 30), np.float32)
    >>> img = ImageData(pixels, "RGB", "RGB", 8, "x")
    >>> p = Pipeline((ConvStage(Kernel("box", np.ones((3, 3)) / 9), pad_mode="circular"),
    ...               PoolStage("max", 2)), name="demo")
    >>> tiled = TiledRun(p, img, tile=3).run()
    >>> tiled.maps.shape, bool(np.array_equal(tiled.maps, run(p, img).maps))
    ((3, 10, 15), True)
    """

    def __init__(
        self,
        pipeline: Pipeline,
        source: RegionReader | ImageData,
        *,
        tile: int | Sequence[int] | None = None,
        memory_budget: int | None = None,
    ) -> None:
        pipeline.validate()
        self.pipeline = pipeline
        if not hasattr(source, "read_region"):
            source = ArrayReader(source)  # type: ignore[arg-type]
        self.reader: RegionReader = source  # type: ignore[assignment]
        c, h, w = self.reader.shape
        probe = self._prepare(self.reader.read_region(0, 1, 0, 1))
        self.channels: str = probe[1]
        self.premultiplied: bool = probe[2]
        self.in_shape = (probe[0].shape[0], h, w)
        self.result = plan(pipeline, self.in_shape, self.channels)
        self.dtype = result_dtype(np.zeros(1, self.reader_dtype), pipeline.dtype)
        self.steps = _steps(pipeline, self.result)
        cut = next((i for i, s in enumerate(pipeline.stages) if _is_global(s)), None)
        self.tiled_steps = self.steps if cut is None else self.steps[:cut]
        self.global_step = None if cut is None else self.steps[cut]
        self.rest_steps = [] if cut is None else self.steps[cut + 1 :]
        last = self.tiled_steps[-1].geometry.out_shape if self.tiled_steps else self.in_shape
        self.tiled_shape: tuple[int, int, int] = last  # the shape cut into tiles
        self.memory_budget = memory_budget if memory_budget is not None else budget_from_env()
        if tile is None:
            self.tile = choose_tile(self, self.memory_budget)
        else:
            self.tile = _tile_pair(tile)

    # ------------------------------------------------------------------ facts

    @property
    def reader_dtype(self) -> np.dtype:
        return np.dtype(np.float64 if self.pipeline.dtype == "float64" else np.float32)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Shape of the pipeline's final output."""
        return self.result.out_shape

    @property
    def streams(self) -> bool:
        """True when the final output itself comes in tiles (no global pool)."""
        return self.global_step is None

    def rects(self) -> list[Rect]:
        """Tiles of :attr:`tiled_shape`, row-major."""
        _, h, w = self.tiled_shape
        th, tw = self.tile
        return [
            (y, min(y + th, h), x, min(x + tw, w)) for y in range(0, h, th) for x in range(0, w, tw)
        ]

    def band_rows(self) -> list[tuple[int, int]]:
        _, h, _ = self.tiled_shape
        th = self.tile[0]
        return [(y, min(y + th, h)) for y in range(0, h, th)]

    def needed(self, rect: Rect) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows and columns each stage's input must hold for one tile (stage 1 first)."""
        y0, y1, x0, x1 = rect
        rows, cols = np.arange(y0, y1), np.arange(x0, x1)
        out = []
        for step in reversed(self.tiled_steps):
            rows, cols = step.ay.needed(rows), step.ax.needed(cols)
            out.append((rows, cols))
        out.reverse()
        return out

    def tile_bytes(self, rect: Rect) -> int:
        """Estimated working memory of one tile (see the module docstring)."""
        item = self.dtype.itemsize
        c_img = self.reader.shape[0]
        total = 0
        need = self.needed(rect)
        if need:
            rows, cols = need[0]
            total += 3 * c_img * rows.size * cols.size * item  # read, converted, prepared
        else:
            total += 3 * c_img * (rect[1] - rect[0]) * (rect[3] - rect[2]) * item
        for step, (rows, cols) in zip(self.tiled_steps, need, strict=True):
            c_in, c_out = step.geometry.in_shape[0], step.geometry.out_shape[0]
            o_rows = (rows.size - step.ay.span) // step.ay.s + 1 + 2
            o_cols = (cols.size - step.ax.span) // step.ax.s + 1 + 2
            total += _ENGINE_FACTOR * (c_in * rows.size * cols.size) * item
            total += _ENGINE_FACTOR * (c_out * max(o_rows, 1) * max(o_cols, 1)) * item
        return total

    def band_bytes(self, rows: int) -> int:
        """Memory of one full-width band of the output and its encoded forms."""
        c, _, w = self.tiled_shape
        return rows * w * c * (self.dtype.itemsize + 4)

    # ------------------------------------------------------------------ computing

    def _prepare(self, region: np.ndarray) -> tuple[np.ndarray, str, bool]:
        from convcli.imageio import ImageData

        r = self.reader
        image = ImageData(region, r.channels, r.mode, r.bit_depth, r.path)
        return prepare(image, self.pipeline)

    def _read(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The prepared input at ``rows`` × ``cols`` (each a sorted index set)."""
        runs_y, runs_x = index_runs(rows), index_runs(cols)
        if not runs_y or not runs_x:  # only padding is read
            return np.zeros((self.in_shape[0], rows.size, cols.size), self.reader_dtype)
        if len(runs_y) == 1 and len(runs_x) == 1:
            (a, b, _, _), (c, d, _, _) = runs_y[0], runs_x[0]
            return self._prepare(self.reader.read_region(a, b, c, d))[0]
        out: np.ndarray | None = None
        for a, b, p0, p1 in runs_y:
            for c, d, q0, q1 in runs_x:
                part = self._prepare(self.reader.read_region(a, b, c, d))[0]
                if out is None:
                    out = np.empty((part.shape[0], rows.size, cols.size), dtype=part.dtype)
                out[:, p0:p1, q0:q1] = part
        assert out is not None
        return out

    def compute(self, rect: Rect) -> np.ndarray:
        """The tiled stages' output on one tile: ``(C, y1 - y0, x1 - x0)``."""
        need = self.needed(rect)
        y0, y1, x0, x1 = rect
        if not self.tiled_steps:
            return np.asarray(self._read(np.arange(y0, y1), np.arange(x0, x1)), dtype=self.dtype)
        a = np.asarray(self._read(*need[0]), dtype=self.dtype)
        outs = [*need[1:], (np.arange(y0, y1), np.arange(x0, x1))]
        for step, (in_rows, in_cols), (out_rows, out_cols) in zip(
            self.tiled_steps, need, outs, strict=True
        ):
            a = self._stage(step, a, in_rows, in_cols, out_rows, out_cols)
        return a

    def _stage(
        self,
        step: _Step,
        a: np.ndarray,
        in_rows: np.ndarray,
        in_cols: np.ndarray,
        out_rows: np.ndarray,
        out_cols: np.ndarray,
    ) -> np.ndarray:
        c_out = step.geometry.out_shape[0]
        out: np.ndarray | None = None
        runs_y, runs_x = index_runs(out_rows), index_runs(out_cols)
        single = len(runs_y) == 1 and len(runs_x) == 1
        for o0, o1, p0, p1 in runs_y:
            acc_y = _access(step.ay, o0, o1, in_rows, step.is_conv)
            for u0, u1, q0, q1 in runs_x:
                acc_x = _access(step.ax, u0, u1, in_cols, step.is_conv)
                blk = _take(a, acc_y, acc_x, step.fill)
                pads = (*acc_y.pad, *acc_x.pad)
                y = _run_block(step, blk, pads, self.dtype)
                if isinstance(step.stage, PoolStage) and step.stage.op == "avg":
                    y = self._avg_divisor(step, y, (o0, o1), (u0, u1))
                if step.index == 1 and self.premultiplied:
                    y = unpremultiply(y, len(self.channels))
                if single:
                    return np.asarray(y)
                if out is None:
                    out = np.empty((c_out, out_rows.size, out_cols.size), dtype=y.dtype)
                out[:, p0:p1, q0:q1] = y
        assert out is not None
        return out

    def _avg_divisor(
        self, step: _Step, y: np.ndarray, oy: tuple[int, int], ox: tuple[int, int]
    ) -> np.ndarray:
        """pool2d divided by the whole window; the whole-image run may divide by fewer."""
        g = step.geometry
        include = bool(step.options["count_include_pad"])
        cy = _window_counts(step.ay, *oy, include, g.padding[1])
        cx = _window_counts(step.ax, *ox, include, g.padding[3])
        kk = step.ay.k * step.ax.k
        if np.all(cy == step.ay.k) and np.all(cx == step.ax.k):
            return y
        scale = (kk / np.outer(cy, cx)).astype(y.dtype)
        y *= scale
        return y

    # ------------------------------------------------------------------ whole runs

    def tiles(self, *, on_progress: ProgressCallback | None = None) -> Iterator[tuple[Rect, Any]]:
        """``(rect, tile)`` for every tile of :attr:`tiled_shape`, row-major."""
        rects = self.rects()
        rows_total = self.tiled_shape[1]
        for i, rect in enumerate(rects, 1):
            tile = self.compute(rect)
            yield rect, tile
            if on_progress is not None:
                done = rect[1] if rect[3] == self.tiled_shape[2] else rect[0]
                on_progress(TileProgress(i, len(rects), done, rows_total))

    def bands(
        self,
        *,
        tiles: Iterable[tuple[Rect, np.ndarray]] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Full-width bands ``(y0, y1, maps)`` of the tiled output, top to bottom.

        ``tiles`` gives the ``(rect, tile)`` pairs of :meth:`rects` in order
        (default: computed here, :meth:`tiles`); a Dask cluster supplies its own.
        """
        c, _, w = self.tiled_shape
        it = iter(tiles if tiles is not None else self.tiles())
        rects = self.rects()
        done = 0
        for y0, y1 in self.band_rows():
            row = [r for r in rects if r[0] == y0]
            band: np.ndarray | None = None
            for rect in row:
                got, tile = next(it)
                if tuple(got) != rect:
                    raise RuntimeError(f"tile {got} arrived where {rect} was expected")
                if len(row) == 1:
                    band = tile
                else:
                    if band is None:
                        band = np.empty((c, y1 - y0, w), dtype=tile.dtype)
                    band[:, :, rect[2] : rect[3]] = tile
                done += 1
                if on_progress is not None:
                    rows = y1 if rect[3] == w else y0
                    on_progress(TileProgress(done, len(rects), rows, self.tiled_shape[1]))
            assert band is not None
            yield y0, y1, band

    def finish(self, reduced: np.ndarray) -> np.ndarray:
        """The global pool's ``(C, 1, 1)`` result through the stages after it."""
        x = reduced
        assert self.global_step is not None
        if self.global_step.index == 1 and self.premultiplied:
            x = unpremultiply(x, len(self.channels))
        for step in self.rest_steps:
            if isinstance(step.stage, ConvStage):
                y = conv2d(x, step.stage.kernel, dtype=self.dtype, **step.options)
                x = y[None] if y.ndim == 2 else y
            elif isinstance(step.stage, CombineStage):
                x = combine(x, step.options["members"], step.stage.op)
            else:
                x = pool2d(x, step.stage.op, dtype=self.dtype, **step.options)
            if step.index == 1 and self.premultiplied:
                x = unpremultiply(x, len(self.channels))
        return x

    def run(self, *, on_progress: ProgressCallback | None = None) -> Result:
        """Every tile, assembled: the same :class:`Result` as :func:`convcli.pipeline.run`."""
        t0 = time.perf_counter()
        if self.global_step is None:
            c, h, w = self.tiled_shape
            maps = np.empty((c, h, w), dtype=self.dtype)
            for (y0, y1, x0, x1), tile in self.tiles(on_progress=on_progress):
                maps[:, y0:y1, x0:x1] = tile
        else:
            reducer = GlobalReducer(self.global_step, self.tiled_shape[0], self.dtype)
            for _, tile in self.tiles(on_progress=on_progress):
                reducer.add(tile)
            maps = self.finish(reducer.result())
        result = self.result
        result.maps = maps
        result.input = self.reader.path
        result.records[-1].seconds = time.perf_counter() - t0
        return result


class GlobalReducer:
    """A global pool over tiles: running max/min, or a float64 sum for the mean."""

    def __init__(self, step: _Step, channels: int, dtype: np.dtype) -> None:
        assert isinstance(step.stage, PoolStage)
        self.op = step.stage.op
        self.dtype = dtype
        self.count = 0
        if self.op == "global-avg":
            self.acc = np.zeros(channels, np.float64)
        else:
            self.acc = np.full(channels, -np.inf if self.op == "global-max" else np.inf, dtype)

    def add(self, tile: np.ndarray) -> None:
        if self.op == "global-avg":
            self.acc += tile.sum(axis=(1, 2), dtype=np.float64)
            self.count += tile.shape[1] * tile.shape[2]
        elif self.op == "global-max":
            np.maximum(self.acc, tile.max(axis=(1, 2)), out=self.acc)
        else:
            np.minimum(self.acc, tile.min(axis=(1, 2)), out=self.acc)

    def result(self) -> np.ndarray:
        if self.op == "global-avg":
            return (self.acc / self.count).astype(self.dtype)[:, None, None]
        return self.acc.astype(self.dtype)[:, None, None]


# --------------------------------------------------------------------------- tile size


def budget_from_env() -> int:
    """``$CONVCLI_MEMORY_BUDGET`` (bytes, or with a K/M/G suffix), else the default."""
    text = os.environ.get("CONVCLI_MEMORY_BUDGET", "").strip()
    return parse_bytes(text) if text else DEFAULT_MEMORY_BUDGET


def parse_bytes(text: str | int) -> int:
    """``"512M"``, ``"2G"``, ``"300000000"`` → bytes.

    >>> parse_bytes("512M"), parse_bytes("1.5G"), parse_bytes(4194304)
    (536870912, 1610612736, 4194304)
    """
    if isinstance(text, int):
        value = text
    else:
        s = text.strip().upper().removesuffix("B").removesuffix("I")
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
        if mult > 1:
            s = s[:-1]
        try:
            value = int(float(s) * mult)
        except ValueError:
            raise ParameterError(
                f"memory budget must be a number of bytes like 512M or 2G, got {text!r}"
            ) from None
    if value < 1 << 20:
        raise ParameterError(f"memory budget must be at least 1M, got {text!r}")
    return value


def _tile_pair(tile: int | Sequence[int]) -> tuple[int, int]:
    items = [tile] if isinstance(tile, int) else list(tile)
    if len(items) == 1:
        items *= 2
    if len(items) != 2 or any(
        not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in items
    ):
        raise ParameterError(f"tile must be a whole number >= 1 or two of them, got {tile!r}")
    return items[0], items[1]


def choose_tile(run: TiledRun, budget: int) -> tuple[int, int]:
    """The largest full-width band whose working set fits ``budget``, else a square tile.

    A band of ``h`` output rows is estimated at the top of the image and in its
    middle (where every stage reads its full halo); ``h`` is found by bisection.
    The output band counts three times: a streamed run computes the next band on
    a thread while the one before is encoded (:func:`convcli.parallel.ahead`),
    and the second thread's allocations leave slack of about one more (measured
    on a 6000² image with a 64 MiB budget: 69 MiB above the interpreter's own
    use when counted twice, 52 MiB when counted three times).
    """
    _, h, w = run.tiled_shape

    def cost(th: int, tw: int) -> int:
        worst = 0
        for y in (0, max(0, (h - th) // 2)):
            rect = (y, min(y + th, h), 0, min(tw, w))
            worst = max(worst, run.tile_bytes(rect))
        return worst + 3 * run.band_bytes(th)

    if cost(1, w) <= budget:
        lo, hi = 1, h
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if cost(mid, w) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo, w
    lo, hi = 1, max(h, w)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(min(mid, h), min(mid, w)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return min(lo, h), min(lo, w)


def run_tiled(
    pipeline: Pipeline,
    image: RegionReader | ImageData,
    *,
    tile: int | Sequence[int] | None = None,
    memory_budget: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Result:
    """:func:`convcli.pipeline.run`, computed in tiles (same numbers, bounded working memory).

    See :class:`TiledRun`. The whole output is assembled in memory; to stream it
    to a file instead, use :func:`convcli.run.stream.write_tiled`.
    """
    return TiledRun(pipeline, image, tile=tile, memory_budget=memory_budget).run(
        on_progress=on_progress
    )


__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "ArrayReader",
    "GlobalReducer",
    "RegionReader",
    "TileProgress",
    "TiledRun",
    "budget_from_env",
    "choose_tile",
    "index_runs",
    "parse_bytes",
    "run_tiled",
    "source_index",
]
