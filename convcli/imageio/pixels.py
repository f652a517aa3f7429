"""Float -> 8/16-bit pixel mapping (``--range``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convcli.errors import ParameterError

#: Float -> pixel mappings accepted by :func:`to_pixels` (``identity`` is ``clip`` by its name).
RANGE_MODES = ("auto", "identity", "clip", "minmax", "abs", "offset")


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
    fast = _fast_pixels(x, range_mode, full, out_dtype)
    if fast is not None:
        return fast
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


#: Values per task of the threaded fast path.
_CHUNK = 1 << 20


def _fast_pixels(
    x: np.ndarray, range_mode: str, full: int, out_dtype: type
) -> tuple[np.ndarray, MapImage] | None:
    """The same mapping as :func:`to_pixels` for all-finite data, in threaded chunks.

    Pixels are ``floor(clip(x * a + b, 0.5, full + 0.5))`` with ``a``, ``b``
    folding the range into one multiply-add per value; no full-size
    temporaries. Returns None (use the general path) when any value is NaN/inf.
    """
    from convcli import parallel

    flat = np.ascontiguousarray(x).reshape(-1)
    n = flat.size
    bounds = [(i, min(i + _CHUNK, n)) for i in range(0, n, _CHUNK)]

    def extent(chunk: tuple[int, int]) -> tuple[float, float, float, float]:
        seg = flat[chunk[0] : chunk[1]]
        lo, hi = float(seg.min()), float(seg.max())
        if range_mode == "abs":
            a = np.abs(seg)
            return lo, hi, float(a.min()), float(a.max())
        return lo, hi, 0.0, 0.0

    parts = parallel.run_tasks(extent, bounds, values=n)
    vmin, vmax = min(p[0] for p in parts), max(p[1] for p in parts)
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        return None
    mode = range_mode
    if mode == "auto":
        mode = "identity" if (vmin >= 0.0 and vmax <= 1.0) else "minmax"
    if mode in ("identity", "clip"):
        lo, hi = 0.0, 1.0
    elif mode == "minmax":
        lo, hi = vmin, vmax
    elif mode == "abs":
        lo, hi = min(p[2] for p in parts), max(p[3] for p in parts)
    else:
        m = max(abs(vmin), abs(vmax))
        lo, hi = -m, m
    span = hi - lo
    # t = v * full + 0.5 with v = (x - lo) / span; a zero span maps everything to v = 0
    # (offset: to v = 0.5, mid-grey)
    scale = full / span if span > 0 else 0.0
    base = 0.5 + (full / 2 if (mode == "offset" and span == 0) else 0.0)
    work = flat.dtype.type
    pixels: np.ndarray = np.empty(n, dtype=out_dtype)
    counting = mode in ("identity", "clip")

    def convert(chunk: tuple[int, int]) -> int:
        seg = flat[chunk[0] : chunk[1]]
        t = np.abs(seg) if mode == "abs" else seg.copy()
        t -= work(lo)
        t *= work(scale)
        t += work(base)
        clipped = 0
        if counting:
            clipped = int(np.count_nonzero(t < 0.5)) + int(np.count_nonzero(t > full + 0.5))
        np.clip(t, 0.5, full + 0.5, out=t)
        np.copyto(pixels[chunk[0] : chunk[1]], t, casting="unsafe")  # truncation = floor (t > 0)
        return clipped

    clipped = sum(parallel.run_tasks(convert, bounds, values=n))
    return pixels.reshape(x.shape), MapImage(mode, clipped / n, float(lo), float(hi))
