"""``convcli run``, ``convcli shape`` and ``convcli explain`` (registered on the main app).

Only Typer and the option aliases are imported here; numpy, Rich and the
pipeline are imported inside the commands, so ``convcli --help`` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from convcli.cli_options import (
    LAYER,
    OUTPUT,
    POOL,
    Activation,
    Bias,
    BitDepth,
    CeilMode,
    CountPad,
    Dilation,
    DryRun,
    Exclude,
    Executor,
    ExecutorOpt,
    Flip,
    Force,
    FormatOpt,
    Groups,
    Include,
    Inputs,
    Json,
    KernelDirs,
    Manifest,
    MaxOutputPixels,
    Montage,
    Out,
    Padding,
    PadMode,
    PadModeOpt,
    PadValue,
    PoolAfter,
    PoolPadding,
    PoolSize,
    PoolStride,
    Preview,
    Quiet,
    Range,
    RangeMode,
    Recursive,
    Scheduler,
    SkipExisting,
    Stride,
    Workers,
)  # fmt: skip

PipelineArg = Annotated[
    Path,
    typer.Argument(
        help="Pipeline YAML file: name, gray, stages (conv: / pool:), output.",
        exists=True, dir_okay=False, show_default=False,
    ),
]  # fmt: skip
SaveStages = Annotated[
    bool,
    typer.Option(
        "--save-stages",
        help="Also write every stage's maps as <stem>.<name>.stage<i>-<stage>.<ext>.",
        rich_help_panel=OUTPUT,
    ),
]
OptKernels = Annotated[
    list[str] | None,
    typer.Option(
        "--kernel", "-k", show_default=False, rich_help_panel=LAYER,
        help="Built-in name, YAML file or NAME.yaml (several -k form one bank).",
    ),
]  # fmt: skip
InputShape = Annotated[
    str,
    typer.Option(
        "--input", "-i", show_default=False,
        help="Input size C×H×W, e.g. 3x224x224 (H×W means one channel).",
    ),
]  # fmt: skip
KernelSize = Annotated[
    str | None,
    typer.Option(
        "--kernel-size", show_default=False, rich_help_panel=LAYER,
        help="K or KH,KW: a kernel of this size (its weights do not matter for shapes).",
    ),
]  # fmt: skip
OutChannels = Annotated[
    int | None,
    typer.Option(
        "--out-channels", min=1, show_default=False, rich_help_panel=LAYER,
        help="With --kernel-size: a 4-D layer with N output maps [default: one 2-D kernel"
        " per channel].",
    ),
]  # fmt: skip


class ExplainPool(StrEnum):
    max = "max"
    avg = "avg"
    min = "min"
    global_max = "global-max"
    global_avg = "global-avg"
    none = "none"


#: Output options a pipeline's ``output:`` section may set, by the command's parameter name.
_OUTPUT_PARAMS = {
    "out": "out", "format": "fmt", "bit_depth": "bit_depth", "range": "range_",
    "montage": "montage", "force": "force", "skip_existing": "skip_existing",
    "preview": "preview", "save_stages": "save_stages",
}  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the pipeline and teaching commands to ``app``."""
    app.command("run")(run)
    app.command("shape")(shape)
    app.command("explain")(explain)


# --------------------------------------------------------------------------- run


def run(
    ctx: typer.Context,
    pipeline_file: PipelineArg,
    inputs: Inputs,
    kernel_dir: KernelDirs = None,
    save_stages: SaveStages = False,
    out: Out = "convcli-out",
    fmt: FormatOpt = None,
    bit_depth: BitDepth = 8,
    range_: Range = RangeMode.auto,
    montage: Montage = False,
    force: Force = False,
    skip_existing: SkipExisting = False,
    max_output_pixels: MaxOutputPixels = "auto",
    preview: Preview = False,
    json_: Json = False,
    dry_run: DryRun = False,
    quiet: Quiet = False,
    recursive: Recursive = False,
    include: Include = None,
    exclude: Exclude = None,
    workers: Workers = None,
    manifest: Manifest = None,
    executor: ExecutorOpt = Executor.local,
    scheduler: Scheduler = None,
) -> None:
    """Run a multi-stage pipeline file (conv → activation → pool → conv ...) on images.

    The file's output: section gives defaults; options on the command line win.

    [dim]Example: convcli run kernels/pipelines/tiny-edge-cnn.yaml samples/camera.png[/]
    """
    from convcli.cli import _run
    from convcli.cli_options import Format
    from convcli.errors import ParameterError
    from convcli.pipeline_yaml import read_pipeline

    pf = read_pipeline(pipeline_file, kernel_dirs=kernel_dir or ())
    o: dict[str, Any] = {
        "out": out, "fmt": fmt, "bit_depth": bit_depth, "range_": range_, "montage": montage,
        "force": force, "skip_existing": skip_existing, "preview": preview, "json_": json_,
        "dry_run": dry_run, "quiet": quiet, "recursive": recursive, "include": include,
        "exclude": exclude, "workers": workers, "manifest": manifest, "executor": executor,
        "scheduler": scheduler, "save_stages": save_stages,
        "max_output_pixels": max_output_pixels,
    }  # fmt: skip
    for key, value in pf.output.items():
        param = _OUTPUT_PARAMS[key]
        if _from_default(ctx, param):
            if key == "format":
                value = Format(value)
            elif key == "range":
                value = RangeMode(value)
            o[param] = value
    if o["save_stages"] and o["out"] == "-":
        raise ParameterError("--save-stages writes files; it cannot be used with -o -")
    _check_first_input(pf, inputs, recursive=recursive, include=include, exclude=exclude)
    _run(pf.pipeline, inputs, o)


def _from_default(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


def _check_first_input(pf: Any, inputs: list[str], **find: Any) -> None:
    """Plan the pipeline on the first input's shape, so a stage that cannot fit (a 4-D
    kernel expecting other maps, a kernel larger than the map) stops the run before any
    image is processed, with the stage and its line named."""
    from convcli.batch import find_inputs
    from convcli.errors import ImageError
    from convcli.imageio import load_image
    from convcli.pipeline import prepare

    found = find_inputs(inputs, **{k: tuple(v or ()) if k != "recursive" else v
                                   for k, v in find.items()})  # fmt: skip
    first = next((path for path, _ in found if path != "-"), None)
    if first is None:
        return
    try:
        image = load_image(first, gray=pf.pipeline.gray, dtype=pf.pipeline.dtype)
    except ImageError:
        return  # the run reports it, and goes on with the other inputs
    x, channels, _ = prepare(image, pf.pipeline)
    pf.plan(x.shape, channels)


# --------------------------------------------------------------------------- shape


def shape(
    pipeline_file: Annotated[
        Path | None,
        typer.Argument(
            help="A pipeline YAML file (instead of -k / --kernel-size and the options).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    input_: InputShape = "",
    kernel: OptKernels = None,
    kernel_size: KernelSize = None,
    out_channels: OutChannels = None,
    kernel_dir: KernelDirs = None,
    stride: Stride = None,
    padding: Padding = None,
    dilation: Dilation = None,
    groups: Groups = 1,
    bias: Bias = None,
    pool: PoolAfter = None,
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    json_: Json = False,
) -> None:
    """Shape arithmetic without an image: sizes, padding, weights, multiply-adds, receptive field.

    [dim]Example (ResNet stem): convcli shape --input 3x224x224 --kernel-size 7 --out-channels 64
    --stride 2 --padding 3 --pool max --pool-size 3 --pool-stride 2 --pool-padding 1[/]
    """

    from rich.console import Console

    from convcli.errors import ParameterError
    from convcli.pipeline import Pipeline
    from convcli.report import result_json

    if not input_:
        raise ParameterError("give the input size with --input C×H×W, e.g. --input 3x224x224")
    in_shape = parse_chw(input_)
    notes: list[str] = []
    if pipeline_file is not None:
        if kernel or kernel_size or out_channels or pool is not None:
            raise ParameterError("give a pipeline file or -k / --kernel-size / --pool, not both")
        from convcli.pipeline_yaml import read_pipeline

        pf = read_pipeline(pipeline_file, kernel_dirs=kernel_dir or ())
        if pf.pipeline.gray and in_shape[0] != 1:
            notes.append(f"gray: true turns the {in_shape[0]} channels into 1 first")
            in_shape = (1, *in_shape[1:])
        result = pf.plan(in_shape)
        name = pf.pipeline.name
    else:
        stages = _shape_stages(
            in_shape, kernel, kernel_size, out_channels, kernel_dir, stride, padding, dilation,
            groups, bias, pool, pool_size, pool_stride, pool_padding, ceil_mode,
        )  # fmt: skip
        pipeline = Pipeline(tuple(stages), name="shape")
        pipeline.validate()
        from convcli.pipeline_yaml import plan_stages

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
    in_shape: tuple[int, int, int], kernel: list[str] | None, kernel_size: str | None,
    out_channels: int | None, kernel_dir: list[Path] | None, stride: str | None,
    padding: str | None, dilation: str | None, groups: int, bias: str | None,
    pool: Any, pool_size: str, pool_stride: str | None, pool_padding: str, ceil_mode: bool,
) -> list[Any]:  # fmt: skip
    import numpy as np

    from convcli.errors import ParameterError
    from convcli.kernels.model import Kernel
    from convcli.pipeline import ConvStage, PoolStage, bank_of, parse_bias
    from convcli.shapes import as_pair, parse_padding

    stages: list[Any] = []
    if kernel and kernel_size:
        raise ParameterError("give -k KERNEL or --kernel-size K, not both")
    if out_channels is not None and not kernel_size:
        raise ParameterError("--out-channels goes with --kernel-size (e.g. --kernel-size 3)")
    k = None
    if kernel:
        k = bank_of(kernel, kernel_dirs=kernel_dir or ())
    elif kernel_size:
        kh, kw = as_pair(kernel_size, "kernel size")
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
                k,
                stride=as_pair(stride, "stride") if stride is not None else None,
                padding=parse_padding(padding) if padding is not None else None,
                dilation=as_pair(dilation, "dilation") if dilation is not None else None,
                groups=groups,
                bias=parse_bias(bias),
            )
        )
    if pool is not None:
        stages.append(
            PoolStage(
                pool.value,
                size=as_pair(pool_size, "pool size"),
                stride=as_pair(pool_stride, "pool stride") if pool_stride is not None else None,
                padding=parse_padding(pool_padding),
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
    from convcli.report import report

    return report(result, show_stats=False)


# --------------------------------------------------------------------------- explain


def explain(
    kernel: OptKernels = None,
    kernel_dir: KernelDirs = None,
    stride: Stride = None,
    padding: Padding = None,
    pad_mode: PadModeOpt = PadMode.reflect,
    pad_value: PadValue = 0.0,
    dilation: Dilation = None,
    flip: Flip = False,
    bias: Bias = None,
    activation: Activation = None,
    pool: Annotated[
        ExplainPool, typer.Option("--pool", help="Pooling step to explain.", rich_help_panel=POOL)
    ] = ExplainPool.max,
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            exists=True,
            dir_okay=False,
            show_default=False,
            help="Take the patch from this image [default: samples/camera.png].",
        ),
    ] = None,
    size: Annotated[str, typer.Option("--size", help="Patch size N or H,W (2 to 12).")] = "6",
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="ROW,COL of the patch's top-left corner in --input.", show_default=False
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="ROW,COL of the output value to work out by hand"
            " [default: the strongest response].",
            show_default=False,
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """Walk one conv layer (and pooling) through a tiny patch, number by number.

    [dim]Example: convcli explain -k sobel-x --stride 2 --activation relu --pool avg[/]
    """  # fmt: skip

    from rich.console import Console

    from convcli.errors import ParameterError
    from convcli.pipeline import bank_of, parse_bias
    from convcli.report_explain import (
        default_patch,
        patch_from_image,
        walkthrough,
        walkthrough_json,
    )
    from convcli.report_explain import (
        explain as explain_renderable,
    )
    from convcli.shapes import as_pair, parse_padding

    k = bank_of(kernel or ["sobel-x"], kernel_dirs=kernel_dir or ())
    hw = as_pair(size, "size", minimum=2)
    if max(hw) > 12:
        raise ParameterError(f"--size is at most 12 (so the tables fit the screen), got {size}")
    channels = 1
    if k.kind == "layer":
        channels = k.weights.shape[1]
        if channels > 4:
            raise ParameterError(
                f"{k.name} expects {channels} input channels; explain shows at most 4"
            )
    if input_file is not None:
        start = as_pair(at, "--at", minimum=0) if at is not None else None
        patch, source, units = patch_from_image(str(input_file), hw, start, channels=channels)
    else:
        if at is not None:
            raise ParameterError("--at picks a place in --input FILE; give --input too")
        grey, source = default_patch(hw)
        patch, units = grey[None].repeat(channels, axis=0), "0–255"
        if channels > 1:
            source += f" (the grey patch repeated as {channels} channels for {k.name})"
    walk = walkthrough(
        patch, k,
        stride=as_pair(stride, "stride") if stride is not None else None,
        padding=parse_padding(padding) if padding is not None else None,
        dilation=as_pair(dilation, "dilation") if dilation is not None else None,
        pad_mode=pad_mode.value, pad_value=pad_value, flip=flip, bias=parse_bias(bias),
        activation=activation,
        pool=None if pool is ExplainPool.none else pool.value,
        pool_size=pool_size, pool_stride=pool_stride, pool_padding=parse_padding(pool_padding),
        ceil_mode=ceil_mode, count_include_pad=count_include_pad,
        window=as_pair(window, "--window", minimum=0) if window is not None else None,
        source=source, units=units,
    )  # fmt: skip
    if json_:
        from convcli.safety import json_text

        print(json_text(walkthrough_json(walk), indent=2))
        return
    console = Console(highlight=False)
    console.print(explain_renderable(walk, width=min(console.width, 100)))
