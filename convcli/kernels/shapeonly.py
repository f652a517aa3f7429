"""Kernels known by their size only: enough for shapes, weights and multiply-adds, not to run.

A pipeline stage ``conv: {kernel_size: 3, out_channels: 64}`` (or ``shape
--layer 3,out=64``) describes a CNN layer without its trained weights. Its
:class:`ShapeOnlyKernel` holds a read-only array of zeros that costs no memory
(``np.broadcast_to``), so every size computation works as for a real kernel; a
4-D one takes its ``c_in`` from the maps that reach it (:meth:`for_input`),
since a pipeline file does not say how many there will be.

Examples
--------
>>> k = shape_only_kernel((3, 3), out_channels=64)
>>> k.for_input(3).weights.shape, k.for_input(3).name
((64, 3, 3, 3), '3×3')
>>> shape_only_kernel((5, 5)).kind   # no out_channels: one 2-D kernel per channel
'2d'
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.kernels.model import Kernel


@dataclass(frozen=True, eq=False)
class ShapeOnlyKernel(Kernel):
    """A :class:`Kernel` whose weights are unknown: zeros of the right shape, never run.

    ``out_channels`` None means one 2-D kernel per incoming channel; otherwise a
    layer ``(out_channels, c_in/groups, kh, kw)`` whose ``c_in`` comes from
    :meth:`for_input` (the placeholder has ``c_in/groups = 1``).
    """

    out_channels: int | None = None

    def for_input(self, channels: int, groups: int = 1) -> ShapeOnlyKernel:
        """This kernel with ``c_in = channels`` (a 2-D one is returned as it is)."""
        if self.out_channels is None:
            return self
        if channels % groups:
            raise ShapeError(f"groups={groups} must divide the {channels} input channels")
        kh, kw = self.weights.shape[-2:]
        return replace(self, weights=_zeros((self.out_channels, channels // groups, kh, kw)))


def shape_only_kernel(
    kernel_size: tuple[int, int], *, out_channels: int | None = None
) -> ShapeOnlyKernel:
    """A kernel of ``kernel_size`` (and ``out_channels`` maps, for a layer) without weights."""
    kh, kw = kernel_size
    if kh < 1 or kw < 1:
        raise ParameterError(f"kernel size must be >= 1, got {kh}×{kw}")
    if out_channels is not None and out_channels < 1:
        raise ParameterError(f"out_channels must be >= 1, got {out_channels}")
    shape = (kh, kw) if out_channels is None else (out_channels, 1, kh, kw)
    return ShapeOnlyKernel(
        f"{kh}×{kw}", _zeros(shape), description="shape only (no weights)",
        source="shape only", out_channels=out_channels,
    )  # fmt: skip


def is_shape_only(kernel: Kernel) -> bool:
    """True for a kernel without weights (nothing to run)."""
    return isinstance(kernel, ShapeOnlyKernel)


def _zeros(shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype=np.float64), shape)


__all__ = ["ShapeOnlyKernel", "is_shape_only", "shape_only_kernel"]
