"""The ``convcli`` command line: the click group, and the one place errors become exit codes.

This module stays cheap to import: each command imports numpy, Rich and the
library inside its body, so ``convcli --help`` starts fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from convcli import __version__
from convcli.cli import convolve, explain, kernels, pool, run, shape
from convcli.cli.console import error_line, set_traceback
from convcli.cli.declare import Interrupted, command, group


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        print(f"convcli {__version__}")
        ctx.exit()


app = group(
    "convcli",
    help="Image filtering with CNN semantics: convolve, pool, and see how every size came about.",
    params=[
        click.Option(
            ["--version"], is_flag=True, expose_value=False, is_eager=True, callback=_version,
            help="Print the version and exit.",
        ),
        click.Option(
            ["--traceback"], is_flag=True, expose_value=False,
            help="On an error, print the whole traceback (same exit code).",
        ),
    ],
)  # fmt: skip
for name, fn, summary in (
    ("convolve", convolve.convolve, "Filter images with kernels, then pool; write feature maps."),
    ("pool", pool.pool, "Max, average, min or global pooling of images."),
    ("run", run.run, "Run a multi-stage pipeline file on images."),
    ("shape", shape.shape, "Sizes, weights and multiply-adds, without an image."),
    ("explain", explain.explain, "Walk one conv layer through a tiny patch, number by number."),
):
    app.add_command(command(fn, name, summary))
app.add_command(kernels.app)


def main() -> None:
    """Console-script entry point: run the app, turn library errors into exit codes."""
    from convcli.errors import ConvcliError, ExitCode

    traceback = "--traceback" in sys.argv
    if traceback:  # accepted anywhere on the line, not only before the command
        sys.argv.remove("--traceback")
    set_traceback(traceback)
    try:
        # Not standalone: click *returns* exit codes (click's Exit) instead of exiting.
        code = app(standalone_mode=False)
    except ConvcliError as exc:
        if traceback:  # the whole story, then the same exit code as without it
            import traceback as tb

            tb.print_exc()
        else:
            error_line(str(exc))
        sys.exit(int(exc.exit_code))
    except (KeyboardInterrupt, Interrupted):
        _remove_pending_temps()
        error_line("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and anything unexpected
        shown: Any = exc
        if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # the help, on stderr
            print(shown.format_message(), file=sys.stderr)
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, click.ClickException):
            message = shown.format_message()
            cause = _convcli_cause(exc)
            if cause is not None:  # an option's parser said what is wrong
                message = str(cause)
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None and cause is None:
                message += f" (see: {ctx.command_path} --help)"
            error_line(message)
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, click.Abort):
            error_line("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        if traceback:
            raise
        error_line(
            f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)"
        )
        sys.exit(int(ExitCode.INTERNAL))
    if code == ExitCode.INTERRUPTED:
        error_line("interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def script() -> None:
    """The ``convcli`` script and ``python -m convcli``: :func:`main`, then a quick exit.

    When :func:`main` has finished, every file of the run is written, closed and
    renamed into place, and its workers and clients are shut down; what the
    interpreter would still do is free its modules and objects, about 30 ms of
    a 0.45 s run on a 2048² PNG. So the standard streams are flushed and the
    process ends at once, with main's exit code. An exception that escapes main
    (``--traceback``) takes the normal way out. In-process callers use :func:`main`.
    """
    import os

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code or 0)


def _remove_pending_temps() -> None:
    """Belt and braces after Ctrl-C: no temporary output file survives the process."""
    write = sys.modules.get("convcli.imageio.write")
    if write is not None:
        write.remove_pending_temps()


def _convcli_cause(exc: BaseException) -> BaseException | None:
    """The convcli error that made click reject an option value, if any."""
    from convcli.errors import ConvcliError

    seen: BaseException | None = exc
    for _ in range(8):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None or isinstance(seen, ConvcliError):
            return seen
    return None
