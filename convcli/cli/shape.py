"""``convcli shape``: size arithmetic without an image, for one layer or a pipeline file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from convcli.cli.declare import Argument, Option
from convcli.cli.options import (
    Bias,
    CeilMode,
    CombineOpt,
    Dilation,
    Groups,
    Json,
    KernelDirs,
    OptKernels,
    Padding,
    PoolAfter,
    PoolPadding,
    PoolSize,
    PoolStride,
    Stride,
    Until,
    pair_parser,
    positive_parser,
)

InputShape = Annotated[
    str,
    Option(
        "--input", "-i", show_default=False, metavar="CxHxW",
        help="Input size C×H×W, e.g. 3x224x224 (H×W means one channel).",
    ),
]  # fmt: skip
KernelSize = Annotated[
    Any,
    Option(
        "--kernel-size", parser=pair_parser("kernel size"), show_default=False, metavar="K|KH,KW",
        help="A kernel of this size (its weights do not matter for shapes).",
    ),
]  # fmt: skip
OutChannels = Annotated[
    Any,
    Option(
        "--out-channels", parser=positive_parser("--out-channels"), show_default=False,
        metavar="N",
        help="With --kernel-size: a 4-D layer with N output maps [default: one 2-D kernel"
        " per channel].",
    ),
]  # fmt: skip


def _layer_spec(text: str) -> Any:
    from convcli.pipeline.layers import parse_layer

    return parse_layer(text)


LayerSpecs = Annotated[
    list[Any] | None,
    Option(
        "--layer", parser=_layer_spec, show_default=False, metavar="SPEC",
        help="One layer, by its shape: K[,out=N][,stride=S][,padding=P][,dilation=D]"
        "[,groups=G][,bias][,pool=OP[:SIZE[:STRIDE[:PAD]]]], or pool=... alone; repeat"
        " for each layer, in order (HxW for pairs).",
    ),
]  # fmt: skip


def shape(
    pipeline_file: Annotated[
        Path | None,
        Argument(
            help="A pipeline YAML file or an ONNX model (instead of -k / --kernel-size and"
            " the options).",
            exists=True,
            dir_okay=False,
            show_default=False,
            metavar="PIPELINE",
        ),
    ] = None,
    input_: InputShape = "",
    until: Until = None,
    kernel: OptKernels = None,
    kernel_size: KernelSize = None,
    out_channels: OutChannels = None,
    kernel_dir: KernelDirs = None,
    layer: LayerSpecs = None,
    stride: Stride = None,
    padding: Padding = None,
    dilation: Dilation = None,
    groups: Groups = None,
    bias: Bias = None,
    combine: CombineOpt = None,
    pool: PoolAfter = None,
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    json_: Json = False,
) -> None:
    """Shape arithmetic without an image: sizes, padding, weights, multiply-adds, receptive field.

    \b
    Example (ResNet stem):
      convcli shape --input 3x224x224 --kernel-size 7 --out-channels 64 \\
        --stride 2 --padding 3 \\
        --pool max --pool-size 3 --pool-stride 2 --pool-padding 1
    \b
    Several layers, one --layer spec each (the same stem; a VGG block):
      convcli shape --input 3x224x224 \\
        --layer 7,out=64,stride=2,padding=3,pool=max:3:2:1
      convcli shape --input 3x224x224 --layer 3,out=64,padding=1,bias \\
        --layer 3,out=64,padding=1,bias,pool=max
    """

    from rich.console import Console

    from convcli.cli.outputs import warn_kernel_files
    from convcli.errors import ParameterError
    from convcli.pipeline import Pipeline
    from convcli.run.records import result_json

    if not input_:
        raise ParameterError("give the input size with --input C×H×W, e.g. --input 3x224x224")
    in_shape = parse_chw(input_)
    notes: list[str] = []
    if layer:
        options = (
            ("a pipeline file", pipeline_file), ("-k", kernel), ("--kernel-size", kernel_size),
            ("--out-channels", out_channels), ("--stride", stride), ("--padding", padding),
            ("--dilation", dilation), ("--groups", groups if groups != 1 else None),
            ("--bias", bias), ("--pool", pool),
        )  # fmt: skip
        given = [name for name, value in options if value is not None and value != []]
        if given:
            raise ParameterError(
                f"--layer specs describe every layer themselves; {', '.join(given)} cannot be"
                " added to them (write it into a spec: --layer 3,out=64,stride=2,pool=max)"
            )
    if pipeline_file is not None:
        if kernel or kernel_size or out_channels or pool is not None or combine is not None:
            raise ParameterError("give a pipeline file or -k / --kernel-size / --pool, not both")
        from convcli.pipeline.source import open_pipeline

        pf = open_pipeline(pipeline_file, kernel_dirs=kernel_dir or (), until=until)
        warn_kernel_files(pf.pipeline)
        if pf.pipeline.gray and in_shape[0] != 1:
            onnx = pipeline_file.suffix.lower() == ".onnx"
            what = "the model's 1-channel input" if onnx else "gray: true"
            notes.append(f"{what} turns the {in_shape[0]} channels into 1 first")
            in_shape = (1, *in_shape[1:])
        result = pf.plan(in_shape)
        name = pf.pipeline.name
    elif layer:
        from convcli.pipeline.yamlfile import plan_stages

        pipeline = Pipeline(tuple(st for spec in layer for st in spec), name="layers")
        result = plan_stages(pipeline, in_shape)
        name = "input"
    else:
        if until is not None:
            raise ParameterError("--until NODE goes with an ONNX model (a .onnx file)")
        stages = _shape_stages(
            in_shape, kernel, kernel_size, out_channels, kernel_dir, stride, padding, dilation,
            groups, bias, pool, pool_size, pool_stride, pool_padding, ceil_mode,
        )  # fmt: skip
        if combine is not None:  # after the conv, before the pool
            from convcli.pipeline import CombineStage

            at = 1 if stages and stages[0].kind == "conv" else 0
            stages.insert(at, CombineStage(combine.value))
        pipeline = Pipeline(tuple(stages), name="shape")
        pipeline.validate()
        warn_kernel_files(pipeline)
        from convcli.pipeline.yamlfile import plan_stages

        result = plan_stages(pipeline, in_shape)
        name = "input"
    result.input = name
    result.notes.extend(notes)
    if json_:
        data = result_json(result)
        data.pop("dry_run", None)
        from convcli.safety import json_text

        print(json_text(data, indent=2))
        return
    Console(highlight=False).print(shape_report(result))


def parse_chw(text: str) -> tuple[int, int, int]:
    """``3x224x224`` / ``3×224×224`` / ``3,224,224``; ``HxW`` means one channel.

    >>> parse_chw("3x224x224"), parse_chw("28×28")
    ((3, 224, 224), (1, 28, 28))
    """
    import re

    from convcli.errors import ParameterError

    parts = [p for p in re.split(r"[x×X,* ]+", text.strip()) if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 2:
        values = [1, *values]
    if len(values) != 3 or min(values) < 1:
        raise ParameterError(
            f"--input must be C×H×W (or H×W) with whole numbers >= 1, e.g. 3x224x224; got {text!r}"
        )
    return values[0], values[1], values[2]


def _shape_stages(
    in_shape: tuple[int, int, int], kernel: list[str] | None, kernel_size: Any,
    out_channels: int | None, kernel_dir: list[Path] | None, stride: Any, padding: Any,
    dilation: Any, groups: int | None, bias: Any, pool: Any, pool_size: Any, pool_stride: Any,
    pool_padding: Any, ceil_mode: bool,
) -> list[Any]:  # fmt: skip
    import numpy as np

    from convcli.errors import ParameterError
    from convcli.kernels.model import Kernel
    from convcli.pipeline import ConvStage, PoolStage, bank_of

    stages: list[Any] = []
    if kernel and kernel_size:
        raise ParameterError("give -k KERNEL or --kernel-size K, not both")
    if out_channels is not None and not kernel_size:
        raise ParameterError("--out-channels goes with --kernel-size (e.g. --kernel-size 3)")
    k = None
    if kernel:
        k = bank_of(kernel, kernel_dirs=kernel_dir or ())
    elif kernel_size:
        kh, kw = kernel_size
        groups = groups or 1
        if out_channels is None:
            if groups != 1:
                raise ParameterError("--groups needs --out-channels (a 4-D layer)")
            k = Kernel(f"{kh}×{kw}", np.zeros((kh, kw)))
        else:
            if in_shape[0] % groups:
                raise ParameterError(
                    f"groups={groups} must divide the input's {in_shape[0]} channels"
                )
            k = Kernel(f"{kh}×{kw}", np.zeros((out_channels, in_shape[0] // groups, kh, kw)))
    if k is not None:
        stages.append(
            ConvStage(
                k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
            )
        )
    if pool is not None:
        stages.append(
            PoolStage(
                pool.value,
                size=pool_size,
                stride=pool_stride,
                padding=pool_padding,
                ceil_mode=ceil_mode,
            )
        )
    if not stages:
        raise ParameterError(
            "nothing to compute: give -k KERNEL, --kernel-size K (with --out-channels N"
            " for a layer), --pool, or a pipeline file"
        )
    return stages


def shape_report(result: Any) -> Any:
    """The per-stage table, the filled-in formulas, totals and warnings (no image, no files)."""
    from convcli.cli.report import report

    return report(result, show_stats=False)
