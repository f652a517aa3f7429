"""How float results become picture levels: the one place the ``auto`` mapping is decided.

A :class:`ToneMap` says which value becomes black and which white (and, for a
binary picture, the threshold), how it was found, and what share of values it
clipped; :meth:`ToneMap.text` is the sentence the report prints, e.g.
``auto → signed, 0 = mid-grey, ±0.83 = black/white (99.5th percentile of |x|),
0.5 % clipped``.

``auto`` follows what the result *is*, a :data:`Hint` worked out from the
stages that made it (:func:`hint_of_stages`), not only its numbers:

- ``image`` — every kernel sums to 1 (blur, sharpen, unsharp, emboss,
  identity), no bias, no activation that changes the scale, pooling: the
  result is still a picture and maps like one, clipped to [0, 1]. A value a
  hair outside [0, 1] from round-off (1.0000001) changes nothing.
- ``signed`` — zero-sum kernels, layers, a bias: symmetric around 0 (0 is
  mid-grey) with a robust scale, the 99.5th percentile of ``|x|``, so one hot
  pixel cannot wash out the picture. (A signed result without one negative
  value, such as the max over a compass bank, maps as non-negative.)
- ``nonneg`` — after relu / abs / sigmoid, a magnitude: 0 is black, the
  99.5th percentile is white.

Without a hint (an array from nowhere), ``auto`` reads the numbers: values in
[0, 1] up to round-off are an image, values ≥ 0 non-negative, else signed.

Percentiles of arrays larger than :data:`EXACT_LIMIT` values are taken on a
deterministic sample of :data:`SAMPLE_SIZE` values (fixed seed, the same
positions on every run), so a 2048² RGB result costs a few milliseconds and
gives the same picture every time; below that limit they are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from convcli.errors import ParameterError
from convcli.imageio.rangespec import RangeSpec, parse_range

#: What a result is, for ``auto``.
Hint = Literal["image", "signed", "nonneg"]
HINTS: tuple[Hint, ...] = ("image", "signed", "nonneg")
#: Every kind of mapping a :class:`ToneMap` can be.
TONE_KINDS = (
    "image", "signed", "nonneg", "explicit", "percentile", "minmax", "clip", "abs", "offset",
)  # fmt: skip
#: Mapping scopes: one mapping per output file, or one for all files of an input.
RANGE_SCOPES = ("file", "input")

#: The robust high percentile of ``auto`` (of ``|x|`` for signed results).
ROBUST_PERCENTILE = 99.5
#: Arrays up to this many values get exact percentiles; larger ones a sample.
EXACT_LIMIT = 1 << 18
#: Size of the deterministic sample of larger arrays.
SAMPLE_SIZE = 1 << 17
#: Sum of weights that counts as 1 (blurs normalised in float64 are a hair off).
SUM_TOL = 1e-4
#: An "image" result whose robust range leaves [-1, 2] is not on the picture scale
#: (raw ``I`` / ``F`` images, a kernel with a huge gain): auto falls back to its numbers.
_IMAGE_BOX = (-1.0, 2.0)
#: Round-off allowance when reading an unhinted array as an image.
_ROUND_OFF = 1e-3


@dataclass(frozen=True)
class ToneMap:
    """How one picture's floats became levels.

    ``v = (x - lo) / (hi - lo)`` (of ``|x|`` for ``abs``), clipped to [0, 1],
    becomes ``floor(v * full + 0.5)`` with ``full`` = 255 or 65535.

    Attributes
    ----------
    kind : str
        One of :data:`TONE_KINDS`: what was done (``auto`` resolves to image,
        signed or nonneg).
    clipped_fraction : float
        Share (0..1) of values more than half a level outside [lo, hi], plus NaNs.
    lo, hi : float
        The values mapped to black and to white.
    requested : str
        The ``--range`` asked for (``auto``, ``p1,p99``, ...).
    basis : str
        How lo/hi were found, when not obvious (``99.5th percentile of |x|``).
    levels : int
        Distinct 8-bit levels the mapped values use (counted on a sample;
        0 when unknown). Few levels mean a range much wider than the data.
    threshold : float or None
        A binary picture: values above it are white, the rest black.
    threshold_basis : str
        ``given`` or ``Otsu, level N`` when ``threshold`` is set.
    above_fraction : float
        Share of white pixels of a binary picture.
    cmap : str or None
        The colour map the levels went through (one-channel pictures).
    """

    kind: str
    clipped_fraction: float
    lo: float
    hi: float
    requested: str = "auto"
    basis: str = ""
    levels: int = 0
    threshold: float | None = None
    threshold_basis: str = ""
    above_fraction: float = 0.0
    cmap: str | None = None

    @property
    def range_mode(self) -> str:
        """The kind (the name the first reports used)."""
        return self.kind

    def text(self) -> str:
        """The mapping in words, as the report prints it.

        >>> ToneMap("signed", 0.005, -0.83, 0.83, basis="99.5th percentile of |x|").text()
        'auto → signed, 0 = mid-grey, ±0.83 = black/white (99.5th percentile of |x|), 0.5 % clipped'
        >>> ToneMap("image", 0.0, 0.0, 1.0).text()
        'auto → image, clip to [0, 1]'
        >>> ToneMap("explicit", 0.25, -1.0, 1.0, requested="-1,1").text()
        '-1,1: -1 = black, 1 = white, 25 % clipped'
        """
        if self.threshold is not None:
            how = f" ({self.threshold_basis})" if self.threshold_basis else ""
            return (
                f"threshold {_num(self.threshold)}{how}: above = white, the rest black,"
                f" {_pct(self.above_fraction)} white"
            )
        lo, hi = _num(self.lo), _num(self.hi)
        if self.kind == "image":
            body = "clip to [0, 1]"
        elif self.kind in ("signed", "offset"):
            body = f"0 = mid-grey, ±{hi} = black/white"
        elif self.kind == "abs":
            body = f"|x| {lo} = black, {hi} = white"
        else:
            body = f"{lo} = black, {hi} = white"
        head = f"auto → {self.kind}, " if self.requested == "auto" else f"{self.requested}: "
        text = head + body
        if self.basis:
            text += f" ({self.basis})"
        if self.clipped_fraction > 0:
            text += f", {_pct(self.clipped_fraction)} clipped"
        if self.cmap:
            text += f", colour map {self.cmap}"
        return text


def _num(v: float) -> str:
    return f"{v:.4g}"


def _pct(share: float) -> str:
    """``0.5 %``, ``25 %``, ``< 0.01 %`` — percentages as the report shows them."""
    p = share * 100
    if 0 < p < 0.01:
        return "< 0.01 %"
    return f"{p:.3g} %" if p < 10 else f"{p:.0f} %"


def nonzero_bias(bias: Any) -> bool:
    """Whether a bias (a number or one per map) adds anything."""
    if bias is None:
        return False
    return bool(np.any(np.asarray(bias, dtype=np.float64) != 0))


# --------------------------------------------------------------------------- deciding


def sample(values: np.ndarray) -> np.ndarray:
    """The values percentiles are taken on: all finite ones of a small array, or a
    deterministic sample of :data:`SAMPLE_SIZE` of a large one (fixed seed).

    >>> sample(np.arange(10.0)).size, sample(np.zeros(1 << 20)).size
    (10, 131072)
    """
    flat = np.asarray(values).reshape(-1)
    if flat.size > EXACT_LIMIT:
        flat = flat[_sample_positions(flat.size)]
    finite = np.isfinite(flat)
    return flat if finite.all() else flat[finite]


@lru_cache(maxsize=8)
def _sample_positions(n: int) -> np.ndarray:
    """:data:`SAMPLE_SIZE` sorted positions in ``range(n)`` from a fixed seed (cached)."""
    idx = np.random.default_rng(0x5EED).integers(0, n, SAMPLE_SIZE)
    idx.sort()  # reading in order is kinder to the cache
    idx.setflags(write=False)
    return idx


@dataclass(frozen=True)
class Extent:
    """Exact extremes of the finite values (what a pass over every value gives)."""

    vmin: float
    vmax: float
    amin: float  # of |x|
    amax: float


def extent_of(values: np.ndarray) -> Extent:
    """:class:`Extent` of the finite values (zeros when there are none)."""
    x = np.asarray(values)
    finite = x[np.isfinite(x)] if not np.isfinite(x).all() else x
    if finite.size == 0:
        return Extent(0.0, 0.0, 0.0, 0.0)
    a = np.abs(finite)
    return Extent(float(finite.min()), float(finite.max()), float(a.min()), float(a.max()))


def decide(
    values: np.ndarray,
    spec: str | RangeSpec = "auto",
    *,
    hint: Hint | None = None,
    extent: Extent | None = None,
) -> ToneMap:
    """Decide ``lo`` / ``hi`` (and the kind) of the mapping of ``values``.

    ``clipped_fraction`` and ``levels`` are left at 0: they are counted while
    the pixels are made (:func:`convcli.imageio.to_pixels`). ``extent`` saves a
    pass when the caller has already found the extremes.

    Examples
    --------
    >>> decide(np.array([0.0, 0.5, 1.0000001])).kind      # round-off is still an image
    'image'
    >>> m = decide(np.r_[np.linspace(-1, 1, 999), 50.0], hint="signed")
    >>> m.kind, round(m.hi, 2)                            # one hot pixel: scale stays ~1
    ('signed', 1.0)
    >>> m = decide(np.array([0.0, 2.0, 4.0]), "p0,p50"); (m.kind, m.lo, m.hi)
    ('percentile', 0.0, 2.0)
    """
    rs = parse_range(spec)
    if hint is not None and hint not in HINTS:
        raise ParameterError(f"unknown hint {hint!r} (use {', '.join(HINTS)})")
    ext = extent or extent_of(values)
    req = rs.text()
    if rs.mode == "clip":
        return ToneMap("clip", 0.0, 0.0, 1.0, req)
    if rs.mode == "minmax":
        return ToneMap("minmax", 0.0, ext.vmin, ext.vmax, req)
    if rs.mode == "abs":
        return ToneMap("abs", 0.0, ext.amin, ext.amax, req)
    if rs.mode == "offset":
        return ToneMap("offset", 0.0, -ext.amax, ext.amax, req)
    if rs.mode == "explicit":
        return ToneMap("explicit", 0.0, rs.lo, rs.hi, req)
    if rs.mode == "percentile":
        s = sample(values)
        if s.size == 0:
            return ToneMap("percentile", 0.0, 0.0, 0.0, req)
        lo, hi = (float(v) for v in np.percentile(s, [rs.lo, rs.hi]))
        return ToneMap("percentile", 0.0, lo, hi, req, basis=_sampled(values))
    return _auto(values, hint, ext)


def _sampled(values: np.ndarray) -> str:
    return f"sample of {SAMPLE_SIZE:,} values" if np.size(values) > EXACT_LIMIT else ""


def _auto(values: np.ndarray, hint: Hint | None, ext: Extent) -> ToneMap:
    if hint is None:
        if ext.vmin >= -_ROUND_OFF and ext.vmax <= 1 + _ROUND_OFF:
            hint = "image"
        else:
            hint = "nonneg" if ext.vmin >= 0 else "signed"
    note = ""
    if hint == "image":
        if ext.vmin >= _IMAGE_BOX[0] and ext.vmax <= _IMAGE_BOX[1]:
            return ToneMap("image", 0.0, 0.0, 1.0, "auto")
        s = sample(values)
        lo, hi = (float(v) for v in np.percentile(s, [100 - ROBUST_PERCENTILE, ROBUST_PERCENTILE]))
        if lo >= _IMAGE_BOX[0] and hi <= _IMAGE_BOX[1]:
            return ToneMap("image", 0.0, 0.0, 1.0, "auto")
        hint = "nonneg" if ext.vmin >= 0 else "signed"
        note = "values far outside [0, 1]; "
    if hint == "signed" and ext.vmin >= 0 and ext.vmax > 0:  # e.g. max over a compass bank
        hint = "nonneg"
        note = "no negative values; "
    p = f"{ROBUST_PERCENTILE:g}th percentile"
    if hint == "signed":
        scale = _robust_high(np.abs(sample(values)), ext.amax)
        return ToneMap(
            "signed", 0.0, -scale, scale, "auto", basis=note + f"{p} of |x|" + _also(values)
        )
    top = _robust_high(sample(values), ext.vmax)
    return ToneMap("nonneg", 0.0, 0.0, top, "auto", basis=note + p + _also(values))


def _also(values: np.ndarray) -> str:
    s = _sampled(values)
    return f", {s}" if s else ""


def _robust_high(s: np.ndarray, fallback: float) -> float:
    """The robust top of ``s``; the exact maximum when the percentile is not above 0."""
    top = float(np.percentile(s, ROBUST_PERCENTILE)) if s.size else 0.0
    return top if top > 0 else max(fallback, 0.0)


def with_counts(tone: ToneMap, clipped: float, levels: int) -> ToneMap:
    """The same mapping with the counts found while making the pixels."""
    return replace(tone, clipped_fraction=clipped, levels=levels)


def levels_used(pixels: np.ndarray, full: int) -> int:
    """Distinct 8-bit levels among (a sample of) ``pixels`` (8- or 16-bit).

    >>> levels_used(np.array([0, 0, 255, 128], np.uint8), 255)
    3
    """
    s = sample(pixels) if pixels.size > EXACT_LIMIT else np.asarray(pixels).reshape(-1)
    if full != 255:
        s = (s.astype(np.uint32) * 255 + full // 2) // full
    return int(np.count_nonzero(np.bincount(s.astype(np.intp), minlength=256)))


# --------------------------------------------------------------------------- warnings

#: A mapping clipping more than this share of values is worth a warning.
CLIP_WARNING = 0.05
#: A mapping using fewer levels than this (of 256) is worth a warning.
FEW_LEVELS = 8


def tone_warnings(
    map_stats: Sequence[tuple[float, float]],
    mappings: Sequence[ToneMap],
    *,
    labels: Sequence[str] = (),
    files: Sequence[str] = (),
    stage_options: Sequence[Mapping[str, Any]] = (),
) -> list[str]:
    """Plain-text warnings about the pictures: blank maps, heavy clipping, few levels.

    Parameters
    ----------
    map_stats : sequence of (min, max)
        One per output map.
    mappings : sequence of ToneMap
        One per picture written (empty for array formats).
    labels : sequence of str
        One per map (default: the indices).
    files : sequence of str
        The picture names, one per mapping (for naming the file in a warning).
    stage_options : sequence of mapping
        The conv stages' resolved options (``bias``, ``activation``): used to
        say what likely caused blank maps.

    Examples
    --------
    >>> tone_warnings([(0.0, 0.0), (0.0, 0.0)], [],
    ...               stage_options=[{"bias": -50.0, "activation": "relu"}])[0]
    ... # doctest: +NORMALIZE_WHITESPACE
    'every map is all zero: likely the bias (-50) pushes every response below 0 before relu
     sets it to 0 (try a smaller bias)'
    >>> tone_warnings([(0.0, 1.0)], [ToneMap("explicit", 0.0, -100, 100, "-100,100", levels=3)])
    ... # doctest: +NORMALIZE_WHITESPACE
    ['the mapping leaves only 3 grey levels: -100,100 is much wider than the values
      (0 to 1); try --range auto']
    """
    out: list[str] = []
    n = len(map_stats)
    names = list(labels) if len(labels) == n else [str(i) for i in range(n)]
    flat = [(lo, hi) for lo, hi in map_stats if lo == hi]
    if map_stats and len(flat) == len(map_stats):
        zero = all(lo == 0 for lo, _ in map_stats)
        what = "every map is all zero" if zero else "every map is constant"
        if not zero and len({lo for lo, _ in map_stats}) == 1:
            what += f" ({_num(map_stats[0][0])})"
        out.append(f"{what}: {_blank_cause(stage_options, zero)}")
    elif flat:
        blank = [n for n, (lo, hi) in zip(names, map_stats, strict=True) if lo == hi]
        shown = ", ".join(blank[:6]) + (f" and {len(blank) - 6} more" if len(blank) > 6 else "")
        out.append(f"{len(blank)} of {len(map_stats)} maps are constant ({shown})")
    any_data = any(lo != hi for lo, hi in map_stats)
    vmin = min((lo for lo, _ in map_stats), default=0.0)
    vmax = max((hi for _, hi in map_stats), default=0.0)
    for i, m in enumerate(mappings):
        where = f"{files[i]}: " if len(files) == len(mappings) and len(mappings) > 1 else ""
        if m.threshold is not None:
            continue
        if m.clipped_fraction > CLIP_WARNING:
            advice = "try --range p0.5,p99.5 or minmax"
            if m.kind == "image":
                advice = "the result is mapped like a picture; --range minmax shows all of it"
            share = _pct(m.clipped_fraction)
            out.append(f"{where}the mapping clipped {share} of values ({advice})")
        if any_data and 0 < m.levels < FEW_LEVELS:
            out.append(
                f"{where}the mapping leaves only {m.levels} grey levels: {m.requested} is much"
                f" wider than the values ({_num(vmin)} to {_num(vmax)}); try --range auto"
            )
    return out


def _blank_cause(stage_options: Sequence[Mapping[str, Any]], zero: bool) -> str:
    for opts in reversed(stage_options):
        act = str(opts.get("activation") or "none").partition(":")[0]
        bias = opts.get("bias")
        if zero and act == "relu" and nonzero_bias(bias) and np.all(np.asarray(bias) < 0):
            values = np.asarray(bias, dtype=np.float64)
            shown = _num(float(values)) if values.ndim == 0 else str(values.tolist())
            return (
                f"likely the bias ({shown}) pushes every response below 0 before relu sets it"
                " to 0 (try a smaller bias)"
            )
        if zero and act == "relu":
            return "relu set every response to 0 (no response is positive here)"
        if nonzero_bias(bias):
            return "the kernel gives 0 on this input and the bias is all that is left"
    if zero:
        return "the kernel responds with 0 everywhere (a flat input?)"
    return "the input is flat under this kernel"


__all__ = [
    "HINTS",
    "RANGE_SCOPES",
    "TONE_KINDS",
    "Extent",
    "Hint",
    "RangeSpec",
    "ToneMap",
    "decide",
    "extent_of",
    "levels_used",
    "parse_range",
    "sample",
    "tone_warnings",
    "with_counts",
]
