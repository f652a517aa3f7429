"""The ``convcli`` command line: the Typer app, and the one place errors become exit codes.

This module stays cheap to import: each command imports numpy, Rich and the
library inside its body, so ``convcli --help`` starts fast.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from convcli import __version__
from convcli.cli import convolve, explain, kernels, pool, run, shape
from convcli.cli.console import error_line, set_traceback
from convcli.cli.helptext import Command

app = typer.Typer(
    name="convcli",
    help="Image filtering with CNN semantics: convolve, pool, and see how every size came about.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
for name, command, summary in (
    ("convolve", convolve.convolve, "Filter images with kernels, then pool; write feature maps."),
    ("pool", pool.pool, "Max, average, min or global pooling of images."),
    ("run", run.run, "Run a multi-stage pipeline file on images."),
    ("shape", shape.shape, "Sizes, weights and multiply-adds, without an image."),
    ("explain", explain.explain, "Walk one conv layer through a tiny patch, number by number."),
):
    app.command(name, cls=Command, short_help=summary)(command)
app.add_typer(kernels.app, name="kernels")


def _version(value: bool) -> None:
    if value:
        print(f"convcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    traceback: bool = typer.Option(
        False, "--traceback", help="On an error, print the whole traceback (same exit code)."
    ),
) -> None:
    """Image filtering with CNN semantics.

    Run 'convcli COMMAND --help' for a command's options.
    """


def main() -> None:
    """Console-script entry point: run the app, turn library errors into exit codes."""
    from convcli.errors import ConvcliError, ExitCode

    traceback = "--traceback" in sys.argv
    if traceback:  # accepted anywhere on the line, not only before the command
        sys.argv.remove("--traceback")
    set_traceback(traceback)
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
        shown: Any = exc
        click_error, usage_error, no_args_help, abort = _click_exceptions()
        if isinstance(exc, no_args_help):  # Typer's rich help has printed itself already
            if shown.format_message().strip():
                print(shown.format_message(), file=sys.stderr)
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, click_error):
            # newer click/Typer phrase a bad choice as pydantic does: drop its "Value error, "
            message = shown.format_message().replace(": Value error, ", ": ")
            cause = _convcli_cause(exc)
            if cause is not None:  # an option's parser said what is wrong
                message = str(cause)
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, usage_error) and ctx is not None and cause is None:
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
        sys.exit(int(ExitCode.INTERNAL))
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


def _convcli_cause(exc: BaseException) -> BaseException | None:
    """The convcli error that made click reject an option value, if any."""
    from convcli.errors import ConvcliError

    seen: BaseException | None = exc
    for _ in range(8):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None or isinstance(seen, ConvcliError):
            return seen
    return None
