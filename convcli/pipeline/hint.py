"""What a pipeline's result is — an image, a signed or a non-negative response — for ``auto``.

The float → pixel mapping (:func:`convcli.imageio.tone.decide`) takes this hint;
it is worked out here from the stages alone, before any pixel is computed, with
whether the result provably stays inside [0, 1] (:func:`bounded_unit`): then
``auto`` knows the mapping without looking at the values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from convcli.errors import ParameterError
from convcli.imageio.tone import SUM_TOL, Hint, nonzero_bias
from convcli.ops.padding import check_pad_mode
from convcli.pipeline.engine import Stage
from convcli.vocab import parse_activation


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
    return _walk(stages)[0]


def bounded_unit(stages: Sequence[Stage]) -> bool:
    """Whether the stages keep an image in [0, 1] inside [0, 1] (up to round-off).

    True when every stage is one of:

    - a conv stage whose weights are all ≥ 0 and sum to at most 1 (within
      ``SUM_TOL``) for every output map (bank member, or layer output summed
      over its inputs and window), with no bias, a pad mode that only repeats
      image values (reflect, symmetric, replicate, circular) or pads with a
      value in [0, 1] (zeros, constant), and activation none, relu or abs;
    - any pool (max / min pad with ±inf, which no window takes; avg pads with 0);
    - combining a bank with max, min or mean.

    Anything else (a negative weight, a gain above 1, a bias, another
    activation, ``sum`` or ``magnitude``, an unknown stage) gives False.

    Examples
    --------
    >>> from convcli.kernels import load_kernel
    >>> from convcli.pipeline.engine import CombineStage, ConvStage, PoolStage, bank_of
    >>> bounded_unit([ConvStage(load_kernel("gaussian:7")), PoolStage("max", 2)])
    True
    >>> bank = bank_of(["gaussian:3", "gaussian:5"])
    >>> bounded_unit([ConvStage(bank), CombineStage("max"), PoolStage("avg", 3, padding=1)])
    True
    >>> bounded_unit([ConvStage(load_kernel("box"), pad_mode="constant", pad_value=2.0)])
    False
    >>> bounded_unit([ConvStage(load_kernel("sharpen"))])   # sums to 1, weights < 0
    False
    >>> bounded_unit([ConvStage(load_kernel("gaussian:7"), bias=0.1)])
    False
    """
    return _walk(stages)[1]


#: Activations that map [0, 1] into [0, 1] (others are left out of :func:`bounded_unit`).
_UNIT_ACTIVATIONS = ("none", "relu", "abs")
#: Combining a bank's maps with these keeps them in [0, 1].
_UNIT_COMBINES = ("max", "min", "mean")


def _walk(stages: Sequence[Stage]) -> tuple[Hint, bool]:
    """The stages walked once: ``(hint, bounded in [0, 1])`` (see the two functions above)."""
    state: Hint = "image"
    unit = True
    for stage in stages:
        kind = getattr(stage, "kind", "")
        if kind == "conv":
            opts: Mapping[str, Any] = stage.options()
            weights = getattr(stage, "kernel").weights  # noqa: B009 - any stage with a kernel
            w = np.asarray(weights, dtype=np.float64)
            sums = _sums(w)
            state = _after_weights(state, w, sums)
            biased = nonzero_bias(opts.get("bias"))
            if biased:
                state = "signed"
            activation = parse_activation(opts.get("activation") or None)[0].value
            state = _after_activation(state, activation)
            unit = (
                unit
                and not biased
                and bool(np.all(w >= 0) and np.all(sums <= 1 + SUM_TOL))
                and _pads_inside_unit(opts)
                and activation in _UNIT_ACTIVATIONS
            )
        elif kind == "combine":
            op = str(getattr(stage, "op", ""))
            if op == "magnitude" or (op == "sum" and state == "image"):
                state = "nonneg"
            unit = unit and op in _UNIT_COMBINES
        elif kind != "pool":
            unit = False
    return state, unit


def _sums(w: np.ndarray) -> np.ndarray:
    """The sum of the weights of every output map (a layer's over its inputs and window)."""
    if w.ndim == 4:
        return w.sum(axis=(1, 2, 3))
    return w.reshape(-1, *w.shape[-2:]).sum(axis=(1, 2))


def _pads_inside_unit(opts: Mapping[str, Any]) -> bool:
    """Whether the border holds only image values or a pad value in [0, 1]."""
    try:
        mode = check_pad_mode(str(opts.get("pad_mode") or "reflect"))
    except ParameterError:
        return False
    if mode == "constant":
        return 0.0 <= float(opts.get("pad_value") or 0.0) <= 1.0
    return True  # zeros, or a mode that repeats image values


def _after_weights(state: Hint, w: np.ndarray, sums: np.ndarray) -> Hint:
    if state == "image" and np.all(np.abs(sums - 1) <= SUM_TOL):
        return "image"
    if state in ("image", "nonneg") and np.all(w >= 0):
        return "nonneg"
    return "signed"


def _after_activation(state: Hint, name: str) -> Hint:
    if name in ("relu", "abs"):
        return "image" if state == "image" else "nonneg"
    if name == "sigmoid":
        return "nonneg"
    if name == "tanh":
        return "signed" if state == "signed" else "nonneg"
    return state
