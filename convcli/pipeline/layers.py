"""``convcli shape --layer SPEC``: a whole CNN on the command line, one spec per layer.

A spec is a conv layer described by its shape (no weights), optionally followed
by a pooling step, or a pooling step alone::

    K[,out=N][,stride=S][,padding=P][,dilation=D][,groups=G][,bias][,pool=OP[:SIZE[:STRIDE[:PAD]]]][,ceil]
    pool=OP[:SIZE[:STRIDE[:PAD]]][,ceil]

``K``, ``S``, ``D`` and ``SIZE``/``STRIDE`` are a whole number or ``HxW``;
``P`` is ``valid``, ``same``, ``full``, a number, ``PHxPW`` or ``TxBxLxR`` (``x``
separates the numbers, since commas separate the items). Without ``out`` the
layer is one 2-D kernel per incoming channel. ``ceil`` sets the pool's
ceil mode. Nothing here knows about the command line: :func:`parse_layer`
turns one spec into stages.

Examples
--------
>>> [(s.kind, s.name) for s in parse_layer("3,out=64,padding=1,bias,pool=max")]
[('conv', '3×3'), ('pool', 'maxpool')]
>>> stem = parse_layer("7,out=64,stride=2,padding=3,pool=max:3:2:1")
>>> stem[0].stride, stem[0].padding, stem[1].size, stem[1].stride, stem[1].padding
((2, 2), (3, 3, 3, 3), (3, 3), (2, 2), (1, 1, 1, 1))
>>> parse_layer("3,outs=8")
Traceback (most recent call last):
...
convcli.errors.ParameterError: --layer '3,outs=8': unknown item 'outs' (did you mean 'out'?)
"""

from __future__ import annotations

from typing import Any

from convcli.errors import ConvcliError, ParameterError
from convcli.pipeline.engine import ConvStage, PoolStage, Stage
from convcli.shapes import as_pair, parse_padding
from convcli.vocab import PoolOp, did_you_mean

#: The items a spec may hold after the kernel size (``bias`` and ``ceil`` take no value).
ITEMS = ("out", "stride", "padding", "dilation", "groups", "bias", "pool", "ceil")
FORM = (
    "K[,out=N][,stride=S][,padding=P][,dilation=D][,groups=G][,bias]"
    "[,pool=OP[:SIZE[:STRIDE[:PAD]]][,ceil]]"
)


def parse_layer(spec: str) -> tuple[Stage, ...]:
    """One ``--layer`` spec as stages: a shape-only conv, a pool after it, or a pool alone.

    Raises
    ------
    ParameterError
        Naming the spec and the item that is wrong.
    """
    from convcli.kernels.shapeonly import shape_only_kernel

    where = f"--layer {spec!r}"
    items = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in items):
        raise ParameterError(f"{where}: empty item; the form is {FORM}")
    size: tuple[int, int] | None = None
    if "=" not in items[0] and items[0].lower() not in ITEMS:
        size = _pair(items[0], "kernel size", where)
        items = items[1:]
    given: dict[str, str | None] = {}
    for item in items:
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key not in ITEMS:
            hint = did_you_mean(key, ITEMS) or f"; the form is {FORM}"
            raise ParameterError(f"{where}: unknown item {key!r}{hint}")
        if key in given:
            raise ParameterError(f"{where}: {key} is given twice")
        if key in ("bias", "ceil"):
            if value:
                raise ParameterError(f"{where}: {key} takes no value (write just '{key}')")
            given[key] = None
        elif not value.strip():
            raise ParameterError(f"{where}: {key} needs a value ({key}=...)")
        else:
            given[key] = value.strip()
    stages: list[Stage] = []
    try:
        if size is not None:
            out = _whole(given["out"], "out", where) if "out" in given else None
            groups = _whole(given["groups"], "groups", where) if "groups" in given else 1
            if groups != 1 and out is None:
                raise ParameterError(f"{where}: groups needs out=N (a layer)")
            opts: dict[str, Any] = {"groups": groups}
            for key in ("stride", "dilation"):
                if key in given:
                    opts[key] = _pair(str(given[key]), key, where)
            if "padding" in given:
                opts["padding"] = _padding(str(given["padding"]), where)
            if "bias" in given:
                opts["bias"] = True
            stage = ConvStage(shape_only_kernel(size, out_channels=out), **opts)
            stage.validate()
            stages.append(stage)
        else:
            for key in ("out", "stride", "padding", "dilation", "groups", "bias"):
                if key in given:
                    raise ParameterError(
                        f"{where}: {key} belongs to a conv layer; start the spec with its"
                        f" kernel size (e.g. 3,{key}...)"
                    )
        if "pool" in given:
            pool = _pool(str(given["pool"]), "ceil" in given, where)
            pool.validate()
            stages.append(pool)
        elif "ceil" in given:
            raise ParameterError(f"{where}: ceil goes with pool=...")
    except ParameterError as exc:
        if str(exc).startswith(where):
            raise
        raise ParameterError(f"{where}: {exc}") from None
    if not stages:
        raise ParameterError(f"{where}: give a kernel size or pool=...; the form is {FORM}")
    return tuple(stages)


def _pool(text: str, ceil: bool, where: str) -> PoolStage:
    parts = text.split(":")
    if len(parts) > 4:
        raise ParameterError(f"{where}: pool is OP[:SIZE[:STRIDE[:PAD]]], got {text!r}")
    try:
        op = PoolOp.parse(parts[0], what="pool").value
    except ConvcliError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    size: Any = _pair(parts[1], "pool size", where) if len(parts) > 1 and parts[1] else 2
    stride = _pair(parts[2], "pool stride", where) if len(parts) > 2 and parts[2] else None
    padding: Any = _padding(parts[3], where) if len(parts) > 3 and parts[3] else 0
    return PoolStage(op, size=size, stride=stride, padding=padding, ceil_mode=ceil)


def _pair(text: str, what: str, where: str) -> tuple[int, int]:
    try:
        return as_pair(text.replace("x", ",").replace("×", ","), what)
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None


def _whole(text: str | None, what: str, where: str) -> int:
    try:
        value = int(str(text))
    except ValueError:
        raise ParameterError(f"{where}: {what} must be a whole number, got {text!r}") from None
    if value < 1:
        raise ParameterError(f"{where}: {what} must be >= 1, got {value}")
    return value


def _padding(text: str, where: str) -> Any:
    try:
        return parse_padding(text.replace("x", ",").replace("×", ","))
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None


__all__ = ["FORM", "ITEMS", "parse_layer"]
