"""One image through the stages: pad → conv → bias → activation → pool, recorded for the report.

A :class:`Pipeline` is data: a tuple of :class:`ConvStage` / :class:`PoolStage`
plus the image options. :func:`plan` computes every stage's geometry without
pixels (``shape``, ``--dry-run``); :func:`run` computes the maps and records
the same geometry, per-map statistics and timings. :mod:`convcli.report` only
reads what is recorded here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.ops.activations import parse_activation
from convcli.ops.conv import conv2d, result_dtype
from convcli.ops.padding import check_pad_mode
from convcli.ops.pool import pool2d
from convcli.shapes import Pair, StageGeometry, conv_geometry, pool_geometry

if TYPE_CHECKING:
    from convcli.imageio import ImageData
    from convcli.kernels.model import Kernel

ALPHA_MODES = ("premultiply", "drop", "channel")
_ALPHA_EPS = 1e-6


@dataclass(frozen=True)
class ConvStage:
    """A convolution stage. Options left as None take the kernel's YAML default, then SPEC's."""

    kernel: Kernel
    stride: Any = None
    padding: Any = None
    dilation: Any = None
    activation: str | None = None
    pad_mode: str = "reflect"
    pad_value: float = 0.0
    groups: int = 1
    flip: bool = False
    bias: Any = None

    kind = "conv"

    @property
    def name(self) -> str:
        return self.kernel.name

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`convcli.conv2d`, defaults resolved."""
        k = self.kernel
        return {
            "stride": _first(self.stride, k.stride, 1),
            "padding": _first(self.padding, k.padding, "same"),
            "dilation": _first(self.dilation, k.dilation, 1),
            "activation": _first(self.activation, k.activation, "none"),
            "pad_mode": self.pad_mode,
            "pad_value": self.pad_value,
            "groups": self.groups,
            "flip": self.flip or k.flip,
            "bias": _first(self.bias, k.bias, None),
        }

    def validate(self) -> None:
        """Check option values before any image is read (so bad usage exits 2 at once)."""
        opts = self.options()
        check_pad_mode(opts["pad_mode"])
        if not np.isfinite(opts["pad_value"]):
            raise ParameterError(f"pad value must be finite, got {opts['pad_value']}")
        parse_activation(opts["activation"])
        # the geometry checks stride, dilation, padding and groups on a dummy input
        kshape = self.kernel.weights.shape
        c = kshape[1] * opts["groups"] if len(kshape) == 4 else 1
        try:
            conv_geometry(
                (c, 1 << 12, 1 << 12), kshape, stride=opts["stride"], padding=opts["padding"],
                dilation=opts["dilation"], groups=opts["groups"],
            )  # fmt: skip
        except ShapeError:
            if len(kshape) == 4:
                raise


@dataclass(frozen=True)
class PoolStage:
    """A pooling stage (PyTorch's rules)."""

    op: str = "max"
    size: Any = 2
    stride: Any = None
    padding: Any = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    kind = "pool"

    @property
    def name(self) -> str:
        return self.op if self.op.startswith("global") else f"{self.op}pool"

    def options(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def validate(self) -> None:
        try:  # checks op, size, stride and padding on a dummy input
            pool_geometry((1, 1 << 12, 1 << 12), op=self.op, **_geom_opts(self.options()))
        except ShapeError:
            pass  # a window larger than the dummy may fit the real image: checked per input


Stage = ConvStage | PoolStage


@dataclass(frozen=True)
class Pipeline:
    """Stages plus the image options that apply before the first one."""

    stages: tuple[Stage, ...]
    name: str
    gray: bool = False
    alpha: str = "premultiply"
    dtype: str = "float32"

    def validate(self) -> None:
        if not self.stages:
            raise ParameterError("a pipeline needs at least one stage")
        if self.alpha not in ALPHA_MODES:
            raise ParameterError(
                f"alpha must be one of {', '.join(ALPHA_MODES)}; got {self.alpha!r}"
            )
        result_dtype(np.zeros(1, np.float32), self.dtype)
        for stage in self.stages:
            stage.validate()


@dataclass
class StageRecord:
    """What one stage did: its geometry, a one-line description, its options and timing."""

    index: int
    kind: str
    name: str
    description: str
    geometry: StageGeometry
    options: dict[str, Any]
    seconds: float = 0.0
    layout: str = "image"
    labels: tuple[str, ...] = ()
    maps: np.ndarray | None = None  # kept only when asked (``--save-stages``)


@dataclass
class Result:
    """One input through a pipeline."""

    input: str
    in_shape: tuple[int, int, int]
    channels: str  # of the array fed to stage 1, e.g. "RGB", "LA"
    records: list[StageRecord]
    maps: np.ndarray | None  # None for a plan
    layout: str  # "image" | "bank:N" | "maps" (see imageio.write_feature_maps)
    labels: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.records[-1].geometry.out_shape

    def map_stats(self) -> list[tuple[float, float, float]]:
        """(min, max, mean) of every output map."""
        if self.maps is None:
            return []
        flat = self.maps.reshape(self.maps.shape[0], -1)
        return [(float(m.min()), float(m.max()), float(m.mean(dtype=np.float64))) for m in flat]


# --------------------------------------------------------------------------- planning


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _geom_opts(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: opts[k] for k in ("size", "stride", "padding", "ceil_mode")}


def _describe(stage: Stage) -> str:
    if isinstance(stage, PoolStage):
        if stage.op.startswith("global"):
            return stage.op
        return f"{stage.op} pool {_pair_text(stage.size)}"
    k = stage.kernel
    shape = "×".join(str(n) for n in k.weights.shape[-2:])
    if k.kind == "bank":
        return f"conv {k.name} (bank of {k.weights.shape[0]}, {shape})"
    if k.kind == "layer":
        return f"conv {k.name} (layer {k.weights.shape[0]}×{k.weights.shape[1]}×{shape})"
    return f"conv {k.name} ({shape})"


def _pair_text(v: Any) -> str:
    if isinstance(v, int | str):
        return f"{v}×{v}" if isinstance(v, int) else str(v)
    return "×".join(str(x) for x in v)


def _layer_input(kernel: Kernel, channels: str, groups: int) -> tuple[bool, str]:
    """Whether a 4-D kernel's first stage should drop alpha, and the channels it sees."""
    c_in = kernel.weights.shape[1] * groups
    if channels.endswith("A") and c_in == len(channels) - 1:
        return True, channels[:-1]
    return False, channels


def _layout_after(
    stage: Stage, layout: str, labels: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    if isinstance(stage, PoolStage):
        return layout, labels
    k = stage.kernel
    if k.kind == "2d":
        return layout, labels
    n = k.weights.shape[0]
    own = k.labels if len(k.labels) == n else tuple(str(i) for i in range(n))
    if k.kind == "bank" and layout == "image":
        return f"bank:{n}", own
    if k.kind == "layer":
        return "maps", own
    return "maps", ()  # a bank applied to maps: n × incoming maps, numbered


def plan(pipeline: Pipeline, in_shape: tuple[int, int, int], channels: str = "") -> Result:
    """Every stage's geometry for an input of ``in_shape``, without pixels.

    >>> from convcli.kernels.model import Kernel
    >>> k = Kernel("box", np.ones((3, 3)) / 9)
    >>> p = Pipeline((ConvStage(k, stride=2), PoolStage("max", 2)), name="demo")
    >>> plan(p, (3, 64, 48)).out_shape
    (3, 16, 12)
    """
    shape = in_shape
    channels = channels or ("L" if in_shape[0] == 1 else "RGB" if in_shape[0] == 3 else "")
    rf: Pair = (1, 1)
    jump: Pair = (1, 1)
    layout, labels = "image", ()
    records = []
    for i, stage in enumerate(pipeline.stages, 1):
        opts = stage.options()
        if isinstance(stage, ConvStage):
            k = stage.kernel
            geom = conv_geometry(
                shape, k.weights.shape, stride=opts["stride"], padding=opts["padding"],
                dilation=opts["dilation"], groups=opts["groups"], origin=k.origin,
                bias=opts["bias"] is not None, rf_in=rf, jump_in=jump,
            )  # fmt: skip
        else:
            geom = pool_geometry(shape, op=stage.op, **_geom_opts(opts), rf_in=rf, jump_in=jump)
        layout, labels = _layout_after(stage, layout, labels)
        records.append(
            StageRecord(
                i, stage.kind, stage.name, _describe(stage), geom, opts, 0.0, layout, labels
            )
        )
        shape, rf, jump = geom.out_shape, geom.receptive_field, geom.jump
    return Result("", in_shape, channels, records, None, layout, labels)


# --------------------------------------------------------------------------- running


def prepare(image: ImageData, pipeline: Pipeline) -> tuple[np.ndarray, str, bool]:
    """The array stage 1 sees, its channel names, and whether colour was premultiplied.

    ``premultiply`` (the default for images with alpha) multiplies colour by
    alpha so transparent pixels cannot bleed into their neighbours. When the
    first stage is a 2-D kernel or bank whose every member sums to a positive
    number (a blur), alpha is filtered too and colour is divided back by it
    afterwards. Kernels summing to zero or less (edge detectors) give no
    meaningful opacity: colour stays premultiplied and alpha is dropped. A
    first average pooling stage is a blur too (premultiplied, divided back);
    max/min pooling pools alpha like any channel; ``drop`` drops alpha before
    any first stage; a 4-D layer keeps alpha only when its ``c_in`` counts it.
    """
    x = image.array
    channels = image.channels
    if not image.has_alpha or pipeline.alpha == "channel":
        return x, channels, False
    first = pipeline.stages[0]
    if isinstance(first, PoolStage):
        if pipeline.alpha == "drop":
            return x[:-1], channels[:-1], False
        if first.op in ("avg", "global-avg"):
            premul = x.copy()
            premul[:-1] *= x[-1]
            return premul, channels, True
        return x, channels, False
    if pipeline.alpha == "drop" or first.kernel.kind == "layer":
        if (
            first.kernel.kind == "layer"
            and not _layer_input(first.kernel, channels, first.groups)[0]
        ):
            return x, channels, False  # c_in counts alpha
        return x[:-1], channels[:-1], False
    premul = x.copy()
    premul[:-1] *= x[-1]
    w = first.kernel.weights
    if np.all(w.reshape(-1, *w.shape[-2:]).sum(axis=(1, 2)) > _ALPHA_EPS):
        return premul, channels, True
    return premul[:-1], channels[:-1], False


def _unpremultiply(y: np.ndarray, n_channels: int) -> np.ndarray:
    """Divide colour by the filtered alpha, per kernel of a bank, where alpha > 0."""
    groups = y.reshape(-1, n_channels, *y.shape[1:])
    alpha = groups[:, -1:]
    np.clip(alpha, 0, None, out=alpha)
    safe = np.where(alpha > _ALPHA_EPS, alpha, 1)
    groups[:, :-1] = np.where(alpha > _ALPHA_EPS, groups[:, :-1] / safe, 0)
    return y


def run(pipeline: Pipeline, image: ImageData, *, keep_stages: bool = False) -> Result:
    """Push one image through every stage; record geometry, timing and the final maps."""
    x, channels, premultiplied = prepare(image, pipeline)
    result = plan(pipeline, x.shape, channels)  # type: ignore[arg-type]
    dtype = result_dtype(x, pipeline.dtype)
    for record, stage in zip(result.records, pipeline.stages, strict=True):
        t0 = time.perf_counter()
        if isinstance(stage, ConvStage):
            y = conv2d(x, stage.kernel, dtype=dtype, **record.options)
            if y.ndim == 2:
                y = y[None]
        else:
            y = pool2d(x, stage.op, dtype=dtype, **record.options)
        if premultiplied and record.index == 1:
            y = _unpremultiply(y, len(channels))
        record.seconds = time.perf_counter() - t0
        if keep_stages:
            record.maps = y
        x = y
    result.maps = x
    result.input = image.path
    return result


def output_name(stages: Sequence[Stage], pipeline_name: str | None = None) -> str:
    """The ``<kernel or op name>`` part of output file names.

    >>> output_name([PoolStage("avg", 3)])
    'avgpool'
    """
    if pipeline_name:
        return pipeline_name
    parts = [s.name for s in stages]
    return "-".join(parts)


def parse_bias(text: str | None) -> float | tuple[float, ...] | None:
    """``--bias 0.5`` or ``--bias 0.1,0.2,0.3``.

    >>> parse_bias("0.5"), parse_bias("1,-2")
    (0.5, (1.0, -2.0))
    """
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ParameterError(
            f"bias must be a number or numbers separated by commas, got {text!r}"
        ) from None
    if not all(np.isfinite(values)):
        raise ParameterError(f"bias must be finite, got {text!r}")
    return values[0] if len(values) == 1 else values


def bank_of(specs: Sequence[str], *, kernel_dirs: Sequence[Any] = ()) -> Kernel:
    """Load every ``-k`` and, when there are several, stack them into one bank.

    Members of different odd sizes are zero-padded, centred, to the largest
    size (which changes nothing under ``same`` padding). 4-D layers cannot join
    a bank.
    """
    from convcli.kernels import load_kernel
    from convcli.kernels.model import Kernel

    if not specs:
        raise ParameterError("give at least one kernel with -k (see: convcli kernels list)")
    kernels = [load_kernel(s, kernel_dirs=kernel_dirs) for s in specs]
    if len(kernels) == 1:
        return kernels[0]
    members: list[np.ndarray] = []
    labels: list[str] = []
    for k in kernels:
        if k.kind == "layer":
            raise ParameterError(f"{k.name} is a 4-D layer; it cannot join a bank of -k kernels")
        ws = k.weights[None] if k.kind == "2d" else k.weights
        members.extend(ws)
        labels.extend(k.labels if len(k.labels) == len(ws) else [k.name] * len(ws))
    kh = max(m.shape[0] for m in members)
    kw = max(m.shape[1] for m in members)
    stack = np.zeros((len(members), kh, kw))
    for i, m in enumerate(members):
        dy, dx = kh - m.shape[0], kw - m.shape[1]
        if dy % 2 or dx % 2:
            raise ParameterError(
                f"kernels of sizes {m.shape[0]}×{m.shape[1]} and {kh}×{kw} cannot share a bank"
                " (their centres do not line up); run them separately"
            )
        stack[i, dy // 2 : dy // 2 + m.shape[0], dx // 2 : dx // 2 + m.shape[1]] = m
    from convcli.imageio.write import safe_name

    if len({safe_name(lab) for lab in labels}) != len(labels):  # one file name per member
        labels = [f"{lab}.{i}" for i, lab in enumerate(labels)]
    return Kernel(
        "+".join(k.name for k in kernels),
        stack,
        description="bank of " + ", ".join(k.name for k in kernels),
        labels=tuple(labels),
    )
