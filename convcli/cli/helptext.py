"""Help text that reads the same under every Typer the project supports.

Newer Typer writes a required argument as ``{INPUT}...`` in the usage line and
adds a Python type (``<list[str]>``) after an argument's name in the help.
Commands made with :class:`Command` print the conventional ``INPUT...`` and
the argument's name alone, as older Typer and click do.
"""

from __future__ import annotations

from typing import Any

import typer.core

#: What to say when a single-valued option is repeated, by (command, parameter).
REPEAT_HINTS = {
    ("shape", "kernel_size"): "for several layers give one --layer spec each",
    ("shape", "out_channels"): "for several layers give one --layer spec each",
}


class Command(typer.core.TyperCommand):
    """A Typer command whose arguments show as ``NAME`` / ``NAME...``, without type tags.

    An option that takes one value and is given twice is a usage error, never a
    silent last-one-wins (``shape --kernel-size 3 --kernel-size 5``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, typer.core.TyperArgument):
                _plain_argument(param)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            _refuse_repeats(self, ctx, args)
        return super().parse_args(ctx, args)


def _refuse_repeats(command: Any, ctx: Any, args: list[str]) -> None:
    """Fail when an option that keeps one value (not a flag, not repeatable) comes twice."""
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except Exception:  # noqa: BLE001 - the real parse reports whatever is wrong
        return
    counts: dict[str, int] = {}
    for param in order:
        single = (
            getattr(param, "param_type_name", "") == "option"
            and not getattr(param, "multiple", False)
            and not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
        )
        if single:
            counts[param.name] = counts.get(param.name, 0) + 1
    for param in command.params:
        n = counts.get(param.name, 0)
        if n > 1:
            opt = max(param.opts, key=len)
            hint = REPEAT_HINTS.get((command.name, param.name), "give it once")
            ctx.fail(f"{opt} is given {n} times but takes one value; {hint}")


def _plain_argument(param: Any) -> None:
    name = param.metavar or param.name.upper()
    usage = (name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else "")
    if hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx=None: None
    if hasattr(param, "_usage_display_name"):
        param._usage_display_name = lambda: usage
