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
    Layer defaults (``stride``, ``padding``, ``dilation``, ``activation``) are
    None unless the source set them; command-line options override them.
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
    source: str = "built-in"  # "built-in" or the YAML file's path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.weights.shape)

    @property
    def kind(self) -> str:
        """``"2d"``, ``"bank"`` or ``"layer"``."""
        return {2: "2d", 3: "bank", 4: "layer"}[self.weights.ndim]
