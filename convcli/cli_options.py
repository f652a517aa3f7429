"""Option declarations shared by the commands (Typer ``Annotated`` aliases).

Typer validates at the edge: enums for closed sets of words, ``min`` for
counts. Options whose value needs logic (``--padding 1,2``, ``--stride 2,1``)
are strings checked by the library, which raises ``ParameterError`` (exit 2).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

LAYER = "Layer options"
POOL = "Pool options"
OUTPUT = "Output options"
BATCH = "Batch options"
IMAGE = "Image options"


class PadMode(StrEnum):
    zeros = "zeros"
    constant = "constant"
    reflect = "reflect"
    symmetric = "symmetric"
    replicate = "replicate"
    circular = "circular"


class PoolOp(StrEnum):
    max = "max"
    avg = "avg"
    min = "min"
    global_max = "global-max"
    global_avg = "global-avg"


class Alpha(StrEnum):
    premultiply = "premultiply"
    drop = "drop"
    channel = "channel"


class Format(StrEnum):
    png = "png"
    tiff = "tiff"
    npy = "npy"
    npz = "npz"


class RangeMode(StrEnum):
    auto = "auto"
    clip = "clip"
    minmax = "minmax"
    abs = "abs"
    offset = "offset"


class DType(StrEnum):
    float32 = "float32"
    float64 = "float64"


class Executor(StrEnum):
    local = "local"
    dask = "dask"


Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, folders of images, or - for stdin.", show_default=False),
]
Kernels = Annotated[
    list[str],
    typer.Option(
        "--kernel", "-k",
        help="Built-in name (gaussian:5:1.2), YAML file or NAME.yaml in the kernel folders."
        " Several -k form one bank.",
        show_default=False,
    ),
]  # fmt: skip
KernelDirs = Annotated[
    list[Path] | None,
    typer.Option("--kernel-dir", "-K", help="Folder searched for NAME.yaml (repeatable).",
                 file_okay=False, rich_help_panel=LAYER),
]  # fmt: skip

Stride = Annotated[str | None, typer.Option(help="S or SH,SW [default: 1]", rich_help_panel=LAYER)]
Padding = Annotated[
    str | None,
    typer.Option(
        help="valid, same, full, P, PH,PW or T,B,L,R [default: same]", rich_help_panel=LAYER
    ),
]
PadModeOpt = Annotated[
    PadMode, typer.Option("--pad-mode", help="How the border is filled.", rich_help_panel=LAYER)
]
PadValue = Annotated[
    float, typer.Option("--pad-value", help="Fill for --pad-mode constant.", rich_help_panel=LAYER)
]
Dilation = Annotated[
    str | None, typer.Option(help="D or DH,DW [default: 1]", rich_help_panel=LAYER)
]
Flip = Annotated[
    bool,
    typer.Option("--flip", help="True convolution (kernel rotated 180°).", rich_help_panel=LAYER),
]
Bias = Annotated[
    str | None,
    typer.Option(
        help="A number, or one per output channel separated by commas.", rich_help_panel=LAYER
    ),
]
Activation = Annotated[
    str | None,
    typer.Option(
        help="none, relu, leaky-relu[:slope], sigmoid, tanh, abs [default: none]",
        rich_help_panel=LAYER,
    ),
]
Groups = Annotated[
    int, typer.Option(min=1, help="Groups for 4-D layer kernels.", rich_help_panel=LAYER)
]
AlphaOpt = Annotated[
    Alpha, typer.Option("--alpha", help="What to do with transparency.", rich_help_panel=IMAGE)
]
Gray = Annotated[
    bool,
    typer.Option("--gray", help="Convert to grey (ITU-R 601-2 luma) first.", rich_help_panel=IMAGE),
]
DTypeOpt = Annotated[
    DType, typer.Option("--dtype", help="Computation type.", rich_help_panel=IMAGE)
]

PoolAfter = Annotated[
    PoolOp | None, typer.Option("--pool", help="Pool after the convolution.", rich_help_panel=POOL)
]
PoolSize = Annotated[str, typer.Option("--pool-size", help="K or KH,KW", rich_help_panel=POOL)]
PoolStride = Annotated[
    str | None,
    typer.Option("--pool-stride", help="S or SH,SW [default: = size]", rich_help_panel=POOL),
]
PoolPadding = Annotated[
    str, typer.Option("--pool-padding", help="P, PH,PW, valid or same", rich_help_panel=POOL)
]
CeilMode = Annotated[
    bool,
    typer.Option(
        "--ceil-mode",
        help="Round the pooled size up (keep a last partial window).",
        rich_help_panel=POOL,
    ),
]
CountPad = Annotated[
    bool,
    typer.Option(
        "--count-include-pad/--no-count-include-pad",
        help="avg: count padding in the divisor.",
        rich_help_panel=POOL,
    ),
]

Out = Annotated[
    str,
    typer.Option("--out", "-o", help="Output folder; or a file name (one input, one output; the extension picks"
                 " the format); or - for stdout.", rich_help_panel=OUTPUT),
]  # fmt: skip
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        help="png, tiff (float32), npy, npz [default: png]",
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
]
BitDepth = Annotated[
    int, typer.Option("--bit-depth", help="png bits per sample: 8 or 16.", rich_help_panel=OUTPUT)
]
Range = Annotated[
    RangeMode,
    typer.Option("--range", help="Float → pixel mapping for png.", rich_help_panel=OUTPUT),
]
Montage = Annotated[
    bool,
    typer.Option(
        "--montage",
        help="Also write one grid image with a labelled tile per map.",
        rich_help_panel=OUTPUT,
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force", help="Overwrite existing outputs (never inputs).", rich_help_panel=OUTPUT
    ),
]
SkipExisting = Annotated[
    bool,
    typer.Option(
        "--skip-existing",
        help="Skip inputs whose outputs exist (resume a batch).",
        rich_help_panel=OUTPUT,
    ),
]
MaxOutputPixels = Annotated[
    str,
    typer.Option(
        "--max-output-pixels",
        help="Most values (C×H×W) any one array of the run may hold - padded input, stage output,"
        " montage: N, auto (2**28, or 4× the input if more) or none.",
        rich_help_panel=OUTPUT,
    ),
]
Preview = Annotated[
    bool, typer.Option("--preview", help="Draw the result in the terminal.", rich_help_panel=OUTPUT)
]
Json = Annotated[
    bool, typer.Option("--json", help="Print the report as JSON on stdout.", rich_help_panel=OUTPUT)
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Report shapes; compute and write nothing.", rich_help_panel=OUTPUT
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors.", rich_help_panel=OUTPUT)
]

Recursive = Annotated[
    bool,
    typer.Option("--recursive", "-r", help="Search folders recursively.", rich_help_panel=BATCH),
]
Include = Annotated[
    list[str] | None,
    typer.Option(
        "--include", help="Only files matching this glob (repeatable).", rich_help_panel=BATCH
    ),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude", help="Skip files matching this glob (repeatable).", rich_help_panel=BATCH
    ),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        help="Parallel worker processes [default: CPU count].",
        rich_help_panel=BATCH,
    ),
]
Manifest = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help="Write a JSON Lines record per input.",
        dir_okay=False,
        rich_help_panel=BATCH,
    ),
]
ExecutorOpt = Annotated[
    Executor,
    typer.Option("--executor", help="local processes or a Dask cluster.", rich_help_panel=BATCH),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler", help="Dask scheduler address (with --executor dask).", rich_help_panel=BATCH
    ),
]
