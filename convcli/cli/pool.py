"""``convcli pool``: max, average, min or global pooling of images."""

from __future__ import annotations

from typing import Annotated, Any

import click

from convcli.cli.declare import Option
from convcli.cli.options import (
    AlphaOpt,
    CeilMode,
    CountPad,
    DTypeOpt,
    Gray,
    Inputs,
    OutputArgs,
    PoolOpOpt,
    padding_parser,
    pair_parser,
    with_output_options,
)
from convcli.vocab import Alpha, DType, PoolOp

Size = Annotated[
    Any,
    Option("--size", parser=pair_parser("pool size"), metavar="K|KH,KW", show_default=False,
                 help="The window [default: 2]."),
]  # fmt: skip
Stride = Annotated[
    Any,
    Option("--stride", parser=pair_parser("pool stride"), metavar="S|SH,SW",
                 show_default=False, help="Step between windows [default: the window size]."),
]  # fmt: skip
Padding = Annotated[
    Any,
    Option("--padding", parser=padding_parser, metavar="PAD", show_default=False,
                 help="P, PH,PW, valid or same [default: 0]."),
]  # fmt: skip


@with_output_options
def pool(
    ctx: click.Context,
    inputs: Inputs,
    op: PoolOpOpt = PoolOp.max,
    size: Size = "2",
    stride: Stride = None,
    padding: Padding = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
    alpha: AlphaOpt = Alpha.premultiply,
    gray: Gray = False,
    dtype: DTypeOpt = DType.float32,
    *,
    outputs: OutputArgs,
) -> None:
    """Pool images (max, avg, min, global) and write the result.

    \b
    Example:
      convcli pool samples/camera.png --op avg --size 3 --stride 2
    """
    from convcli.cli.outputs import read_ahead, run_command

    read_ahead(inputs, outputs)
    from convcli.pipeline import Pipeline, PoolStage

    stage = PoolStage(
        op.value, size=size, stride=stride, padding=padding, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )  # fmt: skip
    pipeline = Pipeline((stage,), name="", gray=gray, alpha=alpha.value, dtype=dtype.value)
    run_command(pipeline, inputs, outputs)
