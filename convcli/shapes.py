"""Size arithmetic for convolution and pooling — one formula in one place.

Nothing here touches pixel data: the compute code in :mod:`convcli.ops` asks
this module how much to pad and how large the output is, and the reports ask
it the same questions, so the two can never disagree.

Examples
--------
>>> conv_output_size(224, 7, stride=2, dilation=1, pad_before=3, pad_after=3)
112
>>> resolve_padding("same", (5, 5), (4, 4), stride=(1, 1), dilation=(1, 1))
(1, 2, 1, 2)
>>> pool_output_size(5, 2, stride=2, pad_before=0, pad_after=0, ceil_mode=True)
3
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from convcli.errors import ParameterError, ShapeError, SizeLimitError
from convcli.vocab import PaddingWord, PoolOp

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]  # top, bottom, left, right
PaddingSpec = int | str | Sequence[int]

#: Largest stride, dilation, window or padding accepted: no image is wider, and
#: larger numbers overflow the numeric core's int64 index arithmetic.
MAX_INT = 2**31 - 1
#: Most values a padded input may hold (4 TiB of float32): beyond that no
#: machine can allocate it, and numpy would fail with a bare ValueError.
MAX_VALUES = 1 << 40


# --------------------------------------------------------------------------- parsing


def as_pair(value: int | Sequence[int] | str, name: str, *, minimum: int = 1) -> Pair:
    """Turn ``S``, ``(SH, SW)`` or the strings ``"S"`` / ``"SH,SW"`` into a pair of ints.

    Raises :class:`ParameterError` naming ``name`` when a value is below ``minimum``.

    >>> as_pair(2, "stride"), as_pair("1,3", "stride")
    ((2, 2), (1, 3))
    >>> as_pair(0, "stride")
    Traceback (most recent call last):
    ...
    convcli.errors.ParameterError: stride must be >= 1, got 0
    """
    if isinstance(value, str):
        parts = [p.strip() for p in re.split(r"[,x×]", value.strip())]
        try:
            items = [int(p) for p in parts]
        except ValueError:
            raise ParameterError(
                f"{name} must be a whole number or two separated by a comma, got {value!r}"
            ) from None
    elif isinstance(value, bool):
        raise ParameterError(f"{name} must be a whole number or a pair, got {value!r}")
    elif isinstance(value, int) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        items = [int(value)]  # type: ignore[arg-type]
    else:
        try:
            items = [_as_int(v, name) for v in value]  # type: ignore[union-attr]
        except TypeError:
            raise ParameterError(
                f"{name} must be a whole number or a pair, got {value!r}"
            ) from None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        raise ParameterError(f"{name} takes one or two values, got {len(items)}: {value!r}")
    for v in items:
        if v < minimum:
            raise ParameterError(f"{name} must be >= {minimum}, got {v}")
        if v > MAX_INT:
            raise ParameterError(f"{name} must be at most {MAX_INT}, got {v}")
    return items[0], items[1]


def _as_int(v: object, name: str) -> int:
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise ParameterError(f"{name} must hold whole numbers, got {v!r}")
    return int(v)  # type: ignore[call-overload]


def parse_padding(value: PaddingSpec) -> str | Pad4:
    """Normalise a padding argument to a word or an explicit ``(top, bottom, left, right)``.

    Accepts ``valid``/``same``/``full``, ``P``, ``(PH, PW)``, ``(T, B, L, R)`` and the
    same as strings (``"1"``, ``"1,2"``, ``"0,1,0,1"``).

    >>> parse_padding("SAME"), parse_padding(1), parse_padding("1,2"), parse_padding((0, 1, 2, 3))
    ('same', (1, 1, 1, 1), (1, 1, 2, 2), (0, 1, 2, 3))
    """
    if isinstance(value, str):
        word = value.strip().lower()
        if word in PaddingWord.choices():
            return word
        parts = [p.strip() for p in word.split(",")]
        try:
            items = [int(p) for p in parts]
        except ValueError:
            raise ParameterError(
                f"padding must be valid, same, full, P, PH,PW or T,B,L,R; got {value!r}"
            ) from None
    elif isinstance(value, bool):
        raise ParameterError(f"padding must be a word or whole numbers, got {value!r}")
    elif hasattr(value, "__index__") and not hasattr(value, "__len__"):
        items = [int(value)]  # type: ignore[call-overload]
    else:
        try:
            items = [_as_int(v, "padding") for v in value]  # type: ignore[union-attr]
        except TypeError:
            raise ParameterError(
                f"padding must be a word or whole numbers, got {value!r}"
            ) from None
    if any(v < 0 for v in items):
        raise ParameterError(f"padding must not be negative, got {value!r}")
    if any(v > MAX_INT for v in items):
        raise ParameterError(f"padding must be at most {MAX_INT}, got {value!r}")
    if len(items) == 1:
        return (items[0],) * 4  # type: ignore[return-value]
    if len(items) == 2:
        return items[0], items[0], items[1], items[1]
    if len(items) == 4:
        return items[0], items[1], items[2], items[3]
    raise ParameterError(f"padding takes 1, 2 or 4 numbers, got {len(items)}: {value!r}")


# --------------------------------------------------------------------------- arithmetic


def effective_size(k: int, dilation: int) -> int:
    """Span of a dilated kernel: ``dilation * (k - 1) + 1``."""
    return dilation * (k - 1) + 1


def conv_output_size(
    n: int, k: int, *, stride: int, dilation: int, pad_before: int, pad_after: int
) -> int:
    """PyTorch's formula: ``floor((n + pads - dilation*(k-1) - 1) / stride) + 1``.

    Returns 0 or less when the kernel does not fit; callers decide whether that is an error.
    """
    return (n + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1


def same_padding(n: int, k: int, stride: int, dilation: int, origin: int | None = None) -> Pair:
    """TensorFlow's ``same`` rule: ``out = ceil(n / stride)``; extra pixel after.

    With ``origin`` (the anchor tap), the padding before is ``origin * dilation``
    (at most the total), so the anchor sits on each output pixel when stride is 1.

    >>> same_padding(5, 3, 1, 1), same_padding(224, 7, 2, 1), same_padding(6, 2, 2, 1)
    ((1, 1), (2, 3), (0, 0))
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + effective_size(k, dilation) - n, 0)
    before = total // 2 if origin is None else min(total, origin * dilation)
    return before, total - before


def resolve_padding(
    padding: PaddingSpec,
    in_hw: Pair,
    kernel_hw: Pair,
    *,
    stride: Pair,
    dilation: Pair,
    origin: Pair | None = None,
) -> Pad4:
    """Padding actually applied, ``(top, bottom, left, right)``, for a padding argument."""
    spec = parse_padding(padding)
    if spec == "valid":
        return 0, 0, 0, 0
    if spec == "full":
        ph, pw = (dilation[0] * (kernel_hw[0] - 1), dilation[1] * (kernel_hw[1] - 1))
        return ph, ph, pw, pw
    if spec in ("same", "same-lower"):
        oy, ox = origin if origin is not None else (None, None)
        top, bottom = same_padding(in_hw[0], kernel_hw[0], stride[0], dilation[0], oy)
        left, right = same_padding(in_hw[1], kernel_hw[1], stride[1], dilation[1], ox)
        if spec == "same-lower":
            return bottom, top, right, left
        return top, bottom, left, right
    assert isinstance(spec, tuple)
    return spec


def pool_output_size(
    n: int, k: int, *, stride: int, pad_before: int, pad_after: int, ceil_mode: bool
) -> int:
    """PyTorch's pooling size: floor (or ceil) of ``(n + pads - k) / stride`` plus one.

    In ceil mode a last window that would start inside the bottom/right padding
    (or past it) is dropped, as PyTorch does.
    """
    span = n + pad_before + pad_after - k
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + pad_before:
        out -= 1
    return out


# --------------------------------------------------------------------------- stage geometry


@dataclass(frozen=True)
class AxisFormula:
    """One axis of a size computation, with the numbers filled in, for reports."""

    axis: str  # "H" or "W"
    size_in: int
    kernel: int
    stride: int
    dilation: int
    pad_before: int
    pad_after: int
    size_out: int
    ceil_mode: bool = False
    unused: int = 0  # input rows/columns at the end no window reaches
    pool: bool = False

    def text(self) -> str:
        """The size formula with the numbers filled in.

        >>> AxisFormula("H", 224, 7, 2, 1, 3, 3, 112).text()
        'floor((224 + 2·3 - 1·(7-1) - 1) / 2) + 1 = 112'
        """
        rnd = "ceil" if self.ceil_mode else "floor"
        if self.pad_before == self.pad_after:
            pads = f"2·{self.pad_before}" if self.pad_before else "0"
        else:
            pads = f"{self.pad_before}+{self.pad_after}"
        span = str(self.kernel) if self.pool else f"{self.dilation}·({self.kernel}-1) - 1"
        return f"{rnd}(({self.size_in} + {pads} - {span}) / {self.stride}) + 1 = {self.size_out}"


@dataclass(frozen=True)
class StageGeometry:
    """Shape facts of one conv or pool stage, computed without any array.

    ``receptive_field`` and ``jump`` (effective stride) are cumulative from the
    input image, given the incoming values ``rf_in`` / ``jump_in``.
    """

    kind: Literal["conv", "pool", "combine"]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel_hw: Pair
    stride: Pair
    dilation: Pair
    padding: Pad4
    formulas: tuple[AxisFormula, AxisFormula]
    params: int
    macs: int
    receptive_field: Pair
    jump: Pair
    warnings: tuple[str, ...] = field(default=())


def _axis(
    axis: str, n: int, k: int, s: int, d: int, before: int, after: int, ceil_mode: bool, pool: bool
) -> AxisFormula:
    if pool:
        out = pool_output_size(
            n, k, stride=s, pad_before=before, pad_after=after, ceil_mode=ceil_mode
        )
    else:
        out = conv_output_size(n, k, stride=s, dilation=d, pad_before=before, pad_after=after)
    covered = (out - 1) * s + effective_size(k, d) if out > 0 else 0
    unused = max(0, n + before + after - covered - after) if not ceil_mode else 0
    unused = min(unused, n)
    return AxisFormula(axis, n, k, s, d, before, after, out, ceil_mode, unused, pool)


def conv_geometry(
    in_shape: tuple[int, int, int],
    kernel_shape: tuple[int, ...],
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingSpec = "same",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    origin: Pair | None = None,
    bias: bool = False,
    rf_in: Pair = (1, 1),
    jump_in: Pair = (1, 1),
) -> StageGeometry:
    """Geometry of a convolution of a ``(C, H, W)`` input with a kernel of ``kernel_shape``.

    ``kernel_shape`` is 2-D (depthwise: C outputs), 3-D ``(n, kh, kw)`` (a bank:
    n*C outputs) or 4-D ``(c_out, c_in/groups, kh, kw)`` (a layer: c_out outputs).

    >>> g = conv_geometry((3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    >>> g.out_shape, g.params, g.receptive_field, g.jump
    ((64, 112, 112), 9408, (7, 7), (2, 2))
    """
    c, h, w = in_shape
    st = as_pair(stride, "stride")
    dil = as_pair(dilation, "dilation")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ParameterError(f"groups must be a whole number >= 1, got {groups!r}")
    ndim = len(kernel_shape)
    if ndim not in (2, 3, 4):
        raise ShapeError(
            f"kernel must be 2-D (kh, kw), 3-D (n, kh, kw) or 4-D (c_out, c_in/groups, kh, kw);"
            f" got {ndim}-D shape {tuple(kernel_shape)}"
        )
    kh, kw = kernel_shape[-2:]
    if kh < 1 or kw < 1 or any(n < 1 for n in kernel_shape):
        raise ShapeError(f"kernel shape {tuple(kernel_shape)} has an empty axis")
    if ndim == 4:
        c_out, c_in_g = kernel_shape[0], kernel_shape[1]
        if c_in_g * groups != c:
            raise ShapeError(
                f"layer kernel expects {c_in_g * groups} input channels"
                f" (c_in/groups={c_in_g} × groups={groups}), the input has {c}"
            )
        if c_out % groups:
            raise ShapeError(f"groups={groups} must divide the {c_out} output channels")
        out_c = c_out
        per_output = c_in_g * kh * kw
        params = c_out * per_output + (c_out if bias else 0)
    else:
        if groups != 1:
            raise ParameterError(
                f"groups={groups} applies to 4-D layer kernels only; a {ndim}-D kernel"
                " already filters each channel on its own"
            )
        n = 1 if ndim == 2 else kernel_shape[0]
        out_c = n * c
        per_output = kh * kw
        params = n * kh * kw + (out_c if bias else 0)
    if origin is not None and not (0 <= origin[0] < kh and 0 <= origin[1] < kw):
        raise ParameterError(f"origin {origin} lies outside the {kh}×{kw} kernel")
    pad = resolve_padding(padding, (h, w), (kh, kw), stride=st, dilation=dil, origin=origin)
    _check_padded_size(c, h, w, pad)
    fy = _axis("H", h, kh, st[0], dil[0], pad[0], pad[1], False, False)
    fx = _axis("W", w, kw, st[1], dil[1], pad[2], pad[3], False, False)
    if fy.size_out < 1 or fx.size_out < 1:
        raise ShapeError(
            f"kernel {kh}×{kw} (dilation {dil[0]},{dil[1]}: spans"
            f" {effective_size(kh, dil[0])}×{effective_size(kw, dil[1])}) is larger than the"
            f" padded input {h + pad[0] + pad[1]}×{w + pad[2] + pad[3]}"
        )
    warnings = _unused_warnings(fy, fx)
    out_shape = (out_c, fy.size_out, fx.size_out)
    rf = (
        rf_in[0] + (effective_size(kh, dil[0]) - 1) * jump_in[0],
        rf_in[1] + (effective_size(kw, dil[1]) - 1) * jump_in[1],
    )
    return StageGeometry(
        "conv", (c, h, w), out_shape, (kh, kw), st, dil, pad, (fy, fx), params,
        out_c * fy.size_out * fx.size_out * per_output, rf,
        (jump_in[0] * st[0], jump_in[1] * st[1]), warnings,
    )  # fmt: skip


def pool_geometry(
    in_shape: tuple[int, int, int],
    *,
    op: str = "max",
    size: int | Sequence[int] = 2,
    stride: int | Sequence[int] | None = None,
    padding: PaddingSpec = 0,
    ceil_mode: bool = False,
    rf_in: Pair = (1, 1),
    jump_in: Pair = (1, 1),
) -> StageGeometry:
    """Geometry of a pooling stage (PyTorch's rules; ``same``/``valid`` as for conv).

    >>> pool_geometry((64, 112, 112), size=3, stride=2, padding=1).out_shape
    (64, 56, 56)
    >>> pool_geometry((1, 5, 5), size=2, ceil_mode=True).out_shape
    (1, 3, 3)
    """
    c, h, w = in_shape
    op = PoolOp.parse(op).value
    if op.startswith("global"):
        kh, kw = h, w
        st: Pair = (max(h, 1), max(w, 1))
        pad: Pad4 = (0, 0, 0, 0)
        ceil_mode = False
    else:
        kh, kw = as_pair(size, "pool size")
        st = as_pair(stride, "pool stride") if stride is not None else (kh, kw)
        spec = parse_padding(padding)
        if spec == "full":
            raise ParameterError("pool padding must be P, PH,PW, valid or same; 'full' is for conv")
        pad = resolve_padding(spec, (h, w), (kh, kw), stride=st, dilation=(1, 1))
        if isinstance(spec, tuple) and (
            max(pad[0], pad[1]) > kh // 2 or max(pad[2], pad[3]) > kw // 2
        ):
            sides = zip(("top", "bottom", "left", "right"), pad, (kh, kh, kw, kw), strict=True)
            wide = ", ".join(f"{side} {p}" for side, p, k in sides if p > k // 2)
            raise ParameterError(
                f"pool padding ({wide}) must be at most half the window {kh}×{kw}"
                " (a window would see only padding)"
            )
    _check_padded_size(c, h, w, pad)
    fy = _axis("H", h, kh, st[0], 1, pad[0], pad[1], ceil_mode, True)
    fx = _axis("W", w, kw, st[1], 1, pad[2], pad[3], ceil_mode, True)
    if fy.size_out < 1 or fx.size_out < 1:
        raise ShapeError(
            f"pool window {kh}×{kw} is larger than the padded input"
            f" {h + pad[0] + pad[1]}×{w + pad[2] + pad[3]}"
        )
    rf = (rf_in[0] + (kh - 1) * jump_in[0], rf_in[1] + (kw - 1) * jump_in[1])
    return StageGeometry(
        "pool", (c, h, w), (c, fy.size_out, fx.size_out), (kh, kw), st, (1, 1), pad, (fy, fx),
        0, c * fy.size_out * fx.size_out * kh * kw, rf,
        (jump_in[0] * st[0], jump_in[1] * st[1]), _unused_warnings(fy, fx),
    )  # fmt: skip


def combine_geometry(
    in_shape: tuple[int, int, int],
    members: int,
    *,
    rf_in: Pair = (1, 1),
    jump_in: Pair = (1, 1),
) -> StageGeometry:
    """Geometry of combining a bank: ``n·C`` maps of ``members`` = n per channel → ``C``.

    One read per incoming value; the size, receptive field and stride do not change.

    >>> combine_geometry((6, 10, 12), 2).out_shape
    (3, 10, 12)
    """
    c, h, w = in_shape
    if members < 2:
        raise ShapeError(
            f"combine needs a bank before it (several maps per channel, e.g. -k sobel);"
            f" the {c} incoming map{'s are' if c != 1 else ' is'} one per channel"
        )
    if c % members:
        raise ShapeError(f"{c} maps do not split into {members} bank members")
    fy = _axis("H", h, 1, 1, 1, 0, 0, False, True)
    fx = _axis("W", w, 1, 1, 1, 0, 0, False, True)
    return StageGeometry(
        "combine", (c, h, w), (c // members, h, w), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0),
        (fy, fx), 0, c * h * w, rf_in, jump_in,
    )  # fmt: skip


def _check_padded_size(c: int, h: int, w: int, pad: Pad4) -> None:
    ph, pw = h + pad[0] + pad[1], w + pad[2] + pad[3]
    if max(c, 1) * ph * pw > MAX_VALUES:
        raise SizeLimitError(
            f"the padded input {c}×{ph}×{pw} is too large to compute (more than 2**40 values);"
            " use less padding or a smaller dilation or window"
        )


def _unused_warnings(fy: AxisFormula, fx: AxisFormula) -> tuple[str, ...]:
    out = []
    for f, what in ((fy, "rows"), (fx, "columns")):
        if f.unused:
            noun = what if f.unused > 1 else what[:-1]
            out.append(
                f"stride {f.stride} leaves the last {f.unused} input {noun}"
                f" unused ({f.axis}: {f.size_in} + padding {f.pad_before}+{f.pad_after})"
            )
    return tuple(out)


__all__ = [
    "AxisFormula",
    "StageGeometry",
    "as_pair",
    "combine_geometry",
    "conv_geometry",
    "conv_output_size",
    "effective_size",
    "parse_padding",
    "pool_geometry",
    "pool_output_size",
    "resolve_padding",
    "same_padding",
]
