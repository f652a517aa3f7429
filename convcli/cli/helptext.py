"""Help text that reads the same under every Typer the project supports.

Newer Typer writes a required argument as ``{INPUT}...`` in the usage line and
adds a Python type (``<list[str]>``) after an argument's name in the help.
Commands made with :class:`Command` print the conventional ``INPUT...`` and
the argument's name alone, as older Typer and click do.
"""

from __future__ import annotations

from typing import Any

import typer.core


class Command(typer.core.TyperCommand):
    """A Typer command whose arguments show as ``NAME`` / ``NAME...``, without type tags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument):
                _plain_argument(param)


def _plain_argument(param: Any) -> None:
    name = param.metavar or param.name.upper()
    usage = (name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else "")
    if hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx=None: None
    if hasattr(param, "_usage_display_name"):
        param._usage_display_name = lambda: usage
