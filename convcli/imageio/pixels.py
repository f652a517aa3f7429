"""Float -> 8/16-bit pixel mapping (``--range``)."""

from __future__ import annotations

import numpy as np

from convcli.errors import ParameterError
from convcli.imageio.tone import (
    Extent,
    Hint,
    RangeSpec,
    ToneMap,
    decide,
    levels_used,
    parse_range,
    with_counts,
)
from convcli.vocab import RangeMode

#: Float -> pixel mapping words accepted by :func:`to_pixels` (``identity`` is ``clip``
#: by its old name); ``LO,HI`` and ``pLO,pHI`` are accepted too
#: (:func:`~convcli.imageio.tone.parse_range`).
RANGE_MODES = tuple(RangeMode.choices())

#: The mapping a picture was made with (:class:`~convcli.imageio.tone.ToneMap`; the old name).
MapImage = ToneMap


def to_pixels(
    maps: np.ndarray,
    *,
    range_mode: str | RangeSpec = "auto",
    bit_depth: int = 8,
    hint: Hint | None = None,
) -> tuple[np.ndarray, ToneMap]:
    """Map float values to 8- or 16-bit pixels, all values with one mapping.

    The mapping (``lo`` → black, ``hi`` → white) is decided by
    :func:`convcli.imageio.tone.decide`; ``v = (x - lo) / (hi - lo)`` in [0, 1]
    becomes ``floor(v * full + 0.5)`` with ``full`` = 255 or 65535.

    - ``auto``: by ``hint`` (what the result is, see
      :func:`~convcli.pipeline.hint.hint_of_stages`), else by the numbers:
      ``image`` clips to [0, 1]; ``signed`` puts 0 at mid-grey with the 99.5th
      percentile of ``|x|`` at black/white; ``nonneg`` puts 0 at black and the
      99.5th percentile at white.
    - ``clip`` (``identity``): ``v = x``, values outside [0, 1] clipped.
    - ``minmax``: ``v = (x - min) / (max - min)``; a constant input gives all zeros.
    - ``abs``: ``minmax`` of ``|x|`` (edge maps: both signs bright).
    - ``offset``: 0 is mid-grey (128 / 32768), the scale symmetric by ``max |x|``.
    - ``LO,HI``: those values to black and white; ``pLO,pHI``: those percentiles.

    A value counts as clipped when it lies more than half a level outside the
    range (round-off is not clipping). NaN becomes 0 and counts as clipped;
    ±inf clip to the ends and count as clipped; extremes and percentiles are
    taken over finite values only. When the range is empty (``lo == hi``), values
    above it are white and the rest black (mid-grey for signed / offset).

    Parameters
    ----------
    maps : numpy.ndarray
        Any shape.
    range_mode : str or RangeSpec
        A word of :data:`RANGE_MODES`, ``LO,HI`` or ``pLO,pHI``.
    bit_depth : int
        8 (uint8) or 16 (uint16).
    hint : {"image", "signed", "nonneg"}, optional
        What the values are, for ``auto``.

    Returns
    -------
    pixels : numpy.ndarray
        uint8 or uint16, same shape as ``maps``.
    mapping : ToneMap

    Examples
    --------
    >>> px, m = to_pixels(np.array([-1.0, 0.0, 0.5, 1.0]), range_mode="offset")
    >>> px.tolist(), m.kind, m.lo, m.hi
    ([0, 128, 191, 255], 'offset', -1.0, 1.0)
    >>> px, m = to_pixels(np.array([0.0, 0.5, 2.0]), range_mode="clip")
    >>> px.tolist(), round(m.clipped_fraction, 3)
    ([0, 128, 255], 0.333)
    >>> px, m = to_pixels(np.array([1.0000001, 1.0, 0.5]))   # round-off: still an image
    >>> px.tolist(), m.kind, m.clipped_fraction
    ([255, 255, 128], 'image', 0.0)
    >>> to_pixels(np.array([-2.0, 0.0, 2.0]))[0].tolist()    # signed: 0 is mid-grey
    [0, 128, 255]
    """
    spec = parse_range(range_mode)
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
        return np.zeros(x.shape, dtype=out_dtype), decide(x, spec, hint=hint)
    fast = _fast_pixels(x, spec, hint, full, out_dtype)
    if fast is not None:
        return fast
    tone = decide(x, spec, hint=hint)
    pixels, clipped = apply_tone(x, tone, bit_depth=bit_depth)
    return pixels, with_counts(tone, clipped / n, levels_used(pixels, full))


def apply_tone(x: np.ndarray, tone: ToneMap, *, bit_depth: int = 8) -> tuple[np.ndarray, int]:
    """The pixels of ``x`` under a mapping already decided, and how many values clipped.

    What :func:`to_pixels` does once it has decided; a tiled run maps its bands
    one by one with the mapping of the whole output.

    >>> from convcli.imageio.tone import decide
    >>> apply_tone(np.array([-1.0, 0.0, 3.0]), decide(np.array([-1.0, 1.0]), "minmax"))[0]
    array([  0, 128, 255], dtype=uint8)
    """
    full = 255 if bit_depth == 8 else 65535
    out_dtype = np.uint8 if bit_depth == 8 else np.uint16
    x = np.asarray(x)
    work = np.result_type(x.dtype, np.float32)
    x = x.astype(work, copy=False)
    lo, hi = tone.lo, tone.hi
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        src = np.abs(x) if tone.kind == "abs" else x
        if hi > lo:
            v = (src - work.type(lo)) / work.type(hi - lo)
        else:
            below = 0.5 if tone.kind in ("signed", "offset") else 0.0
            v = np.where(np.isnan(src), np.nan, np.where(src > hi, 1.0, below)).astype(work)
        t = v * work.type(full)
        nan = np.isnan(t)
        clipped = int(np.count_nonzero((t < -0.5) | (t > full + 0.5) | nan))
        v = np.where(nan, 0.0, np.clip(v, 0.0, 1.0))
        pixels = np.floor(v * full + 0.5).astype(out_dtype)
    return pixels, clipped


def linear_pixels(
    seg: np.ndarray, tone: ToneMap, *, full: int, out: np.ndarray, count: bool = True
) -> int:
    """``floor(clip((x - lo) / (hi - lo) * full + 0.5))`` of finite ``seg`` into ``out``
    (``|x|`` for ``abs``), as one multiply-add per value; returns how many values lie
    more than half a level outside the range (``count``). Needs ``hi > lo``."""
    work = seg.dtype.type
    t = np.abs(seg) if tone.kind == "abs" else seg.copy()
    t -= work(tone.lo)
    t *= work(full / (tone.hi - tone.lo))
    t += work(0.5)
    clipped = 0
    if count:
        clipped = int(np.count_nonzero(t < 0.0)) + int(np.count_nonzero(t > full + 1.0))
    np.clip(t, 0.5, full + 0.5, out=t)
    np.copyto(out, t, casting="unsafe")  # truncation = floor (t > 0)
    return clipped


#: Values per task of the threaded fast path.
_CHUNK = 1 << 20


def _fast_pixels(
    x: np.ndarray, spec: RangeSpec, hint: Hint | None, full: int, out_dtype: type
) -> tuple[np.ndarray, ToneMap] | None:
    """The same mapping as :func:`to_pixels` for all-finite data, in threaded chunks.

    Pixels are ``floor(clip(x * a + b, 0.5, full + 0.5))`` with ``a``, ``b``
    folding the range into one multiply-add per value; no full-size
    temporaries. Returns None (use the general path) when any value is NaN/inf
    or the range is empty.
    """
    from convcli import parallel

    flat = np.ascontiguousarray(x).reshape(-1)
    n = flat.size
    bounds = [(i, min(i + _CHUNK, n)) for i in range(0, n, _CHUNK)]
    want_abs = spec.mode == "abs"

    def extent(chunk: tuple[int, int]) -> tuple[float, float, float, float]:
        seg = flat[chunk[0] : chunk[1]]
        lo, hi = float(seg.min()), float(seg.max())
        if want_abs:
            a = np.abs(seg)
            return lo, hi, float(a.min()), float(a.max())
        return lo, hi, 0.0, 0.0

    parts = parallel.run_tasks(extent, bounds, values=n)
    vmin, vmax = min(p[0] for p in parts), max(p[1] for p in parts)
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        return None
    amax = max(abs(vmin), abs(vmax))
    if want_abs:
        ext = Extent(vmin, vmax, min(p[2] for p in parts), max(p[3] for p in parts))
    else:
        ext = Extent(vmin, vmax, 0.0 if vmin <= 0 <= vmax else min(abs(vmin), abs(vmax)), amax)
    tone = decide(flat, spec, hint=hint, extent=ext)
    lo, hi = tone.lo, tone.hi
    span = hi - lo
    if not span > 0:
        return None
    pixels: np.ndarray = np.empty(n, dtype=out_dtype)
    use_abs = tone.kind == "abs"
    # clipping can happen only where the range does not hold every value
    counting = lo > (ext.amin if use_abs else vmin) or hi < (ext.amax if use_abs else vmax)

    def convert(chunk: tuple[int, int]) -> int:
        out = pixels[chunk[0] : chunk[1]]
        return linear_pixels(flat[chunk[0] : chunk[1]], tone, full=full, out=out, count=counting)

    clipped = sum(parallel.run_tasks(convert, bounds, values=n))
    shaped = pixels.reshape(x.shape)
    return shaped, with_counts(tone, clipped / n, levels_used(shaped, full))
