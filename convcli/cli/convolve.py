"""``convcli convolve``: kernels (then optionally pooling) over images, feature maps to files."""

from __future__ import annotations

import click

from convcli.cli.options import (
    ActivationOpt,
    AlphaOpt,
    Bias,
    CeilMode,
    CombineOpt,
    CountPad,
    Dilation,
    DTypeOpt,
    Flip,
    Gray,
    Groups,
    Inputs,
    KernelDirs,
    Kernels,
    OutputArgs,
    Padding,
    PadModeOpt,
    PadValue,
    PoolAfter,
    PoolPadding,
    PoolSize,
    PoolStride,
    Stride,
    with_output_options,
)
from convcli.vocab import Alpha, DType


@with_output_options
def convolve(
    ctx: click.Context,
    inputs: Inputs,
    kernel: Kernels,
    kernel_dir: KernelDirs = None,
    stride: Stride = None,
    padding: Padding = None,
    pad_mode: PadModeOpt = None,
    pad_value: PadValue = 0.0,
    dilation: Dilation = None,
    flip: Flip = False,
    bias: Bias = None,
    activation: ActivationOpt = None,
    groups: Groups = None,
    combine: CombineOpt = None,
    pool: PoolAfter = None,
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
    alpha: AlphaOpt = Alpha.premultiply,
    gray: Gray = False,
    dtype: DTypeOpt = DType.float32,
    *,
    outputs: OutputArgs,
) -> None:
    """Convolve images with kernels (then optionally pool) and write the feature maps.

    \b
    Example:
      convcli convolve samples -k sobel --pool max
    """
    from convcli.cli.outputs import read_ahead, run_command

    read_ahead(inputs, outputs)
    from convcli.pipeline import CombineStage, ConvStage, Pipeline, PoolStage, Stage, bank_of

    k = bank_of(kernel, kernel_dirs=kernel_dir or ())
    stages: list[Stage] = [
        ConvStage(
            k, stride=stride, padding=padding, dilation=dilation, activation=activation,
            pad_mode=pad_mode.value if pad_mode else None, pad_value=pad_value, groups=groups,
            flip=flip, bias=bias,
        )
    ]  # fmt: skip
    if combine is not None:
        stages.append(CombineStage(combine.value))
    if pool is not None:
        stages.append(
            PoolStage(
                pool.value, size=pool_size, stride=pool_stride, padding=pool_padding,
                ceil_mode=ceil_mode, count_include_pad=count_include_pad,
            )
        )  # fmt: skip
    pipeline = Pipeline(tuple(stages), name="", gray=gray, alpha=alpha.value, dtype=dtype.value)
    run_command(pipeline, inputs, outputs)
