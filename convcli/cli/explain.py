"""``convcli explain``: one conv layer (and pooling) walked through a tiny patch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from convcli.cli.declare import Option
from convcli.cli.options import (
    ActivationOpt,
    Bias,
    CeilMode,
    CountPad,
    Dilation,
    Flip,
    Json,
    KernelDirs,
    OptKernels,
    Padding,
    PadModeOpt,
    PadValue,
    PoolPadding,
    PoolSize,
    PoolStride,
    Stride,
)
from convcli.vocab import PoolOp


def explain(
    kernel: OptKernels = None,
    kernel_dir: KernelDirs = None,
    stride: Stride = None,
    padding: Padding = None,
    pad_mode: PadModeOpt = None,
    pad_value: PadValue = 0.0,
    dilation: Dilation = None,
    flip: Flip = False,
    bias: Bias = None,
    activation: ActivationOpt = None,
    pool: Annotated[
        str,
        Option(
            "--pool",
            metavar="OP",
            show_default=False,
            help=f"The pooling step to explain: {', '.join(PoolOp.choices())} or none"
            " [default: max].",
        ),
    ] = "max",
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
    input_file: Annotated[
        Path | None,
        Option(
            "--input",
            "-i",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            show_default=False,
            help="Take the patch from this image [default: samples/camera.png].",
        ),
    ] = None,
    size: Annotated[
        str,
        Option(
            "--size", metavar="N|H,W", help="Patch size, 2 to 12 [default: 6].", show_default=False
        ),
    ] = "6",
    at: Annotated[
        str | None,
        Option(
            "--at",
            metavar="ROW,COL",
            help="ROW,COL of the patch's top-left corner in --input.",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        str | None,
        Option(
            "--window",
            metavar="ROW,COL",
            help="ROW,COL of the output value to work out by hand"
            " [default: the strongest response].",
            show_default=False,
        ),
    ] = None,
    json_: Json = False,
    animate: Annotated[
        Path | None,
        Option(
            "--animate",
            metavar="FILE",
            dir_okay=False,
            show_default=False,
            help="Draw the walk as an animation instead: FILE.gif, or FILE.png (animated PNG).",
        ),
    ] = None,
    force: Annotated[
        bool, Option("--force", help="With --animate: overwrite an existing FILE.")
    ] = False,
) -> None:
    """Walk one conv layer (and pooling) through a tiny patch, number by number.

    \b
    Example:
      convcli explain -k sobel-x --stride 2 --activation relu --pool avg
      convcli explain --stride 2 --animate walk.gif
    """
    import sys

    from rich.console import Console

    from convcli.cli.explain_view import explain as explain_renderable
    from convcli.errors import ParameterError
    from convcli.pipeline import bank_of
    from convcli.pipeline.walk import (
        BYTE,
        default_patch,
        patch_from_image,
        walkthrough,
        walkthrough_json,
    )
    from convcli.shapes import as_pair

    if animate is not None:
        from convcli.cli.animate import animation_format

        animation_format(animate)  # a bad suffix is a usage error before any work
    pool_op = None if pool.strip().lower() == "none" else PoolOp.parse(pool, what="--pool").value
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
        patch, units = grey[None].repeat(channels, axis=0), BYTE
        if channels > 1:
            source += f" (the grey patch repeated as {channels} channels for {k.name})"
    walk = walkthrough(
        patch,
        k,
        stride=stride,
        padding=padding,
        dilation=dilation,
        pad_mode=pad_mode.value if pad_mode else None,
        pad_value=pad_value,
        flip=flip,
        bias=bias,
        activation=activation,
        pool=pool_op,
        pool_size=pool_size,
        pool_stride=pool_stride,
        pool_padding=pool_padding,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
        window=as_pair(window, "--window", minimum=0) if window is not None else None,
        source=source,
        units=units,
    )
    if animate is not None:
        from convcli.cli.animate import frame_count, save_animation

        done = save_animation(walk, animate, force=force)
        _, ho, wo = walk.output.shape
        pools = frame_count(walk) - 2 - ho * wo
        parts = f"1 + {ho}×{wo} windows"
        if pools:
            parts += f" + {pools} pooling window{'s' * (pools != 1)}"
        line = (
            f"wrote {animate}: {done.frames} frames ({parts} + 1),"
            f" {done.size[0]}×{done.size[1]} px, {done.seconds:.1f} s"
        )
        if not json_:
            print(line)
            return
        print(line, file=sys.stderr)
    if json_:
        from convcli.safety import json_text

        print(json_text(walkthrough_json(walk), indent=2))
        return
    console = Console(highlight=False)
    console.print(explain_renderable(walk, width=min(console.width, 100)))
