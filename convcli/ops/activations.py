"""Activation functions, applied after bias, in place where possible."""

from __future__ import annotations

import numpy as np

from convcli.vocab import DEFAULT_LEAKY_SLOPE, Activation, parse_activation

__all__ = ["DEFAULT_LEAKY_SLOPE", "activate", "parse_activation"]


def activate(x: np.ndarray, activation: str | None, *, out: np.ndarray | None = None) -> np.ndarray:
    """Apply an activation (none, relu, leaky-relu[:slope], sigmoid, tanh or abs) to ``x``.

    Writes into ``out`` (which may be ``x``) when given.

    Examples
    --------
    >>> activate(np.array([-2.0, 0.5]), "relu").tolist()
    [0.0, 0.5]
    >>> activate(np.array([-2.0, 0.5]), "leaky-relu:0.1").tolist()
    [-0.2, 0.5]
    """
    name, slope = parse_activation(activation)
    if out is None:
        out = np.array(x, copy=True)
    elif out is not x:
        out[...] = x
    if name is Activation.relu:
        np.maximum(out, 0, out=out)
    elif name is Activation.leaky_relu:
        np.multiply(out, np.where(out < 0, out.dtype.type(slope), out.dtype.type(1)), out=out)
    elif name is Activation.sigmoid:
        # 1 / (1 + exp(-x)), written to avoid overflow warnings for large |x|
        np.negative(out, out=out)
        np.minimum(out, 88.0 if out.dtype == np.float32 else 708.0, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    elif name is Activation.tanh:
        np.tanh(out, out=out)
    elif name is Activation.abs:
        np.abs(out, out=out)
    return out
