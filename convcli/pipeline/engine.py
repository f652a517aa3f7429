"""One image through the stages: pad → conv → bias → activation → pool, recorded for the report.

A :class:`Pipeline` is data: a tuple of :class:`ConvStage` / :class:`PoolStage` /
:class:`CombineStage` plus the image options. :func:`plan` computes every stage's geometry without
pixels (``shape``, ``--dry-run``); :func:`run` computes the maps and records
the same geometry, per-map statistics and timings. :mod:`convcli.cli.report` only
reads what is recorded here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.imageio.layout import Layout
from convcli.ops.activations import parse_activation
from convcli.ops.combine import combine
from convcli.ops.conv import conv2d, result_dtype
from convcli.ops.padding import check_pad_mode
from convcli.ops.pool import pool2d
from convcli.shapes import (
    PaddingSpec,
    Pair,
    StageGeometry,
    combine_geometry,
    conv_geometry,
    pool_geometry,
)
from convcli.vocab import Alpha, CombineOp, PoolOp

if TYPE_CHECKING:
    from convcli.imageio import ImageData
    from convcli.kernels.model import Kernel

_ALPHA_EPS = 1e-6


@dataclass(frozen=True)
class ConvStage:
    """A convolution stage. Options left as None take the kernel's default (its YAML file or
    ONNX node), then the README's defaults (stride 1, padding same, reflect, ...)."""

    kernel: Kernel
    stride: int | Pair | None = None
    padding: PaddingSpec | None = None
    dilation: int | Pair | None = None
    activation: str | None = None
    pad_mode: str | None = None
    pad_value: float = 0.0
    groups: int | None = None
    flip: bool = False
    #: one value, one per output map, or True for a shape-only layer (counted, no value)
    bias: float | tuple[float, ...] | bool | None = None

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
            "pad_mode": _first(self.pad_mode, k.pad_mode, "reflect"),
            "pad_value": self.pad_value,
            "groups": _first(self.groups, k.groups, 1),
            "flip": self.flip or k.flip,
            "bias": _first(self.bias, k.bias, None),
        }

    @property
    def shape_only(self) -> bool:
        """True for a layer given by its size only (``kernel_size``): nothing to run."""
        from convcli.kernels.shapeonly import is_shape_only

        return is_shape_only(self.kernel)

    def for_input(self, channels: int) -> ConvStage:
        """This stage on ``channels`` incoming maps: a shape-only layer takes them as c_in."""
        from convcli.kernels.shapeonly import ShapeOnlyKernel

        if not isinstance(self.kernel, ShapeOnlyKernel):
            return self
        return replace(self, kernel=self.kernel.for_input(channels, self.options()["groups"]))

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
    size: int | Pair = 2
    stride: int | Pair | None = None
    padding: PaddingSpec = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    kind = "pool"

    @property
    def name(self) -> str:
        return self.op if PoolOp.parse(self.op).is_global else f"{self.op}pool"

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


@dataclass(frozen=True)
class CombineStage:
    """Reduce a bank's maps to one per input channel (see :func:`convcli.ops.combine.combine`).

    After conv + bias + activation, before pooling: ``sobel`` + ``magnitude`` is
    the gradient magnitude, ``kirsch`` + ``max`` the Kirsch edge detector.
    """

    op: str = "magnitude"

    kind = "combine"

    @property
    def name(self) -> str:
        return self.op

    def options(self) -> dict[str, Any]:
        return {"op": self.op}

    def validate(self) -> None:
        CombineOp.parse(self.op, what="combine")


Stage = ConvStage | PoolStage | CombineStage


@dataclass(frozen=True)
class Pipeline:
    """Stages plus the image options that apply before the first one.

    ``normalize`` is ``(mean, std)``, one value per channel (or one for all):
    stage 1 sees ``(x - mean) / std`` of the 0–1 image, as models trained on
    normalised images expect. ``notes`` are shown with the report's warnings
    (e.g. where an ONNX model's supported prefix ends).
    """

    stages: tuple[Stage, ...]
    name: str
    gray: bool = False
    alpha: str = "premultiply"
    dtype: str = "float32"
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    notes: tuple[str, ...] = ()

    def validate(self) -> None:
        if not self.stages:
            raise ParameterError("a pipeline needs at least one stage")
        Alpha.parse(self.alpha)
        result_dtype(np.zeros(1, np.float32), self.dtype)
        if self.normalize is not None:
            check_normalize(*self.normalize)
        members = 1  # a combine stage needs a bank (several maps per channel) before it
        for i, stage in enumerate(self.stages, 1):
            stage.validate()
            if isinstance(stage, ConvStage) and stage.kernel.kind != "2d":
                members = stage.kernel.weights.shape[0]
            elif isinstance(stage, CombineStage):
                if members < 2:
                    raise ParameterError(
                        f"stage {i} (combine {stage.op}): needs a bank before it (several maps"
                        " per channel, e.g. -k sobel or -k kirsch)"
                    )
                members = 1


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
    layout: Layout = Layout.image()
    labels: tuple[str, ...] = ()
    maps: np.ndarray | None = None  # kept only when asked (``--save-stages``)
    op: str = ""  # the pool or combine op ("max", "global-avg", "magnitude")

    @property
    def is_global_pool(self) -> bool:
        return self.kind == "pool" and PoolOp.parse(self.op).is_global


@dataclass
class Result:
    """One input through a pipeline."""

    input: str
    in_shape: tuple[int, int, int]
    channels: str  # of the array fed to stage 1, e.g. "RGB", "LA"
    records: list[StageRecord]
    maps: np.ndarray | None  # None for a plan
    layout: Layout  # how the maps group into pictures (see imageio.write_feature_maps)
    labels: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    #: (min, max, mean) per map when the maps were streamed to files, not kept (tiled runs)
    stats: list[tuple[float, float, float]] | None = None
    #: map_stats of the maps array it was computed for (the report asks several times)
    _stats_of: tuple[np.ndarray, list[tuple[float, float, float]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.records[-1].geometry.out_shape

    def map_stats(self) -> list[tuple[float, float, float]]:
        """(min, max, mean) of every output map (computed once for a given maps array)."""
        if self.maps is None:
            return list(self.stats or [])
        if self._stats_of is not None and self._stats_of[0] is self.maps:
            return list(self._stats_of[1])
        flat = self.maps.reshape(self.maps.shape[0], -1)
        stats = [(float(m.min()), float(m.max()), float(m.mean(dtype=np.float64))) for m in flat]
        self._stats_of = (self.maps, stats)
        return list(stats)


# --------------------------------------------------------------------------- planning


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _geom_opts(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: opts[k] for k in ("size", "stride", "padding", "ceil_mode")}


def _describe(stage: Stage) -> str:
    if isinstance(stage, CombineStage):
        return f"combine {stage.op}"
    if isinstance(stage, PoolStage):
        if PoolOp.parse(stage.op).is_global:
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


def layout_after(
    stage: Stage, layout: Layout, labels: tuple[str, ...]
) -> tuple[Layout, tuple[str, ...]]:
    """How the maps group into pictures after ``stage``, and their labels."""
    if isinstance(stage, PoolStage):
        return layout, labels
    if isinstance(stage, CombineStage):  # one map per channel of what the bank filtered
        if layout.kind == "bank" or (layout.kind == "maps" and labels):
            return Layout.image(), ()
        return layout, ()
    k = stage.kernel
    if k.kind == "2d":
        return layout, labels
    n = k.weights.shape[0]
    own = k.labels if len(k.labels) == n else tuple(str(i) for i in range(n))
    if k.kind == "bank" and layout.kind == "image":
        return Layout.bank(n), own
    if k.kind == "layer":
        return Layout.maps(), own
    return Layout.maps(), ()  # a bank applied to maps: n × incoming maps, numbered


def stages_layout(stages: Sequence[Stage]) -> tuple[Layout, tuple[str, ...]]:
    """The layout and labels of a pipeline's result, from its stages alone.

    >>> from convcli.kernels import load_kernel
    >>> stages_layout([ConvStage(load_kernel("sobel")), PoolStage("max", 2)])
    (Layout(kind='bank', members=2), ('sobel-x', 'sobel-y'))
    """
    layout = Layout.image()
    labels: tuple[str, ...] = ()
    for stage in stages:
        layout, labels = layout_after(stage, layout, labels)
    return layout, labels


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
    layout = Layout.image()
    labels: tuple[str, ...] = ()
    members = 1  # maps per channel of the last bank (what a combine stage reduces)
    records = []
    for i, stage in enumerate(pipeline.stages, 1):
        opts = stage.options()
        if isinstance(stage, ConvStage):
            stage = stage.for_input(shape[0])
            k = stage.kernel
            origin = k.origin
            if opts["flip"] and origin is not None:  # as conv2d flips it
                kh, kw = k.weights.shape[-2:]
                origin = (kh - 1 - origin[0], kw - 1 - origin[1])
            geom = conv_geometry(
                shape, k.weights.shape, stride=opts["stride"], padding=opts["padding"],
                dilation=opts["dilation"], groups=opts["groups"], origin=origin,
                bias=opts["bias"] is not None, rf_in=rf, jump_in=jump,
            )  # fmt: skip
            if k.kind != "2d":
                members = k.weights.shape[0]
        elif isinstance(stage, CombineStage):
            geom = combine_geometry(shape, members, rf_in=rf, jump_in=jump)
            opts = {**opts, "members": members}
            members = 1
        else:
            geom = pool_geometry(shape, op=stage.op, **_geom_opts(opts), rf_in=rf, jump_in=jump)
        layout, labels = layout_after(stage, layout, labels)
        records.append(
            StageRecord(
                i,
                stage.kind,
                stage.name,
                _describe(stage),
                geom,
                opts,
                0.0,
                layout,
                labels,
                op=getattr(stage, "op", ""),
            )
        )
        shape, rf, jump = geom.out_shape, geom.receptive_field, geom.jump
    return Result("", in_shape, channels, records, None, layout, labels, list(pipeline.notes))


# --------------------------------------------------------------------------- running


def prepare(image: ImageData, pipeline: Pipeline) -> tuple[np.ndarray, str, bool]:
    """The array stage 1 sees, its channel names, and whether colour was premultiplied.

    Alpha is handled first (below), then ``pipeline.normalize`` is applied.
    """
    x, channels, premultiplied = _prepare_alpha(image, pipeline)
    if pipeline.normalize is not None:
        x = normalize_channels(x, *pipeline.normalize, channels=channels)
    return x, channels, premultiplied


def _prepare_alpha(image: ImageData, pipeline: Pipeline) -> tuple[np.ndarray, str, bool]:
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
    if isinstance(first, CombineStage):  # refused by plan(): it needs a bank before it
        return x, channels, False
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
            and not _layer_input(first.kernel, channels, first.options()["groups"])[0]
        ):
            return x, channels, False  # c_in counts alpha
        return x[:-1], channels[:-1], False
    premul = x.copy()
    premul[:-1] *= x[-1]
    w = first.kernel.weights
    if np.all(w.reshape(-1, *w.shape[-2:]).sum(axis=(1, 2)) > _ALPHA_EPS):
        return premul, channels, True
    return premul[:-1], channels[:-1], False


def unpremultiply(y: np.ndarray, n_channels: int) -> np.ndarray:
    """Divide colour by the filtered alpha, per kernel of a bank, where alpha > 0."""
    groups = y.reshape(-1, n_channels, *y.shape[1:])
    alpha = groups[:, -1:]
    np.clip(alpha, 0, None, out=alpha)
    safe = np.where(alpha > _ALPHA_EPS, alpha, 1)
    groups[:, :-1] = np.where(alpha > _ALPHA_EPS, groups[:, :-1] / safe, 0)
    return y


def run(pipeline: Pipeline, image: ImageData, *, keep_stages: bool = False) -> Result:
    """Push one image through every stage; record geometry, timing and the final maps."""
    for i, stage in enumerate(pipeline.stages, 1):
        if isinstance(stage, ConvStage) and stage.shape_only:
            raise ParameterError(
                f"stage {i} (conv {stage.name}) has a size but no weights: it can be"
                " planned (convcli shape), not run"
            )
    x, channels, premultiplied = prepare(image, pipeline)
    result = plan(pipeline, x.shape, channels)  # type: ignore[arg-type]
    dtype = result_dtype(x, pipeline.dtype)
    for record, stage in zip(result.records, pipeline.stages, strict=True):
        t0 = time.perf_counter()
        if isinstance(stage, ConvStage):
            y = conv2d(x, stage.kernel, dtype=dtype, geometry=record.geometry, **record.options)
            if y.ndim == 2:
                y = y[None]
        elif isinstance(stage, CombineStage):
            y = combine(x, record.options["members"], stage.op)
        else:
            y = pool2d(x, stage.op, dtype=dtype, geometry=record.geometry, **record.options)
        if premultiplied and record.index == 1:
            y = unpremultiply(y, len(channels))
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


#: torchvision's ImageNet statistics (RGB, of images scaled to 0–1): ``--normalize imagenet``.
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def parse_normalize(text: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``--normalize imagenet``, ``MEAN,STD`` (all channels) or ``M1,...,Mn,S1,...,Sn``.

    An even count of numbers: the first half are the means, the second half the
    standard deviations, one per channel.

    >>> parse_normalize("0.5,0.25"), parse_normalize("imagenet") == IMAGENET_MEAN_STD
    (((0.5,), (0.25,)), True)
    >>> parse_normalize("0.1,0.2,0.3,1,1,2")
    ((0.1, 0.2, 0.3), (1.0, 1.0, 2.0))
    """
    if text is None:
        return None
    word = text.strip().lower()
    if word == "imagenet":
        return IMAGENET_MEAN_STD
    try:
        values = tuple(float(v) for v in word.split(","))
    except ValueError:
        values = ()
    if not values or len(values) % 2:
        raise ParameterError(
            "normalize must be imagenet, MEAN,STD, or one mean per channel then one std per"
            f" channel (M1,M2,M3,S1,S2,S3); got {text!r}"
        )
    half = len(values) // 2
    mean, std = values[:half], values[half:]
    check_normalize(mean, std)
    return mean, std


def check_normalize(mean: Sequence[float], std: Sequence[float]) -> None:
    """Means finite, standard deviations finite and > 0, as many of each."""
    if len(mean) != len(std) or not mean:
        raise ParameterError(
            f"normalize needs as many means as standard deviations, got {len(mean)} and {len(std)}"
        )
    if not all(np.isfinite(mean)) or not all(np.isfinite(s) and s > 0 for s in std):
        raise ParameterError(
            f"normalize: means must be finite and standard deviations > 0; got mean"
            f" {','.join(f'{m:g}' for m in mean)}, std {','.join(f'{s:g}' for s in std)}"
        )


def normalize_channels(
    x: np.ndarray, mean: Sequence[float], std: Sequence[float], *, channels: str = ""
) -> np.ndarray:
    """``(x - mean) / std`` per channel of a ``(C, H, W)`` array (a new array, same dtype).

    >>> normalize_channels(np.ones((2, 1, 1), np.float32), (0.5, 0.0), (0.5, 2.0)).ravel()
    array([1. , 0.5], dtype=float32)
    """
    c = x.shape[0]
    if len(mean) not in (1, c):
        seen = f"{c} channels ({channels})" if channels else f"{c} channels"
        raise ShapeError(
            f"normalize gives {len(mean)} means and standard deviations, but stage 1 sees {seen}"
        )
    m = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    s = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
    return ((x - m) / s).astype(x.dtype, copy=False)


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
