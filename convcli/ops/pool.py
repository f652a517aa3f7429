"""Max, min and average pooling, and their global forms (PyTorch's rules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convcli import parallel
from convcli.errors import ParameterError, ShapeError
from convcli.opencv import cv2_module
from convcli.ops.conv import result_dtype
from convcli.shapes import PaddingSpec, StageGeometry, pool_geometry
from convcli.vocab import PoolOp


def pool2d(
    x: np.ndarray,
    op: str = "max",
    *,
    size: int | Sequence[int] = 2,
    stride: int | Sequence[int] | None = None,
    padding: PaddingSpec = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    dtype: Any = None,
    geometry: StageGeometry | None = None,
) -> np.ndarray:
    """Pool each channel of a ``(C, H, W)`` (or ``(H, W)``) array on its own.

    Parameters
    ----------
    op : ``max``, ``avg``, ``min``, ``global-max``, ``global-avg``
        Global ops reduce each channel to ``1×1`` and ignore the other options.
    size, stride : int or (int, int)
        Window and step; ``stride`` defaults to ``size``. Windows overlap when
        stride < size.
    padding : P, (PH, PW), ``"valid"`` or ``"same"``
        Implicit padding: ``-inf`` for max, ``+inf`` for min, zeros for avg.
        Explicit padding may be at most half the window (PyTorch's limit).
    ceil_mode : bool
        Round the output size up, keeping a last partial window unless it
        would start inside the bottom/right padding.
    count_include_pad : bool
        For avg: divide by the window size including padding (PyTorch's
        default) or only by the real pixels it covers.
    dtype : float32 or float64, optional
        As for :func:`convcli.conv2d`.

    Examples
    --------
    >>> x = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], np.float32)
    >>> pool2d(x, "max", size=2)
    array([[ 6.,  8.],
           [14., 16.]], dtype=float32)
    >>> pool2d(x, "avg", size=3, stride=1)      # overlapping windows
    array([[ 6.,  7.],
           [10., 11.]], dtype=float32)
    >>> pool2d(x, "global-max")
    array([[16.]], dtype=float32)
    """
    op = PoolOp.parse(op).value
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ParameterError(f"input must hold real numbers, got dtype {arr.dtype}")
    was_2d = arr.ndim == 2
    if was_2d:
        arr = arr[None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise ShapeError(
            f"input must be a non-empty (H, W) or (C, H, W) array; got shape {np.shape(x)}"
        )
    dt = result_dtype(arr, dtype)
    arr = np.asarray(arr, dtype=dt)
    if geometry is not None and geometry.in_shape == arr.shape:
        geom = geometry  # planned already (a pipeline stage)
    else:
        geom = pool_geometry(
            arr.shape, op=op, size=size, stride=stride, padding=padding, ceil_mode=ceil_mode
        )
    if op == "global-max":
        out = arr.max(axis=(1, 2), keepdims=True)
    elif op == "global-avg":
        out = arr.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(dt)
    else:
        out = _windowed(arr, op, geom, count_include_pad)
    return out[0] if was_2d else out


def _windowed(x: np.ndarray, op: str, geom: StageGeometry, count_include_pad: bool) -> np.ndarray:
    c, h, w = x.shape
    _, ho, wo = geom.out_shape
    kh, kw = geom.kernel_hw
    sy, sx = geom.stride
    top, bottom, left, right = geom.padding
    # ceil mode can need room past the padded input: fill it like the padding
    extra_b = max(0, (ho - 1) * sy + kh - (h + top + bottom))
    extra_r = max(0, (wo - 1) * sx + kw - (w + left + right))
    fill = {"max": -np.inf, "min": np.inf, "avg": 0.0}[op]
    pads = (top, bottom + extra_b, left, right + extra_r)
    if any(pads):
        xp = np.full((c, h + pads[0] + pads[1], w + pads[2] + pads[3]), fill, dtype=x.dtype)
        xp[:, top : top + h, left : left + w] = x
    else:
        xp = x
    reduce = {"max": np.maximum, "min": np.minimum, "avg": np.add}[op]
    out = np.empty((c, ho, wo), dtype=x.dtype)
    if op == "avg":
        if count_include_pad:
            lo, hi = (0, 0), (h + top + bottom, w + left + right)
        else:
            lo, hi = (top, left), (top + h, left + w)
        cy = _window_counts(ho, kh, sy, lo[0], hi[0])
        cx = _window_counts(wo, kw, sx, lo[1], hi[1])
        scale = (1.0 / np.outer(cy, cx)).astype(x.dtype)

    uniform: Any = None
    if op == "avg" and np.all(scale == scale.flat[0]):
        uniform = scale.flat[0]  # one divisor everywhere: multiply by a scalar

    # OpenCV's averaging, where it wins: non-overlapping windows (size == stride, no
    # padding) through its area resize, which averages exact k×k blocks in one pass
    # (measured 3x the numpy passes); larger overlapping windows through its box
    # filter; 2x2 overlapping windows stay with the two numpy passes.
    cv2: Any = cv2_module() if op == "avg" else None
    use_area = cv2 is not None and (kh, kw) == (sy, sx) and not any(pads)
    use_box = cv2 is not None and uniform is not None and kh * kw > 4

    def area(task: tuple[int, int, int]) -> None:
        ch, r0, r1 = task
        src = x[ch, r0 * kh : r1 * kh, : wo * kw]
        cv2.resize(src, (wo, r1 - r0), dst=out[ch, r0:r1], interpolation=cv2.INTER_AREA)

    def box(task: tuple[int, int, int]) -> None:
        # OpenCV's running-sum box filter (double accumulators) at full resolution,
        # then every stride-th window: measured faster than two numpy passes
        ch, r0, r1 = task
        n = r1 - r0
        src = xp[ch, r0 * sy : r0 * sy + (n - 1) * sy + kh]
        if not src.flags.c_contiguous:
            src = np.ascontiguousarray(src)
        full = parallel.scratch(src.shape, x.dtype)
        cv2.boxFilter(src, -1, (kw, kh), dst=full, anchor=(0, 0), normalize=False,
                      borderType=cv2.BORDER_CONSTANT)  # fmt: skip
        win = full[: (n - 1) * sy + 1 : sy, : (wo - 1) * sx + 1 : sx]
        np.multiply(win, uniform, out=out[ch, r0:r1])

    def work(task: tuple[int, int, int]) -> None:
        # separable: reduce the kh rows of each window, then the kw columns;
        # each step writes its result in one pass (no copy-then-reduce)
        ch, r0, r1 = task
        n = r1 - r0
        rows = xp[ch, r0 * sy : r0 * sy + (n - 1) * sy + kh]
        tap = [rows[i : i + (n - 1) * sy + 1 : sy] for i in range(kh)]
        if kh == 1:
            acc = tap[0]
        else:
            acc = parallel.scratch(tap[0].shape, x.dtype)
            reduce(tap[0], tap[1], out=acc)
            for view in tap[2:]:
                reduce(acc, view, out=acc)
        dst = out[ch, r0:r1]
        cols = [acc[:, j : j + (wo - 1) * sx + 1 : sx] for j in range(kw)]
        if kw == 1:
            np.copyto(dst, cols[0])
        else:
            reduce(cols[0], cols[1], out=dst)
            for view in cols[2:]:
                reduce(dst, view, out=dst)
        if op == "avg":
            dst *= uniform if uniform is not None else scale[r0:r1]

    n_bands = 1
    if c * ho * wo >= parallel.MIN_PARALLEL_VALUES:
        n_bands = max(1, 2 * parallel.num_threads() // c)
    tasks = [(ch, r0, r1) for ch in range(c) for r0, r1 in parallel.bands(ho, n_bands)]
    fn = area if use_area else box if use_box else work
    parallel.run_tasks(fn, tasks, values=c * ho * wo)
    return out


def _window_counts(n_out: int, k: int, s: int, lo: int, hi: int) -> np.ndarray:
    """How many positions of each window along one axis fall inside ``[lo, hi)``."""
    start = np.arange(n_out) * s
    return np.clip(np.minimum(start + k, hi) - np.maximum(start, lo), 1, None)
