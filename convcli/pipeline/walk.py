"""The numbers of ``convcli explain``: one conv layer and a pooling step on a tiny patch.

:func:`walkthrough` computes everything with the library itself —
:func:`convcli.conv2d`, :func:`convcli.pool2d`, :func:`convcli.ops.padding.pad2d`
and the geometry of :mod:`convcli.shapes` — so every number shown is the number
``convcli convolve`` computes; it only adds the bookkeeping a reader needs (which
input cells one window covers, their products, which cells each pooling window
takes). The result is plain data (:class:`Walkthrough`, and
:func:`walkthrough_json`); :mod:`convcli.cli.explain_view` draws it.

Units: the patch may be given in display units (:data:`BYTE`: 0–255, so the
arithmetic reads in whole numbers) while ``convolve`` works on ``value / 255``.
The walk then computes on the true values (``patch / units.scale``) and shows
every result ``× units.scale``: the bias, which is given in true units as
``convolve`` takes it, shows as ``scale · bias``; relu, leaky-relu and abs are
scale-free (``f(s·x) = s·f(x)``), sigmoid and tanh are not and act on the true
value. So every number shown, divided by the scale, is ``convolve``'s.

Examples
--------
>>> import numpy as np
>>> patch = np.array([[0, 0, 9, 9]] * 4, dtype=np.float64)
>>> w = walkthrough(patch, np.array([[-1, 0, 1]] * 3), padding="valid", pool=None)
>>> w.output.tolist()
[[[27.0, 27.0], [27.0, 27.0]]]
>>> w.window.total, w.window.value
(27.0, 27.0)
>>> w = walkthrough(patch, np.array([[-1, 0, 1]] * 3), padding="valid", pool=None,
...                 bias=-0.1, activation="relu", units=BYTE)
>>> w.window.bias, w.window.pre, w.window.value  # 27 + 255·(-0.1)
(-25.5, 1.5, 1.5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convcli.kernels.model import Kernel
from convcli.ops.activations import activate, parse_activation
from convcli.ops.conv import conv2d
from convcli.ops.padding import pad2d
from convcli.ops.pool import pool2d
from convcli.pipeline.engine import ConvStage, Pipeline, PoolStage, plan
from convcli.shapes import StageGeometry, as_pair, conv_geometry, pool_geometry
from convcli.vocab import PoolOp

#: Patch of samples/camera.png with a dark-to-bright vertical edge (row, col of its centre).
CAMERA_EDGE = (207, 177)

# --------------------------------------------------------------------------- computing


@dataclass(frozen=True)
class Units:
    """How the numbers of a walk are shown: ``shown = true value × scale``."""

    scale: float
    name: str

    def json(self) -> dict[str, Any]:
        scale = int(self.scale) if float(self.scale).is_integer() else self.scale
        return {"scale": scale, "name": self.name}


#: 8-bit pixels as whole numbers: convcli reads them as value/255, explain shows value.
BYTE = Units(255.0, "0–255")
#: The values as they are (float images, arrays given to the library).
RAW = Units(1.0, "raw")

#: Activations with f(s·x) = s·f(x) for s > 0: they may act on scaled values.
SCALE_FREE = frozenset({"none", "relu", "leaky-relu", "abs"})


def scale_free(activation: str | None) -> bool:
    """Whether ``activation`` commutes with a positive scale (relu does, sigmoid does not).

    >>> scale_free("leaky-relu:0.2"), scale_free("tanh")
    (True, False)
    """
    return parse_activation(activation)[0].value in SCALE_FREE


@dataclass(frozen=True)
class Tap:
    """One input channel's part of a window: the cells it covers and their products."""

    channel: int
    values: np.ndarray  # (kh, kw) input values under the kernel (padded input)
    weights: np.ndarray  # (kh, kw) the weights as applied (flipped already when flip)
    products: np.ndarray  # values * weights

    @property
    def total(self) -> float:
        return float(self.products.sum())


@dataclass(frozen=True)
class Window:
    """One output value worked out by hand: ``sum(products) + bias``, then the activation."""

    map: int
    row: int
    col: int
    rows: tuple[int, ...]  # padded-input rows the taps read (dilation spaces them)
    cols: tuple[int, ...]
    taps: tuple[Tap, ...]
    bias: float  # in the walk's units (scale × the bias convolve adds)
    activation: str
    value: float  # activation(total + bias), by this module's own arithmetic, shown units
    scale: float = 1.0  # the walk's unit scale (see :class:`Units`)

    @property
    def total(self) -> float:
        return float(sum(t.total for t in self.taps))

    @property
    def pre(self) -> float:
        """The value before the activation: ``total + bias`` (shown units)."""
        return self.total + self.bias

    @property
    def scale_free(self) -> bool:
        """True when the activation may act on the shown value directly."""
        return self.scale == 1.0 or scale_free(self.activation)

    @property
    def true_pre(self) -> float:
        """``pre`` in convolve's units, what a not scale-free activation acts on."""
        return self.pre / self.scale

    @property
    def true_value(self) -> float:
        """``value`` in convolve's units."""
        return self.value / self.scale


@dataclass(frozen=True)
class PoolWindow:
    row: int
    col: int
    rows: tuple[int, ...]  # rows of the conv output map it covers (padding excluded)
    cols: tuple[int, ...]
    value: float  # pool2d's


@dataclass
class PoolWalk:
    op: str
    options: dict[str, Any]
    geometry: StageGeometry
    pooled: np.ndarray  # (C, H', W') pool2d of the conv output
    other_op: str
    other: np.ndarray  # the contrasting op (max <-> avg) with the same windows
    windows: list[PoolWindow]


@dataclass
class Walkthrough:
    """Everything ``convcli explain`` shows; arrays are conv2d's and pool2d's own results."""

    patch: np.ndarray  # (C, H, W)
    kernel: Kernel
    options: dict[str, Any]  # conv2d keyword arguments, defaults resolved
    weights: np.ndarray  # as applied: flipped when flip
    geometry: StageGeometry
    padded: np.ndarray  # (C, H+pads, W+pads), pad2d with the same mode
    pre_activation: np.ndarray  # conv2d with the bias but no activation
    output: np.ndarray  # conv2d with everything
    window: Window
    pool: PoolWalk | None = None
    source: str = ""
    units: Units = RAW
    notes: list[str] = field(default_factory=list)
    plan_shapes: list[tuple[str, tuple[int, int, int], tuple[int, int], tuple[int, int]]] = field(
        default_factory=list
    )  # (stage, out C×H×W, receptive field, effective stride)


def walkthrough(
    patch: np.ndarray,
    kernel: Kernel | np.ndarray,
    *,
    stride: Any = None,
    padding: Any = None,
    dilation: Any = None,
    pad_mode: str | None = None,
    pad_value: float = 0.0,
    flip: bool = False,
    bias: Any = None,
    activation: str | None = None,
    pool: str | None = "max",
    pool_size: Any = 2,
    pool_stride: Any = None,
    pool_padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    window: tuple[int, int] | None = None,
    source: str = "",
    units: Units = RAW,
) -> Walkthrough:
    """Run one conv (and optionally one pool) on ``patch``, keeping every intermediate.

    Options left as None take the kernel's own defaults (its YAML file), then
    the README's defaults, exactly as ``convcli convolve`` resolves them. ``window`` picks the
    output position worked out by hand (default: the strongest response of map 0).

    ``patch`` is in ``units``: ``convolve`` would see ``patch / units.scale``.
    The options (``bias``, ``pad_value``) are in ``convolve``'s units, as its
    command line takes them; every array of the result is in ``units``
    (``output / units.scale`` is ``convolve``'s output).
    """
    shown = np.asarray(patch, dtype=np.float64)
    if shown.ndim == 2:
        shown = shown[None]
    scale = float(units.scale)
    if not (np.isfinite(scale) and scale > 0):
        from convcli.errors import ParameterError

        raise ParameterError(f"the unit scale must be a positive number, got {units.scale}")
    x = shown / scale  # what convolve computes on
    k = kernel if isinstance(kernel, Kernel) else Kernel("kernel", np.asarray(kernel, float))
    stage = ConvStage(
        k, stride=stride, padding=padding, dilation=dilation, activation=activation,
        pad_mode=pad_mode, pad_value=pad_value, flip=flip, bias=bias,
    )  # fmt: skip
    opts = stage.options()
    w = np.asarray(k.weights, dtype=np.float64)
    origin = k.origin
    if opts["flip"]:
        w = w[..., ::-1, ::-1]
        if origin is not None:
            origin = (w.shape[-2] - 1 - origin[0], w.shape[-1] - 1 - origin[1])
    geom = conv_geometry(
        x.shape, w.shape, stride=opts["stride"], padding=opts["padding"],
        dilation=opts["dilation"], groups=opts["groups"], origin=origin,
        bias=opts["bias"] is not None,
    )  # fmt: skip
    padded = pad2d(
        shown, geom.padding, mode=opts["pad_mode"], value=float(opts["pad_value"]) * scale
    )
    # linear steps in the shown units (whole numbers stay whole); an activation that is
    # not scale-free acts on the true values, and its result is shown scaled
    shown_opts = {**opts, "bias": _times(opts["bias"], scale),
                  "pad_value": float(opts["pad_value"]) * scale}  # fmt: skip
    pre = _chw(conv2d(shown, k, **{**shown_opts, "activation": None}))
    if scale == 1.0 or scale_free(opts["activation"]):
        out = _chw(conv2d(shown, k, **shown_opts))
    else:
        out = _chw(conv2d(x, k, **opts)) * scale
    if window is None:
        flat = int(np.argmax(np.abs(pre[0])))
        window = (flat // pre.shape[2], flat % pre.shape[2])
    i, j = window
    if not (0 <= i < out.shape[1] and 0 <= j < out.shape[2]):
        from convcli.errors import ParameterError

        raise ParameterError(
            f"window {i},{j} is outside the {out.shape[1]}×{out.shape[2]} output"
            f" (rows 0–{out.shape[1] - 1}, columns 0–{out.shape[2] - 1})"
        )
    win = _window(shown, padded, w, opts, geom, 0, i, j, scale)
    walk = Walkthrough(
        shown, k, opts, w, geom, padded, pre, out, win, source=source, units=units
    )  # fmt: skip
    stages: list[Any] = [stage]
    if pool:
        popts = {
            "size": as_pair(pool_size, "pool size"),
            "stride": as_pair(pool_stride, "pool stride") if pool_stride is not None else None,
            "padding": pool_padding, "ceil_mode": ceil_mode,
            "count_include_pad": count_include_pad,
        }  # fmt: skip
        walk.pool = _pool_walk(out, pool, popts)
        stages.append(PoolStage(pool, **popts))
    result = plan(Pipeline(tuple(stages), name="explain"), shown.shape)  # type: ignore[arg-type]
    walk.plan_shapes = [
        (r.description, r.geometry.out_shape, r.geometry.receptive_field, r.geometry.jump)
        for r in result.records
    ]
    return walk


def _times(bias: Any, scale: float) -> Any:
    if bias is None or scale == 1.0:
        return bias
    if isinstance(bias, tuple | list | np.ndarray):
        return tuple(float(b) * scale for b in bias)
    return float(bias) * scale


def _chw(y: np.ndarray) -> np.ndarray:
    return y[None] if y.ndim == 2 else y


def _members(x: np.ndarray, w: np.ndarray, groups: int, m: int) -> list[tuple[int, np.ndarray]]:
    """The (input channel, 2-D weights) pairs that output map ``m`` sums over."""
    c = x.shape[0]
    if w.ndim == 2:
        return [(m, w)]
    if w.ndim == 3:
        return [(m % c, w[m // c])]
    per_group = w.shape[0] // groups
    first = (m // per_group) * w.shape[1]
    return [(first + t, w[m, t]) for t in range(w.shape[1])]


def window_cells(geom: StageGeometry, i: int, j: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The padded-input rows and columns that output ``[i, j]`` reads (dilation spaces them).

    >>> from convcli.shapes import conv_geometry
    >>> window_cells(conv_geometry((1, 6, 6), (3, 3), stride=2, dilation=2), 1, 0)
    ((2, 4, 6), (0, 2, 4))
    """
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    kh, kw = geom.kernel_hw
    return (
        tuple(i * sh + a * dh for a in range(kh)),
        tuple(j * sw + b * dw for b in range(kw)),
    )


def _window(
    x: np.ndarray, padded: np.ndarray, w: np.ndarray, opts: dict[str, Any],
    geom: StageGeometry, m: int, i: int, j: int, scale: float = 1.0,
) -> Window:  # fmt: skip
    rows, cols = window_cells(geom, i, j)
    taps = []
    for ch, wk in _members(x, w, opts["groups"], m):
        values = padded[ch][np.ix_(rows, cols)]
        taps.append(Tap(ch, values, wk, values * wk))
    b = opts["bias"]
    bvec = np.atleast_1d(np.asarray(0.0 if b is None else b, dtype=np.float64))
    bias = float(bvec[0] if bvec.size == 1 else bvec[m]) * scale
    act = str(opts["activation"] or "none")
    total = float(sum(t.products.sum() for t in taps)) + bias
    if scale == 1.0 or scale_free(act):
        value = float(activate(np.array([total]), act)[0])
    else:  # sigmoid, tanh: on the true value, then shown in the walk's units
        value = float(activate(np.array([total / scale]), act)[0]) * scale
    return Window(m, i, j, rows, cols, tuple(taps), bias, act, value, scale)


def _pool_walk(y: np.ndarray, op: str, popts: dict[str, Any]) -> PoolWalk:
    pooled = _chw(pool2d(y, op, **popts))
    contrast = {"max": "avg", "avg": "max", "global-max": "global-avg", "global-avg": "global-max"}
    other_op = contrast.get(op, "global-max" if PoolOp.parse(op).is_global else "max")
    other = _chw(pool2d(y, other_op, **popts))
    geom = pool_geometry(
        y.shape, op=op, size=popts["size"], stride=popts["stride"], padding=popts["padding"],
        ceil_mode=popts["ceil_mode"],
    )  # fmt: skip
    h, w = y.shape[1:]
    windows = []
    (kh, kw), (sh, sw) = geom.kernel_hw, geom.stride
    top, left = geom.padding[0], geom.padding[2]
    for pi in range(pooled.shape[1]):
        for pj in range(pooled.shape[2]):
            r0, c0 = pi * sh - top, pj * sw - left
            rows = tuple(r for r in range(r0, r0 + kh) if 0 <= r < h)
            cols = tuple(c for c in range(c0, c0 + kw) if 0 <= c < w)
            windows.append(PoolWindow(pi, pj, rows, cols, float(pooled[0, pi, pj])))
    return PoolWalk(op, popts, geom, pooled, other_op, other, windows)


def walkthrough_json(walk: Walkthrough) -> dict[str, Any]:
    """The walk-through as plain data (``convcli explain --json``)."""
    g = walk.geometry
    win = walk.window
    data: dict[str, Any] = {
        "source": walk.source,
        "units": walk.units.json(),
        "input": walk.patch.tolist(),
        "kernel": {"name": walk.kernel.name, "weights": walk.weights.tolist()},
        "options": {k: _plain(v) for k, v in walk.options.items()},
        "padding": dict(zip(("top", "bottom", "left", "right"), g.padding, strict=True)),
        "padded": walk.padded.tolist(),
        "formula": {"H": g.formulas[0].text(), "W": g.formulas[1].text()},
        "window": {
            "map": win.map,
            "row": win.row,
            "col": win.col,
            "padded_rows": list(win.rows),
            "padded_cols": list(win.cols),
            "taps": [
                {
                    "channel": t.channel,
                    "values": t.values.tolist(),
                    "weights": t.weights.tolist(),
                    "products": t.products.tolist(),
                    "sum": t.total,
                }
                for t in win.taps
            ],
            "sum": win.total,
            "bias": win.bias,
            "pre_activation": win.pre,
            "activation": win.activation,
            "value": win.value,
        },  # fmt: skip
        "pre_activation": walk.pre_activation.tolist(),
        "output": walk.output.tolist(),
        "shapes": [
            {
                "stage": s,
                "out_shape": list(o),
                "receptive_field": list(rf),
                "effective_stride": list(j),
            }
            for s, o, rf, j in walk.plan_shapes
        ],  # fmt: skip
    }
    if walk.pool is not None:
        p = walk.pool
        pg = p.geometry
        data["pool"] = {
            "op": p.op,
            "options": {k: _plain(v) for k, v in p.options.items()},
            "formula": {"H": pg.formulas[0].text(), "W": pg.formulas[1].text()},
            "output": p.pooled.tolist(),
            "other_op": p.other_op,
            "other": p.other.tolist(),
            "windows": [
                {
                    "row": pw.row,
                    "col": pw.col,
                    "rows": list(pw.rows),
                    "cols": list(pw.cols),
                    "value": pw.value,
                }
                for pw in p.windows
            ],  # fmt: skip
        }
    return data


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


# --------------------------------------------------------------------------- example input


def default_patch(size: tuple[int, int], *, sample: Path | None = None) -> tuple[np.ndarray, str]:
    """A grey ``size`` patch across an edge of samples/camera.png, in 0–255 units.

    ``sample`` defaults to the samples folder of the repository this package
    sits in, else ``samples/camera.png`` under the current folder (a clone with
    convcli installed from it); when neither is there the patch is a synthetic
    step edge.
    """
    h, w = size
    if sample is None:
        sample = Path(__file__).resolve().parents[2] / "samples" / "camera.png"
        if not sample.is_file():
            sample = Path("samples", "camera.png")
    if sample.is_file():
        try:
            from convcli.imageio import load_image

            img = load_image(sample, gray=True, dtype=np.float64).array[0]
            r0 = min(max(CAMERA_EDGE[0] - h // 2, 0), img.shape[0] - h)
            c0 = min(max(CAMERA_EDGE[1] - w // 2, 0), img.shape[1] - w)
            patch = np.round(img[r0 : r0 + h, c0 : c0 + w] * 255)
            return patch, f"samples/camera.png, rows {r0}–{r0 + h - 1}, columns {c0}–{c0 + w - 1}"
        except Exception:  # noqa: BLE001 - any trouble: use the synthetic patch
            pass
    return synthetic_patch(size), "a synthetic step edge (samples/camera.png not found)"


def synthetic_patch(size: tuple[int, int]) -> np.ndarray:
    """A dark-to-bright step edge with a gentle vertical ramp, whole numbers in 0–255.

    >>> synthetic_patch((2, 4)).tolist()
    [[30.0, 30.0, 200.0, 200.0], [40.0, 40.0, 190.0, 190.0]]
    """
    h, w = size
    r = np.arange(h)[:, None]
    c = np.arange(w)[None, :]
    return np.where(c < w // 2, 30 + 10 * r, 200 - 10 * r).astype(np.float64)


def patch_from_image(
    path: str, size: tuple[int, int], at: tuple[int, int] | None, *, channels: int = 1
) -> tuple[np.ndarray, str, Units]:
    """A patch of an image file: ``(patch (C, h, w), description, units)``.

    8- and 16-bit images are shown in 0–255 units (:data:`BYTE`), float images as
    they are (:data:`RAW`). Values are not rounded: an 8-bit grey image gives
    whole numbers, the luma of a colour photo or a 16-bit image gives fractions,
    so that every number stays the one ``convolve`` computes. Without ``at`` the
    patch with the most contrast is used.
    """
    from convcli.imageio import load_image

    img = load_image(path, gray=channels == 1, dtype=np.float64)
    arr = img.array[:-1] if img.has_alpha else img.array
    if channels > 1 and arr.shape[0] < channels:
        arr = np.repeat(arr[:1], channels, axis=0)
    arr = arr[:channels]
    h, w = size
    if arr.shape[1] < h or arr.shape[2] < w:
        from convcli.errors import ParameterError

        raise ParameterError(f"{path} is {arr.shape[1]}×{arr.shape[2]}, smaller than {h}×{w}")
    if at is None:
        at = _busiest(arr.mean(axis=0), h, w)
    r0, c0 = at
    if not (0 <= r0 <= arr.shape[1] - h and 0 <= c0 <= arr.shape[2] - w):
        from convcli.errors import ParameterError

        raise ParameterError(
            f"--at {r0},{c0}: a {h}×{w} patch must start within rows 0–{arr.shape[1] - h},"
            f" columns 0–{arr.shape[2] - w}"
        )
    patch = arr[:, r0 : r0 + h, c0 : c0 + w]
    units = RAW
    if img.mode not in ("I", "F"):
        patch = patch * BYTE.scale
        whole = np.round(patch)
        patch = np.where(np.abs(patch - whole) < 1e-6, whole, patch)  # 8-bit: exact integers
        units = BYTE
    where = f"{Path(path).name}, rows {r0}–{r0 + h - 1}, columns {c0}–{c0 + w - 1}"
    return patch, where, units


def _busiest(img: np.ndarray, h: int, w: int) -> tuple[int, int]:
    """Top-left of the ``h×w`` patch with the largest standard deviation (on a coarse grid)."""
    step = max(1, min(img.shape) // 64)
    best, at = -1.0, (0, 0)
    for r in range(0, img.shape[0] - h + 1, step):
        for c in range(0, img.shape[1] - w + 1, step):
            s = float(img[r : r + h, c : c + w].std())
            if s > best:
                best, at = s, (r, c)
    return at


# --------------------------------------------------------------------------- rendering
