"""The ``convcli`` command line: parse, call the library, map errors to exit codes.

This module stays thin and cheap to import: numpy, Rich renderers and the
numeric core are imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from convcli import __version__, cli_teach
from convcli.cli_kernels import app as kernels_app
from convcli.cli_options import (
    Activation,
    Alpha,
    AlphaOpt,
    Bias,
    BitDepth,
    CeilMode,
    CountPad,
    Dilation,
    DryRun,
    DType,
    DTypeOpt,
    Exclude,
    Executor,
    ExecutorOpt,
    Flip,
    Force,
    FormatOpt,
    Gray,
    Groups,
    Include,
    Inputs,
    Json,
    KernelDirs,
    Kernels,
    Manifest,
    MaxOutputPixels,
    Montage,
    Out,
    Padding,
    PadMode,
    PadModeOpt,
    PadValue,
    PoolAfter,
    PoolOp,
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

app = typer.Typer(
    name="convcli",
    help="Image filtering with CNN semantics: convolve, pool, and see how every size came about.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(kernels_app, name="kernels")


def _version(value: bool) -> None:
    if value:
        print(f"convcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Image filtering with CNN semantics."""


@app.command()
def convolve(
    inputs: Inputs,
    kernel: Kernels,
    kernel_dir: KernelDirs = None,
    stride: Stride = None,
    padding: Padding = None,
    pad_mode: PadModeOpt = PadMode.reflect,
    pad_value: PadValue = 0.0,
    dilation: Dilation = None,
    flip: Flip = False,
    bias: Bias = None,
    activation: Activation = None,
    groups: Groups = 1,
    alpha: AlphaOpt = Alpha.premultiply,
    gray: Gray = False,
    dtype: DTypeOpt = DType.float32,
    pool: PoolAfter = None,
    pool_size: PoolSize = "2",
    pool_stride: PoolStride = None,
    pool_padding: PoolPadding = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
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
    """Convolve images with kernels (then optionally pool) and write the feature maps.

    [dim]Example: convcli convolve samples -k sobel --pool max[/]
    """
    from convcli.pipeline import ConvStage, Pipeline, bank_of, parse_bias
    from convcli.shapes import as_pair, parse_padding

    # Parsed here, so reports, npz params and the manifest hold numbers, not option text.
    stride_ = as_pair(stride, "stride") if stride is not None else None
    dilation_ = as_pair(dilation, "dilation") if dilation is not None else None
    padding_ = parse_padding(padding) if padding is not None else None
    k = bank_of(kernel, kernel_dirs=kernel_dir or ())
    stages: list = [
        ConvStage(
            k, stride=stride_, padding=padding_, dilation=dilation_, activation=activation,
            pad_mode=pad_mode.value, pad_value=pad_value, groups=groups, flip=flip,
            bias=parse_bias(bias),
        )
    ]  # fmt: skip
    if pool is not None:
        stages.append(
            _pool_stage(pool, pool_size, pool_stride, pool_padding, ceil_mode, count_include_pad)
        )
    pipeline = Pipeline(tuple(stages), name="", gray=gray, alpha=alpha.value, dtype=dtype.value)
    _run(pipeline, inputs, locals())


@app.command("pool")
def pool_cmd(
    inputs: Inputs,
    op: Annotated[PoolOp, typer.Option("--op", help="Pooling operation.")] = PoolOp.max,
    size: Annotated[str, typer.Option("--size", help="K or KH,KW")] = "2",
    stride: Annotated[str | None, typer.Option(help="S or SH,SW [default: = size]")] = None,
    padding: Annotated[str, typer.Option(help="P, PH,PW, valid or same")] = "0",
    ceil_mode: CeilMode = False,
    count_include_pad: CountPad = True,
    alpha: AlphaOpt = Alpha.premultiply,
    gray: Gray = False,
    dtype: DTypeOpt = DType.float32,
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
    """Pool images (max, avg, min, global) and write the result.

    [dim]Example: convcli pool samples/camera.png --op avg --size 3 --stride 2[/]
    """
    from convcli.pipeline import Pipeline

    stage = _pool_stage(op, size, stride, padding, ceil_mode, count_include_pad)
    pipeline = Pipeline((stage,), name="", gray=gray, alpha=alpha.value, dtype=dtype.value)
    _run(pipeline, inputs, locals())


def _pool_stage(
    op: PoolOp, size: str, stride: str | None, padding: str, ceil_mode: bool, cip: bool
):  # noqa: ANN202
    from convcli.pipeline import PoolStage
    from convcli.shapes import as_pair, parse_padding

    return PoolStage(
        op.value, size=as_pair(size, "pool size"),
        stride=as_pair(stride, "pool stride") if stride is not None else None,
        padding=parse_padding(padding), ceil_mode=ceil_mode, count_include_pad=cip,
    )  # fmt: skip


def _run(pipeline, inputs: list[str], o: dict) -> None:  # noqa: ANN001
    """Shared tail of convolve / pool / run: output, batch and report options → execute."""
    from convcli.execute import BatchOptions, ReportOptions, execute
    from convcli.limits import parse_limit
    from convcli.runner import OutputOptions

    fmt = o["fmt"].value if o["fmt"] is not None else None
    outo = OutputOptions(
        out=o["out"], fmt=fmt, bit_depth=o["bit_depth"], range_mode=o["range_"].value,
        montage=o["montage"], force=o["force"], skip_existing=o["skip_existing"],
        dry_run=o["dry_run"], save_stages=o.get("save_stages", False),
        max_output_pixels=parse_limit(o.get("max_output_pixels", "auto")),
    )  # fmt: skip
    from convcli.errors import ParameterError

    if o["out"] == "-" and o["montage"]:
        raise ParameterError("-o - writes one image to stdout; --montage needs a folder or a file")
    if o["out"] != "-":
        from pathlib import Path

        from convcli.runner import IMAGE_EXTENSIONS

        ext = Path(o["out"]).suffix.lower()
        fmt_from_ext = {
            ".png": "png",
            ".tif": "tiff",
            ".tiff": "tiff",
            ".npy": "npy",
            ".npz": "npz",
        }
        if ext in IMAGE_EXTENSIONS and ext not in fmt_from_ext and not Path(o["out"]).is_dir():
            raise ParameterError(
                f"-o {o['out']}: cannot write {ext[1:]} files; name a .png, .tif, .npy or .npz"
                " file, or a folder"
            )
        if fmt is not None and ext in fmt_from_ext and fmt_from_ext[ext] != fmt:
            raise ParameterError(f"-o {o['out']} and --format {fmt} disagree; give one of them")
        if fmt is None:
            outo = OutputOptions(**{**outo.__dict__, "fmt": fmt_from_ext.get(ext)})
    batch = BatchOptions(
        recursive=o["recursive"], include=tuple(o["include"] or ()),
        exclude=tuple(o["exclude"] or ()), workers=o["workers"], manifest=o["manifest"],
        executor=o["executor"].value, scheduler=o["scheduler"],
    )  # fmt: skip
    rep = ReportOptions(json=o["json_"], quiet=o["quiet"], preview=o["preview"])
    code = execute(pipeline, inputs, outo, batch, rep)
    if code:
        raise typer.Exit(code)


cli_teach.register(app)


_TRACEBACK = False  # set by main() from --traceback


def traceback_wanted() -> bool:
    """Whether errors should end in a traceback (``--traceback``) instead of one line."""
    return _TRACEBACK


def main() -> None:
    """Console-script entry point: run the app, turn library errors into exit codes."""
    from convcli.errors import ConvcliError, ExitCode

    global _TRACEBACK
    traceback = _TRACEBACK = "--traceback" in sys.argv
    if traceback:
        sys.argv.remove("--traceback")
    try:
        # Not standalone: click *returns* exit codes (typer.Exit, Ctrl-C) instead of exiting.
        code = app(standalone_mode=False)
    except ConvcliError as exc:
        if traceback:  # the whole story, then the same exit code as without it
            import traceback as tb

            tb.print_exc()
        else:
            error_line(str(exc))
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        _remove_pending_temps()
        error_line("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and anything unexpected
        click_error, usage_error, no_args_help, abort = _click_exceptions()
        if isinstance(exc, no_args_help):  # Typer's rich help has printed itself already
            if exc.format_message().strip():
                print(exc.format_message(), file=sys.stderr)
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, click_error):
            # newer click/Typer phrase a bad choice as pydantic does: drop its "Value error, "
            message = exc.format_message().replace(": Value error, ", ": ")
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, usage_error) and ctx is not None:
                message += f" (see: {ctx.command_path} --help)"
            error_line(message)
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, abort):
            error_line("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        if traceback:
            raise
        error_line(
            f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)"
        )
        sys.exit(70)
    if code == ExitCode.INTERRUPTED:
        error_line("interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], ...]:
    """(ClickException, UsageError, NoArgsIsHelpError, Abort) classes of every click in use.

    Typer >= 0.2x vendors click as ``typer._click`` (its own classes); older
    Typer raises ``click``'s. Either may be absent.
    """
    import importlib

    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            pass

    def classes(name: str) -> tuple[type[BaseException], ...]:
        return tuple(getattr(m, name) for m in mods if hasattr(m, name))

    abort = classes("Abort") + (typer.Abort,)
    return classes("ClickException"), classes("UsageError"), classes("NoArgsIsHelpError"), abort


def _remove_pending_temps() -> None:
    """Belt and braces after Ctrl-C: no temporary output file survives the process."""
    write = sys.modules.get("convcli.imageio.write")
    if write is not None:
        write.remove_pending_temps()


def error_line(message: str) -> None:
    """One red line on stderr. User text is escaped so brackets print as typed, and control
    characters (a newline, a terminal escape in a file name) show as backslash escapes."""
    from rich.console import Console
    from rich.markup import escape

    from convcli.safety import printable

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(printable(message))}"
    )
