"""Reduce the maps of a bank to one map per input channel (gradient magnitude, Kirsch max ...)."""

from __future__ import annotations

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.vocab import CombineOp

#: How the members of a bank can be combined.


def combine(maps: np.ndarray, members: int, op: str = "magnitude") -> np.ndarray:
    """Reduce ``members`` maps per channel to one: ``(n·C, H, W)`` → ``(C, H, W)``.

    The stack is member-major, as :func:`convcli.conv2d` lays out a bank of
    ``n`` kernels on ``C`` channels: maps ``k·C .. k·C + C - 1`` are member
    ``k`` on every channel. So channel ``c`` of the result reduces maps
    ``c, C + c, 2C + c, ...``.

    - ``magnitude``: ``sqrt(sum of squares)`` — the gradient magnitude
      ``hypot(gx, gy)`` of a Sobel pair;
    - ``max`` / ``min``: the strongest / weakest response (``max`` of the
      eight Kirsch compass maps is the Kirsch edge detector);
    - ``mean``, ``sum``.

    The result keeps the input's float type; the arithmetic of ``magnitude``,
    ``mean`` and ``sum`` runs in float64 for float64 input and float32 otherwise.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(n·C, H, W)``.
    members : int
        ``n``, the number of bank members (maps per input channel).
    op : str
        One of :class:`convcli.vocab.CombineOp`.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)``.

    Raises
    ------
    convcli.errors.ParameterError
        Unknown op or a member count below 1.
    convcli.errors.ShapeError
        The maps do not split into ``members`` equal groups.

    Examples
    --------
    >>> gx = np.array([[[3.0, 0.0]]]); gy = np.array([[[4.0, 1.0]]])
    >>> combine(np.concatenate([gx, gy]), 2, "magnitude").tolist()
    [[[5.0, 1.0]]]
    >>> rgb_bank = np.arange(12.0).reshape(6, 1, 2)   # 2 members x 3 channels
    >>> combine(rgb_bank, 2, "max")[:, 0, 0].tolist()  # channel c: max(map c, map 3 + c)
    [6.0, 8.0, 10.0]
    """
    op = CombineOp.parse(op).value
    if isinstance(members, bool) or not isinstance(members, int | np.integer) or members < 1:
        raise ParameterError(f"members must be a whole number >= 1, got {members!r}")
    x = np.asarray(maps)
    if x.ndim != 3:
        raise ShapeError(f"combine needs a (n·C, H, W) stack, got shape {x.shape}")
    if x.shape[0] % members:
        raise ShapeError(f"{x.shape[0]} maps do not split into {members} bank members")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    groups = x.reshape(members, x.shape[0] // members, *x.shape[1:])
    if op == "max":
        return groups.max(axis=0)
    if op == "min":
        return groups.min(axis=0)
    if op == "magnitude":
        if members == 2:
            return np.hypot(groups[0], groups[1])
        return np.sqrt(np.einsum("kchw,kchw->chw", groups, groups))
    total = groups.sum(axis=0, dtype=x.dtype)
    if op == "mean":
        total /= x.dtype.type(members)
    return total


__all__ = ["combine"]
