"""How large a run's arrays and files will be, worked out before anything is computed.

A few options turn a small image into a huge one: ``--padding 10000`` on a
16×16 image pads it to 20016×20016; ``--dilation 3000 --padding full`` pads a
3×3 kernel's input by 6000 on each side; a 4000-map montage is a 17000-pixel
square. The shape arithmetic (:func:`convcli.pipeline.plan`) knows every
stage's sizes without touching a pixel, so :func:`check_sizes` can refuse such
a run in one line before it allocates gigabytes.

What is limited is the largest array a run makes, counted in values (a value
is one pixel of one map, ``C × H × W``): every stage's padded input and
output, a dilated kernel, a 4-D layer's im2col block, and the montage. The
limit, ``--max-output-pixels`` (:data:`DEFAULT_MAX_VALUES` by default), grows
with big inputs: an input may always grow to :data:`GROWTH` times its own
size, so the limit concerns what options add, not what the image is (the
input's own size has its own guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from convcli.errors import SizeLimitError

if TYPE_CHECKING:
    from convcli.imageio import ImageData
    from convcli.pipeline import Pipeline, Result

#: Default limit: 2**28 values (1 GiB of float32) in any one array of a run.
DEFAULT_MAX_VALUES = 1 << 28
#: By default an array may also be this many times the input image's values.
GROWTH = 4
#: Columns of one im2col block (as :data:`convcli.ops.conv.GEMM_COLUMNS`).
_GEMM_COLUMNS = 2048

Limit = int | None | Literal["auto"]


@dataclass(frozen=True)
class ArraySize:
    """One array a run would make: what it is, its shape and its number of values."""

    what: str
    shape: tuple[int, ...]

    @property
    def values(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def parse_limit(text: str | int | None) -> Limit:
    """``--max-output-pixels``: a positive whole number, ``none`` or ``auto``.

    Accepts ``_`` and ``,`` as thousands separators and ``2**28`` style powers.

    >>> parse_limit("none"), parse_limit("auto"), parse_limit("1_000_000"), parse_limit("2**30")
    (None, 'auto', 1000000, 1073741824)
    """
    from convcli.errors import ParameterError

    if text is None or isinstance(text, int):
        return text
    word = text.strip().lower().replace("_", "").replace(",", "")
    if word in ("none", "auto"):
        return None if word == "none" else "auto"
    try:
        if "**" in word:
            base, exp = word.split("**")
            value = int(base) ** int(exp)
        else:
            value = int(word)
    except ValueError:
        value = 0
    if value < 1 or value > 1 << 62:
        raise ParameterError(
            f"--max-output-pixels must be a whole number >= 1, auto or none; got {text!r}"
        )
    return value


def array_sizes(result: Result, *, montage: bool = False) -> list[ArraySize]:
    """Every large array the run of a planned ``result`` makes (see the module docstring).

    >>> import numpy as np
    >>> from convcli.kernels.model import Kernel
    >>> from convcli.pipeline import ConvStage, Pipeline, plan
    >>> p = Pipeline((ConvStage(Kernel("box", np.ones((3, 3))), padding=100),), name="")
    >>> for a in array_sizes(plan(p, (3, 16, 16))):
    ...     print(a.what, a.shape, a.values)
    stage 1 (conv box): padded input (3, 216, 216) 139968
    stage 1 (conv box): output (3, 214, 214) 137388
    """
    out: list[ArraySize] = []
    for r in result.records:
        g = r.geometry
        where = f"stage {r.index} ({r.kind} {r.name})"
        c, h, w = g.in_shape
        t, b, left, right = g.padding
        if any(g.padding):
            out.append(ArraySize(f"{where}: padded input", (c, h + t + b, w + left + right)))
        kh, kw = g.kernel_hw
        if r.kind == "conv" and g.dilation != (1, 1):
            eh, ew = g.dilation[0] * (kh - 1) + 1, g.dilation[1] * (kw - 1) + 1
            out.append(ArraySize(f"{where}: dilated kernel", (eh, ew)))
        if r.kind == "conv" and g.params and g.in_shape[0] and g.out_shape[0]:
            per_output = g.macs // max(1, g.out_shape[0] * g.out_shape[1] * g.out_shape[2])
            if per_output > kh * kw:  # a 4-D layer: im2col gathers c_in·kh·kw rows
                cols = max(_GEMM_COLUMNS, g.out_shape[2])
                out.append(ArraySize(f"{where}: im2col block", (per_output, cols)))
        out.append(ArraySize(f"{where}: output", g.out_shape))
    if montage:
        from convcli.imageio.montage import montage_size

        n, h, w = result.out_shape
        mw, mh = montage_size(n, h, w)
        out.append(ArraySize(f"montage of {n} maps", (mh, mw)))
    return out


def effective_limit(limit: Limit, input_values: int) -> int | None:
    """The limit in values for an input of ``input_values`` (None: no limit).

    >>> effective_limit("auto", 100), effective_limit("auto", 10**9), effective_limit(5, 10**9)
    (268435456, 4000000000, 5)
    """
    if limit is None:
        return None
    if limit == "auto":
        return max(DEFAULT_MAX_VALUES, GROWTH * input_values)
    return int(limit)


def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


def check_sizes(result: Result, *, limit: Limit = "auto", montage: bool = False) -> None:
    """Raise :class:`~convcli.errors.SizeLimitError` when an array of the run is over the limit.

    ``result`` is a plan (:func:`convcli.pipeline.plan`); the message names the
    largest array, its shape and the limit, on one line.

    >>> import numpy as np
    >>> from convcli.kernels.model import Kernel
    >>> from convcli.pipeline import ConvStage, Pipeline, plan
    >>> p = Pipeline((ConvStage(Kernel("box", np.ones((3, 3))), padding=10000),), name="")
    >>> try:
    ...     check_sizes(plan(p, (3, 16, 16)))
    ... except SizeLimitError as exc:
    ...     print(str(exc).replace(", over", ",\\nover"))
    stage 1 (conv box): the padded input would be 3×20016×20016 = 1.2 G values,
    over the limit of 268 M (--max-output-pixels N|none raises or lifts it)
    """
    bound = effective_limit(limit, _values(result.in_shape))
    if bound is None:
        return
    sizes = array_sizes(result, montage=montage)
    if not sizes:
        return
    worst = max(sizes, key=lambda a: a.values)
    if worst.values <= bound:
        return
    where, _, what = worst.what.rpartition(": ")
    shape = "×".join(str(s) for s in worst.shape)
    prefix = f"{where}: the {what}" if where else f"the {worst.what}"
    raise SizeLimitError(
        f"{prefix} would be {shape} = {_count(worst.values)} values, over the limit of"
        f" {_count(bound)} (--max-output-pixels N|none raises or lifts it)"
    )


def _values(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def check_image(
    pipeline: Pipeline, image: ImageData, *, limit: Limit = "auto", montage: bool = False
) -> None:
    """:func:`check_sizes` for ``pipeline`` on a read ``image``, before anything is computed.

    The plan is made on the shape stage 1 will see (alpha dropped or kept as
    :func:`convcli.pipeline.prepare` decides) without copying the pixels.
    """
    if limit is None:
        return
    import numpy as np

    from convcli.pipeline import plan, prepare

    c, h, w = image.shape
    stand_in = type(image)(np.zeros((c, 1, 1), np.float32), image.channels, image.mode,
                           image.bit_depth, image.path)  # fmt: skip
    x, channels, _ = prepare(stand_in, pipeline)
    result = plan(pipeline, (x.shape[0], h, w), channels)
    bound = effective_limit(limit, c * h * w)
    check_sizes(result, limit=bound if bound is not None else None, montage=montage)


__all__ = [
    "DEFAULT_MAX_VALUES",
    "GROWTH",
    "ArraySize",
    "Limit",
    "array_sizes",
    "check_image",
    "check_sizes",
    "effective_limit",
    "parse_limit",
]
