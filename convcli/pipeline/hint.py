"""What a pipeline's result is — an image, a signed or a non-negative response — for ``auto``.

The float → pixel mapping (:func:`convcli.imageio.tone.decide`) takes this hint;
it is worked out here from the stages alone, before any pixel is computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convcli.imageio.tone import SUM_TOL, Hint, nonzero_bias
from convcli.pipeline.engine import Stage


def hint_of_stages(stages: Sequence[Stage]) -> Hint:
    """What a pipeline's result is, for ``auto``: ``image``, ``signed`` or ``nonneg``.

    Walks the stages from an image (values in [0, 1]):

    - a conv stage whose every kernel (bank member, or layer output summed over
      its inputs) sums to 1 keeps an image an image; one with only non-negative
      weights makes it non-negative; anything else (zero-sum kernels, layers)
      makes it signed. A non-zero bias makes it signed.
    - then the activation: relu / abs keep an image an image and make anything
      else non-negative; sigmoid makes it non-negative; tanh keeps a signed
      result signed, anything else non-negative; leaky-relu changes nothing.
    - pooling changes nothing; combining a bank gives ``nonneg`` for
      ``magnitude``, ``sum`` of an image is ``nonneg``, max / min / mean keep
      what came in.

    Examples
    --------
    >>> from convcli.kernels import load_kernel
    >>> from convcli.pipeline.engine import CombineStage, ConvStage, PoolStage
    >>> hint_of_stages([ConvStage(load_kernel("gaussian:7")), PoolStage("max", 2)])
    'image'
    >>> hint_of_stages([ConvStage(load_kernel("sobel"))])
    'signed'
    >>> hint_of_stages([ConvStage(load_kernel("sobel")), CombineStage("magnitude")])
    'nonneg'
    >>> hint_of_stages([ConvStage(load_kernel("sharpen"), bias=-0.2, activation="relu")])
    'nonneg'
    """
    state: Hint = "image"
    for stage in stages:
        kind = getattr(stage, "kind", "")
        if kind == "conv":
            opts: Mapping[str, Any] = stage.options()
            weights = getattr(stage, "kernel").weights  # noqa: B009 - any stage with a kernel
            state = _after_weights(state, np.asarray(weights, dtype=np.float64))
            if nonzero_bias(opts.get("bias")):
                state = "signed"
            state = _after_activation(state, str(opts.get("activation") or "none"))
        elif kind == "combine":
            op = str(getattr(stage, "op", ""))
            if op == "magnitude" or (op == "sum" and state == "image"):
                state = "nonneg"
    return state


def _after_weights(state: Hint, w: np.ndarray) -> Hint:
    if w.ndim == 4:
        sums = w.sum(axis=(1, 2, 3))
    else:
        sums = w.reshape(-1, *w.shape[-2:]).sum(axis=(1, 2))
    if state == "image" and np.all(np.abs(sums - 1) <= SUM_TOL):
        return "image"
    if state in ("image", "nonneg") and np.all(w >= 0):
        return "nonneg"
    return "signed"


def _after_activation(state: Hint, activation: str) -> Hint:
    name = activation.partition(":")[0].strip().lower().replace("_", "-")
    if name in ("relu", "abs"):
        return "image" if state == "image" else "nonneg"
    if name == "sigmoid":
        return "nonneg"
    if name == "tanh":
        return "signed" if state == "signed" else "nonneg"
    return state
