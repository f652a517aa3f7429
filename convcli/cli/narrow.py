"""A renderable that picks its layout from the width it is given (80-column terminals).

Tables written for 100 columns wrap badly at 80: a cell that wraps turns one row
into four. :class:`ByWidth` holds a wide and a compact form of the same content
and draws the wide one only when it fits without wrapping.

Examples
--------
>>> import io
>>> from rich.console import Console
>>> from rich.text import Text
>>> both = ByWidth(Text("a wide line of text"), Text("narrow"))
>>> for width in (40, 10):
...     console = Console(width=width, file=io.StringIO(), color_system=None)
...     console.print(both)
...     print(console.file.getvalue().strip())
a wide line of text
narrow
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement


class ByWidth:
    """``wide`` when its natural width fits the space given, else ``narrow``."""

    def __init__(self, wide: RenderableType, narrow: RenderableType) -> None:
        self.wide = wide
        self.narrow = narrow

    def pick(self, console: Console, options: ConsoleOptions) -> RenderableType:
        need = Measurement.get(console, options.update(width=10_000), self.wide).maximum
        return self.wide if need <= options.max_width else self.narrow

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.pick(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.pick(console, options))


__all__ = ["ByWidth"]
