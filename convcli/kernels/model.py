"""The :class:`Kernel` value: weights plus what a user said about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Kernel:
    """A convolution kernel, as data.

    ``weights`` are final: normalisation and ``scale`` are already applied, so
    ``conv2d(x, kernel)`` and ``conv2d(x, kernel.weights)`` agree (apart from
    ``bias``, ``origin`` and ``flip``, which ``conv2d`` takes from the kernel).

    Shapes: ``(kh, kw)`` a single 2-D kernel; ``(n, kh, kw)`` a bank (``labels``
    names each member); ``(c_out, c_in/groups, kh, kw)`` a CNN layer.

    ``flip`` False means cross-correlation (what CNNs call convolution).
    Layer defaults (``stride``, ``padding``, ``dilation``, ``activation``,
    ``groups``, ``pad_mode``) are None unless the source set them (a YAML file,
    an ONNX Conv node's attributes); command-line options override them.
    """

    name: str
    weights: np.ndarray
    description: str = ""
    normalize: str = "none"  # none | sum | l1 (already applied to weights)
    scale: float = 1.0  # already applied to weights
    bias: float | tuple[float, ...] | None = None
    origin: tuple[int, int] | None = None  # anchor tap (row, col); None = centre
    flip: bool = False
    labels: tuple[str, ...] = ()  # one per bank member / output map; may be empty
    stride: Any = None
    padding: Any = None
    dilation: Any = None
    activation: str | None = None
    groups: int | None = None  # an ONNX Conv's ``group``
    pad_mode: str | None = None  # "zeros" for ONNX Conv nodes (ONNX pads with zeros)
    source: str = "built-in"  # "built-in", the YAML file's path, or the weights file's
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.weights.shape)

    @property
    def kind(self) -> str:
        """``"2d"``, ``"bank"`` or ``"layer"``."""
        return {2: "2d", 3: "bank", 4: "layer"}[self.weights.ndim]

    def members(self) -> list[tuple[str, np.ndarray]]:
        """The 2-D kernels inside, each with a label.

        A 2-D kernel is its own single member; a bank gives one per member; a
        layer gives one per ``(out, in)`` pair, labelled ``"out0/in1"``.

        >>> k = Kernel("pair", np.zeros((2, 3, 3)), labels=("a", "b"))
        >>> [label for label, _ in k.members()]
        ['a', 'b']
        """
        w = np.asarray(self.weights)
        if w.ndim == 2:
            return [(self.name, w)]
        if w.ndim == 3:
            labels = self.labels if len(self.labels) == w.shape[0] else ()
            return [(labels[i] if labels else f"{self.name}[{i}]", w[i]) for i in range(w.shape[0])]
        return [(f"out{o}/in{i}", w[o, i]) for o in range(w.shape[0]) for i in range(w.shape[1])]


# ----------------------------------------------------------------------- analysis of 2-D weights


def weights_sum(w: np.ndarray) -> float:
    """Sum of the weights, with round-off next to zero reported as exactly 0.0.

    >>> weights_sum(np.array([[0.1, 0.2], [-0.3, 0.0]]))
    0.0
    """
    w = np.asarray(w, dtype=np.float64)
    s = float(w.sum())
    return 0.0 if abs(s) <= 1e-9 * max(float(np.abs(w).sum()), 1e-300) else s


def kernel_rank(w: np.ndarray) -> int:
    """Numerical rank of a 2-D kernel (singular values below 1e-6 of the largest are zero).

    Rank 1 means separable: the 2-D kernel is a column vector times a row vector,
    so it can be applied as two 1-D passes.

    >>> kernel_rank(np.outer([1, 2, 1], [-1, 0, 1]))
    1
    >>> kernel_rank(np.eye(3))
    3
    """
    w = np.asarray(w, dtype=np.float64)
    if not np.any(w):
        return 0
    s = np.linalg.svd(w, compute_uv=False)
    return int(np.linalg.matrix_rank(w, tol=1e-6 * float(s[0])))


def separable_factors(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(column, row)`` with ``np.outer(column, row) == w`` for a rank-1 kernel, else None,
    as a person reads them: :func:`convcli.ops.conv.separable_factors` (the engine's
    factoring), signed and scaled: read straight off the weights (a column and a
    row through the largest tap), so integer kernels give integer factors; when both
    factors have a non-zero sum, the column is scaled to sum to 1.

    >>> col, row = separable_factors(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    >>> col.tolist(), row.tolist()
    ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
    """
    from convcli.ops.conv import separable_factors as factor

    w = np.asarray(w, dtype=np.float64)
    found = factor(w) if kernel_rank(w) == 1 else None
    if found is None:
        return None
    col, row = found  # through the largest tap w[i, j]: col = w[:, j], row = w[i, :] / w[i, j]
    sign = 1.0 if col[int(np.argmax(np.abs(col)))] > 0 else -1.0
    col, row = sign * col, sign * row
    if row.sum() < -1e-12:  # prefer a row that sums positive: [-1, 0, 1]ᵀ × [1, 1, 1]
        col, row = -col, -row
    cs, rs = float(col.sum()), float(row.sum())
    if abs(cs) > 1e-12 and abs(rs) > 1e-12 and not np.allclose(col, np.round(col)):
        col, row = col / cs, row * cs
    return col + 0.0, row + 0.0  # + 0.0 turns -0.0 into 0.0


def symmetry(w: np.ndarray, *, atol: float = 1e-9) -> str:
    """Which mirror or rotation leaves a 2-D kernel unchanged.

    Returns ``"rotational"`` (unchanged by a 90° turn and both mirrors), ``"both"``
    (left-right and up-down mirrors), ``"left-right"`` (mirror about the vertical
    axis: ``w == w[:, ::-1]``), ``"up-down"`` (``w == w[::-1]``), ``"point"``
    (unchanged by a 180° turn only), or ``"none"``. An axis of length 1 does not
    count (a single row is not called up-down symmetric).

    >>> symmetry(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    'up-down'
    >>> symmetry(np.ones((3, 3)))
    'rotational'
    """
    w = np.asarray(w, dtype=np.float64)
    tol = atol * max(float(np.abs(w).max(initial=0.0)), 1.0)

    def same(a: np.ndarray) -> bool:
        return bool(np.allclose(w, a, rtol=0.0, atol=tol))

    kh, kw = w.shape
    lr = kw > 1 and same(w[:, ::-1])  # a single row or column is trivially mirror-symmetric
    ud = kh > 1 and same(w[::-1])
    if lr and ud:
        square = kh == kw
        return "rotational" if square and same(np.rot90(w)) else "both"
    if lr:
        return "left-right"
    if ud:
        return "up-down"
    if kh * kw > 1 and same(w[::-1, ::-1]):
        return "point"
    return "none"
