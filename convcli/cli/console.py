"""The two consoles' one-line messages: errors and warnings on stderr, user text escaped."""

from __future__ import annotations

_TRACEBACK = False


def set_traceback(wanted: bool) -> None:
    """``--traceback``: errors end in a traceback instead of one line (same exit code)."""
    global _TRACEBACK
    _TRACEBACK = wanted


def traceback_wanted() -> bool:
    return _TRACEBACK


def error_line(message: str) -> None:
    """One red line on stderr. User text is escaped so brackets print as typed."""
    _line("[bold red]error:[/]", message)


def warning_line(message: str) -> None:
    """One yellow line on stderr."""
    _line("[bold yellow]warning:[/]", message)


def _line(label: str, message: str) -> None:
    """User text is escaped twice: Rich markup (brackets print as typed) and control
    characters (a newline, a terminal escape in a file name) shown as backslash escapes."""
    from rich.console import Console
    from rich.markup import escape

    from convcli.safety import printable

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"{label} {escape(printable(message))}"
    )
