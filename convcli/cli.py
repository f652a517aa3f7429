"""The ``convcli`` command line: parse, call the library, map errors to exit codes.

This module stays thin and cheap to import: numpy, Rich renderers and the
numeric core are imported inside the commands that need them.
"""

from __future__ import annotations

import sys

import typer

from convcli import __version__
from convcli.cli_kernels import app as kernels_app

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


def main() -> None:
    """Console-script entry point: run the app, turn library errors into exit codes."""
    from convcli.errors import ConvcliError, ExitCode

    traceback = "--traceback" in sys.argv
    if traceback:
        sys.argv.remove("--traceback")
    try:
        app(standalone_mode=False)
    except ConvcliError as exc:
        if traceback:
            raise
        error_line(str(exc))
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                print(exc.ctx.get_usage(), file=sys.stderr)
            error_line(exc.format_message())
            sys.exit(int(ExitCode.USAGE))
        if isinstance(exc, click.exceptions.Abort):
            error_line("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        if traceback:
            raise
        error_line(
            f"internal error: {type(exc).__name__}: {exc} (run with --traceback for details)"
        )
        sys.exit(70)


def error_line(message: str) -> None:
    """One red line on stderr. User text is escaped so brackets print as typed."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(message)}"
    )
