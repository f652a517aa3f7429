"""What a ``--range`` says: a word, explicit values or percentiles (no numpy here).

The command line checks ``--range`` (its default too) while it parses the
options; :mod:`convcli.imageio.tone` decides the mapping the spec asks for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from convcli.errors import ParameterError
from convcli.vocab import RangeMode


@dataclass(frozen=True)
class RangeSpec:
    """A parsed ``--range``: a word, explicit numbers or percentiles.

    Attributes
    ----------
    mode : str
        ``auto``, ``clip``, ``minmax``, ``abs``, ``offset``, ``explicit`` or ``percentile``.
    lo, hi : float
        The numbers of ``explicit`` (values → black, white) or ``percentile`` (0..100).
    """

    mode: str = "auto"
    lo: float = 0.0
    hi: float = 1.0

    def text(self) -> str:
        """The spec as the user would type it.

        >>> parse_range("p1,p99").text(), parse_range("-1,1").text()
        ('p1,p99', '-1,1')
        """
        if self.mode == "explicit":
            return f"{self.lo:g},{self.hi:g}"
        if self.mode == "percentile":
            return f"p{self.lo:g},p{self.hi:g}"
        return self.mode


def parse_range(value: str | RangeSpec) -> RangeSpec:
    """``auto|clip|minmax|abs|offset``, ``LO,HI`` (values) or ``pLO,pHI`` (percentiles).

    Raises :class:`~convcli.errors.ParameterError` (exit 2) for anything else.

    Examples
    --------
    >>> parse_range("auto"), parse_range("-1,1"), parse_range("p1,p99.5")
    (RangeSpec(mode='auto', lo=0.0, hi=1.0), RangeSpec(mode='explicit', lo=-1.0, hi=1.0), \
RangeSpec(mode='percentile', lo=1.0, hi=99.5))
    >>> parse_range("identity").mode
    'clip'
    """
    if isinstance(value, RangeSpec):
        return value
    text = str(value).strip().lower()
    if "," not in text:
        try:  # a word of convcli.vocab.RangeMode (``identity``: the old name of clip)
            return RangeSpec(RangeMode.parse(text).value)
        except ParameterError:
            pass
    hint = (
        f"use {', '.join(RangeMode.choices())}, LO,HI (values, e.g. -1,1) or pLO,pHI"
        " (percentiles, e.g. p1,p99)"
    )
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ParameterError(f"unknown range mode {value!r}: {hint}")
    percent = [p.startswith("p") for p in parts]
    if any(percent) and not all(percent):
        raise ParameterError(f"range {value!r}: give two percentiles (p1,p99) or two values")
    try:
        lo, hi = (float(p[1:] if p.startswith("p") else p) for p in parts)
    except ValueError:
        raise ParameterError(f"unknown range mode {value!r}: {hint}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParameterError(f"range {value!r}: the numbers must be finite")
    if lo >= hi:
        raise ParameterError(f"range {value!r}: the first number must be below the second")
    if all(percent):
        if lo < 0 or hi > 100:
            raise ParameterError(f"range {value!r}: percentiles lie between p0 and p100")
        return RangeSpec("percentile", lo, hi)
    return RangeSpec("explicit", lo, hi)
