"""Activation functions, applied after bias, in place where possible."""

from __future__ import annotations

import numpy as np

from convcli.errors import ParameterError

ACTIVATIONS = ("none", "relu", "leaky-relu", "sigmoid", "tanh", "abs")
DEFAULT_LEAKY_SLOPE = 0.01  # PyTorch's default negative_slope


def parse_activation(spec: str | None) -> tuple[str, float]:
    """Split ``"leaky-relu:0.2"`` into ``("leaky-relu", 0.2)``; validate the name.

    >>> parse_activation("leaky-relu:0.2"), parse_activation(None), parse_activation("ReLU")
    (('leaky-relu', 0.2), ('none', 0.0), ('relu', 0.0))
    """
    if spec is None:
        return "none", 0.0
    if not isinstance(spec, str):
        raise ParameterError(f"activation must be a name, got {spec!r}")
    name, _, arg = spec.strip().lower().partition(":")
    name = name.replace("_", "-")
    if name == "leakyrelu":
        name = "leaky-relu"
    if name not in ACTIVATIONS:
        raise ParameterError(
            f"activation must be one of {', '.join(ACTIVATIONS)} (leaky-relu[:slope]); got {spec!r}"
        )
    if arg and name != "leaky-relu":
        raise ParameterError(f"activation {name} takes no parameter; got {spec!r}")
    slope = DEFAULT_LEAKY_SLOPE if name == "leaky-relu" else 0.0
    if arg:
        try:
            slope = float(arg)
        except ValueError:
            raise ParameterError(f"leaky-relu slope must be a number; got {arg!r}") from None
        if not np.isfinite(slope):
            raise ParameterError(f"leaky-relu slope must be finite; got {arg!r}")
    return name, slope


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
    if name == "relu":
        np.maximum(out, 0, out=out)
    elif name == "leaky-relu":
        np.multiply(out, np.where(out < 0, out.dtype.type(slope), out.dtype.type(1)), out=out)
    elif name == "sigmoid":
        # 1 / (1 + exp(-x)), written to avoid overflow warnings for large |x|
        np.negative(out, out=out)
        np.minimum(out, 88.0 if out.dtype == np.float32 else 708.0, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
    elif name == "tanh":
        np.tanh(out, out=out)
    elif name == "abs":
        np.abs(out, out=out)
    return out
