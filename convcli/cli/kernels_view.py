"""Rich renderables for ``convcli kernels``: heatmaps, the kernel list, lint findings.

Every function here *returns* a renderable; the command prints it. Tests render
them into ``Console(width=100, file=io.StringIO())``.

Colours: a kernel with both signs gets a diverging scale (blue negative, grey
zero, red positive, by ``|w| / max|w|``); a one-signed kernel a sequential one
(grey to amber). Numbers are always printed too (when they fit), so the output
reads the same without colour.

Examples
--------
>>> import io
>>> import numpy as np
>>> from rich.console import Console
>>> console = Console(width=60, file=io.StringIO(), color_system=None)
>>> console.print(KernelHeatmap(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])))
>>> for line in console.file.getvalue().splitlines():
...     print(line.rstrip())
     0   1   2
0   -1   0   1
1   -2   0   2
2   -1   0   1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from rich import box
from rich.columns import Columns
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from convcli.kernels import Finding, Kernel, kernel_rank, separable_factors, symmetry, weights_sum
from convcli.safety import printable

NEUTRAL = (58, 58, 58)
POSITIVE = (214, 76, 60)
NEGATIVE = (60, 120, 216)
SEQUENTIAL = (240, 190, 50)
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def cell_style(value: float, vmax: float, signed: bool) -> Style:
    """Background (and a readable foreground) for one tap.

    >>> cell_style(1.0, 1.0, True).bgcolor.triplet.hex
    '#d64c3c'
    """
    t = 0.0 if vmax == 0 else min(abs(value) / vmax, 1.0)
    if signed:
        rgb = _blend(NEUTRAL, POSITIVE if value > 0 else NEGATIVE, t)
    else:
        rgb = _blend(NEUTRAL, SEQUENTIAL, t)
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    fg = "black" if luma > 140 else "white"
    return Style(bgcolor=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", color=fg)


def _format_values(w: np.ndarray, decimals: int) -> list[list[str]]:
    if np.allclose(w, np.round(w)) and np.abs(w).max(initial=0) < 1e6:
        return [[f"{int(round(v))}" for v in row] for row in w]
    return [[f"{v:.{decimals}f}".replace("-0." + "0" * decimals, "0." + "0" * decimals)
             for v in row] for row in w]  # fmt: skip


class KernelHeatmap:
    """A 2-D kernel drawn as a grid of coloured cells, with its numbers when they fit.

    Adapts to the width it is given: 4, 3, then 2 decimals; then colour-only
    cells. ``origin`` (row, col) is underlined; ``vmax`` shares one colour scale
    between several heatmaps (a bank or a layer).
    """

    def __init__(
        self,
        weights: np.ndarray,
        *,
        origin: tuple[int, int] | None = None,
        vmax: float | None = None,
        signed: bool | None = None,
        indices: bool = True,
    ):
        self.w = np.asarray(weights, dtype=np.float64)
        if self.w.ndim != 2:
            raise ValueError(f"KernelHeatmap takes a 2-D array, got shape {self.w.shape}")
        kh, kw = self.w.shape
        self.origin = origin if origin is not None else ((kh - 1) // 2, (kw - 1) // 2)
        self.vmax = float(np.abs(self.w).max(initial=0.0)) if vmax is None else vmax
        self.signed = bool(self.w.min() < 0 < self.w.max()) if signed is None else signed
        self.indices = indices

    def _layouts(self) -> list[tuple[list[list[str]] | None, int]]:
        """Candidate (cell texts, cell width) pairs, richest first."""
        out: list[tuple[list[list[str]] | None, int]] = []
        for decimals in (4, 3, 2):
            texts = _format_values(self.w, decimals)
            width = max(len(t) for row in texts for t in row)
            out += [(texts, width + 2), (texts, width + 1)]
        return [*out, (None, 2), (None, 1)]

    def _index_width(self, numbers: bool) -> int:
        return len(str(self.w.shape[0] - 1)) + 2 if (self.indices and numbers) else 0

    def _width(self, layout: tuple[list[list[str]] | None, int]) -> int:
        texts, cell = layout
        return self._index_width(texts is not None) + cell * self.w.shape[1]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        layouts = self._layouts()
        return Measurement(self._width(layouts[-1]), self._width(layouts[0]))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        layouts = self._layouts()
        texts, cell = next((lay for lay in layouts if self._width(lay) <= options.max_width),
                           layouts[-1])  # fmt: skip
        kh, kw = self.w.shape
        iw = self._index_width(texts is not None)
        if texts is not None and self.indices:
            header = Text(" " * iw, style="dim")
            for c in range(kw):
                header.append(f"{c:>{cell - 1}} ", style="dim")
            yield header
        for r in range(kh):
            line = Text()
            if iw:
                line.append(f"{r:<{iw}}", style="dim")
            for c in range(kw):
                style = cell_style(float(self.w[r, c]), self.vmax, self.signed)
                if (r, c) == self.origin and texts is not None and (kh > 1 or kw > 1):
                    style += Style(bold=True, underline=True)
                value = texts[r][c] if texts is not None else ""
                line.append(f"{value:>{cell - 1}} " if texts else " " * cell, style=style)
            yield line


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def weights_facts(w: np.ndarray, *, factors: bool = True) -> Text:
    """Sum, rank/separability, symmetry and range of a 2-D kernel, on one or two lines.

    With ``factors``, a separable kernel of at most 9 taps a side gets a second
    line with its column and row vectors.

    >>> print(weights_facts(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])))
    sum 0 · rank 1 (separable) · symmetric (up-down) · range -2 to 2
    = [1, 2, 1]ᵀ × [-1, 0, 1]
    """
    w = np.asarray(w, dtype=np.float64)
    parts = [f"sum {_fmt(weights_sum(w))}"]
    sep = separable_factors(w)
    rank = kernel_rank(w)
    if sep is not None:
        parts.append("rank 1 (separable)")
    else:
        parts.append(f"rank {rank} (not separable)" if rank else "all zero")
    sym = symmetry(w)
    parts.append("no symmetry" if sym == "none" else f"symmetric ({sym})")
    parts.append(f"range {_fmt(float(w.min()))} to {_fmt(float(w.max()))}")
    text = Text(" · ".join(parts), style="dim")
    if sep is not None and factors and max(w.shape) <= 9:
        col, row = (", ".join(_fmt(v) for v in vec + 0.0) for vec in sep)
        text.append(f"\n= [{col}]ᵀ × [{row}]", style="dim")
    return text


def _compact_facts(w: np.ndarray) -> Text:
    """Two short lines for a bank member's panel: sum and rank, then symmetry."""
    rank = kernel_rank(w)
    sep = "separable" if rank == 1 else f"rank {rank}"
    sym = symmetry(w)
    return Text(f"sum {_fmt(weights_sum(w))} · {sep}\nsymmetry: {sym}", style="dim")


def _size(kernel: Kernel) -> str:
    s = kernel.shape
    if kernel.kind == "bank":
        return f"{s[0]} × {s[1]}×{s[2]}"
    if kernel.kind == "layer":
        return f"{s[0]}×{s[1]} × {s[2]}×{s[3]}"
    return f"{s[0]}×{s[1]}"


def _sum_and_separable(kernel: Kernel) -> tuple[str, str]:
    members = [m for _, m in kernel.members()]
    if kernel.kind == "layer":
        w = kernel.weights
        sums = {_fmt(weights_sum(w[o])) for o in range(w.shape[0])}
    else:
        sums = {_fmt(weights_sum(m)) for m in members}
    n_sep = sum(kernel_rank(m) == 1 for m in members)
    if len(members) == 1:
        sep = "yes" if n_sep else "no"
    else:
        sep = (
            "all" if n_sep == len(members) else ("no" if n_sep == 0 else f"{n_sep}/{len(members)}")
        )
    return (sums.pop() if len(sums) == 1 else "varies"), sep


def _header(kernel: Kernel) -> Text:
    title = Text(printable(kernel.name), style="bold")
    kind = {"2d": "kernel", "bank": f"bank of {kernel.shape[0]}", "layer": "layer (out×in×kh×kw)"}
    title.append(f"  {_size(kernel)} {kind[kernel.kind]}  ", style="")
    title.append(printable(kernel.source), style="dim")
    lines = [title]
    if kernel.description:
        lines.append(Text(kernel.description))
    notes = ["true convolution (flipped)" if kernel.flip else "cross-correlation (no flip)"]
    if kernel.origin is not None:
        notes.append(f"origin row {kernel.origin[0]}, col {kernel.origin[1]}")
    if kernel.normalize != "none" or kernel.scale != 1.0:
        notes.append(f"normalize {kernel.normalize}, scale {_fmt(kernel.scale)} (applied)")
    if kernel.bias is not None:
        bias = kernel.bias
        text = ", ".join(_fmt(b) for b in bias) if isinstance(bias, tuple) else _fmt(bias)
        if isinstance(bias, tuple) and len(bias) > 8:
            text = f"×{len(bias)} ({_fmt(min(bias))} to {_fmt(max(bias))})"
        notes.append(f"bias {text}")
    for key in ("stride", "padding", "dilation", "activation", "groups", "pad_mode"):
        value = getattr(kernel, key)
        if value is not None:
            shown = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
            notes.append(f"{key} {shown}")
    lines.append(Text(" · ".join(notes), style="dim"))
    return Text("\n").join(lines)


def kernel_header(kernel: Kernel) -> Text:
    """The first lines of :func:`kernel_view`: name, size, source, description, options."""
    return _header(kernel)


def kernel_view(kernel: Kernel) -> RenderableType:
    """Everything ``convcli kernels show`` prints about one kernel.

    A 2-D kernel: a heatmap and one line of facts. A bank: one panel per member,
    side by side when they fit, on one shared colour scale. A layer: a grid of
    small heatmaps, one per (output, input) channel pair.
    """
    w = np.asarray(kernel.weights, dtype=np.float64)
    parts: list[RenderableType] = [_header(kernel), Text()]
    vmax = float(np.abs(w).max(initial=0.0))
    signed = bool(w.min() < 0 < w.max())
    if kernel.kind == "2d":
        parts += [KernelHeatmap(w, origin=kernel.origin), Text(), weights_facts(w)]
    elif kernel.kind == "bank":
        panels = [
            Panel(
                Group(
                    KernelHeatmap(m, origin=kernel.origin, vmax=vmax, signed=signed),
                    _compact_facts(m),
                ),
                title=label,
                title_align="left",
                expand=False,
            )
            for label, m in kernel.members()
        ]
        parts.append(Columns(panels))
    else:
        c_out, c_in = w.shape[:2]
        table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 1))
        table.add_column("", style="dim")
        for i in range(c_in):
            table.add_column(f"in {i}", overflow="crop")
        for o in range(c_out):
            row: list[RenderableType] = [f"out {o}"]
            for i in range(c_in):
                row.append(
                    Group(
                        KernelHeatmap(w[o, i], vmax=vmax, signed=signed, indices=False),
                        Text(f"sum {_fmt(weights_sum(w[o, i]))}", style="dim"),
                    )
                )
            table.add_row(*row)
            table.add_row()
        parts.append(table)
        sums = ", ".join(_fmt(weights_sum(w[o])) for o in range(c_out))
        parts.append(Text(f"sum per output channel: {sums}", style="dim"))
    warnings = kernel.extra.get("warnings", ())
    parts += [Text(str(x), style="yellow") for x in warnings]
    return Group(*parts)


def kernel_list_table(
    title: str,
    rows: Iterable[tuple[str, Kernel | Exception, str | Text]],
    *,
    compact: bool = False,
) -> Table:
    """The ``convcli kernels list`` table: ``rows`` are (name, kernel or error, description).

    A row whose kernel failed to load shows the error in red instead of numbers.
    ``compact`` (for 80 columns) puts each description under its name, with no
    vertical rules, instead of in a fifth column.
    """
    if compact:
        table = Table(
            title=title, title_justify="left", title_style="bold", expand=False,
            box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
        )  # fmt: skip
        table.add_column("name and description")
    else:
        table = Table(title=title, title_justify="left", title_style="bold", expand=False)
        table.add_column("name", style="bold", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("sum", justify="right", no_wrap=True)
    table.add_column("separable", no_wrap=True)
    if not compact:
        table.add_column("description")
    for name, kernel, description in rows:
        if isinstance(kernel, Exception):
            error = Text(printable(kernel), style="red")
            if compact:
                table.add_row(_named(printable(name), error), "-", "-", "-")
            else:
                table.add_row(Text(printable(name)), "-", "-", "-", error)
            continue
        total, sep = _sum_and_separable(kernel)
        text = description or kernel.description
        shown = Text(printable(text)) if isinstance(text, str) else text
        if compact:
            table.add_row(_named(printable(name), shown), _size(kernel), total, sep)
        else:
            table.add_row(Text(printable(name)), _size(kernel), total, sep, shown)
    return table


def _named(name: str, description: Text) -> Group:
    """A name over its description, indented (wrapped lines too)."""
    return Group(Text(name, style="bold"), Padding(description, (0, 0, 0, 2)))


def findings_text(findings: Sequence[Finding]) -> Text:
    """One line per finding, ``file:line: severity: message``, severity coloured.

    >>> print(findings_text([Finding("error", "weights is empty", "k.yaml", 2)]))
    k.yaml:2: error: weights is empty
    """
    out = Text()
    for i, f in enumerate(findings):
        where = printable(f.file if f.line is None else f"{f.file}:{f.line}")
        if i:
            out.append("\n")
        out.append(f"{where}: ")
        out.append(f.severity, style=SEVERITY_STYLE.get(f.severity, ""))
        out.append(f": {printable(f.message)}")
    return out


def findings_table(findings: Sequence[Finding]) -> Table:
    """The same findings as :func:`findings_text`, long messages wrapped under themselves."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for f in findings:
        where = printable(f.file if f.line is None else f"{f.file}:{f.line}")
        head = Text(f"{where}: ")
        head.append(f.severity, style=SEVERITY_STYLE.get(f.severity, ""))
        head.append(":")
        grid.add_row(head, Text(printable(f.message)))
    return grid
