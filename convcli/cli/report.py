"""Rich renderables for shape reports, map statistics and terminal previews.

Every function here *returns* something to print; nothing prints. The JSON
form of a report (:func:`result_json`) holds the same content as the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from convcli.cli.narrow import ByWidth
from convcli.run.records import map_names, mapping_text, warnings_of
from convcli.safety import printable

if TYPE_CHECKING:
    from convcli.imageio import WriteResult
    from convcli.pipeline import Result, StageRecord
    from convcli.run.jobs import Outcome

MAX_STAT_ROWS = 12
FORMULA = "floor((in + pads - dilation·(k-1) - 1) / stride) + 1"
POOL_FORMULA = "floor((in + pads - k) / stride) + 1"


def _chw(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)


def _pair(p: Sequence[int]) -> str:
    return f"{p[0]}" if p[0] == p[1] else f"{p[0]},{p[1]}"


def _count(n: int) -> str:
    """1,234 / 12.3 M / 4.56 G — short, still exact enough to compare stages."""
    if n < 100_000:
        return f"{n:,}"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


def _how(record: StageRecord) -> Text:
    """The size formulas (one line when H and W read the same) and the padding applied."""
    g = record.geometry
    lines = Text()
    fy, fx = g.formulas
    if record.kind == "combine":
        n = int(record.options.get("members", 1))
        c_out = g.out_shape[0]
        lines.append(f"{c_out}·{n} maps → {c_out}: ", style="cyan")
        lines.append(f"{record.name} of each channel's {n} bank maps; size unchanged", style="dim")
        return lines
    if record.is_global_pool:
        lines.append(f"whole {fy.size_in}×{fx.size_in} map → 1×1", style="cyan")
        return lines
    if fy.text() == fx.text():
        lines.append("H, W: ", style="dim")
        lines.append(fy.text(), style="cyan")
    else:
        lines.append("H: ", style="dim")
        lines.append(fy.text(), style="cyan")
        lines.append("\nW: ", style="dim")
        lines.append(fx.text(), style="cyan")
    t, b, left, right = g.padding
    if not any(g.padding):
        lines.append("\nno padding", style="dim")
    else:
        mode = record.options.get("pad_mode")
        if record.kind == "pool":
            mode = {"max": "-inf", "min": "+inf"}.get(record.name[:3], "zeros")
        lines.append(
            f"\npadding top {t}, bottom {b}, left {left}, right {right} ({mode})", style="dim"
        )
    return lines


def _params_text(record: StageRecord) -> str:
    o = record.options
    g = record.geometry
    if record.kind == "combine":
        return f"{g.out_shape[0]}·{o.get('members', 1)} maps → {g.out_shape[0]}"
    parts = [f"stride {_pair(g.stride)}"]  # the kernel size is in the description
    if record.kind == "conv":
        if g.dilation != (1, 1):
            parts.append(f"dilation {_pair(g.dilation)}")
        if o.get("groups", 1) != 1:
            parts.append(f"groups {o['groups']}")
        if o.get("flip"):
            parts.append("flipped")
        if o.get("bias") is True:  # a shape-only layer: counted, no value
            parts.append("bias")
        elif o.get("bias") is not None:
            parts.append(_bias_text(o["bias"]))
        if o.get("activation") not in (None, "none"):
            parts.append(str(o["activation"]))
    else:
        if o.get("ceil_mode"):
            parts.append("ceil mode")
        if record.op == "avg" and not o.get("count_include_pad", True):
            parts.append("exclude pad")
    return " · ".join(parts)


def _bias_text(bias: Any) -> str:
    """``bias 0.5``, ``bias (0.1, -0.2)``, or for many values ``bias ×64 (-0.31 to 1.2)``.

    >>> _bias_text(0.5), _bias_text((0.1, -0.2)), _bias_text(tuple(range(8)))
    ('bias 0.5', 'bias (0.1, -0.2)', 'bias ×8 (0 to 7)')
    """
    if not isinstance(bias, tuple | list):
        return f"bias {bias:.4g}" if isinstance(bias, float) else f"bias {bias}"
    if len(bias) > 4:
        return f"bias ×{len(bias)} ({min(bias):.3g} to {max(bias):.3g})"
    return "bias (" + ", ".join(f"{b:.4g}" for b in bias) + ")"


def shape_table(result: Result, *, title: str | None = None, compact: bool = False) -> Table:
    """One row per stage: in → out, weights, multiply-adds, receptive field / effective stride.

    ``compact`` (for 80 columns): no vertical rules and no "in" column — each stage
    takes the row above's output, and the title names the input.
    """
    if compact:
        table = Table(
            title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD,
            pad_edge=False, show_edge=False, collapse_padding=True,
        )  # fmt: skip
    else:
        table = Table(title=title, title_justify="left", expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("stage")
    if not compact:
        table.add_column("in C×H×W", justify="right", no_wrap=True)
    table.add_column("out C×H×W", justify="right", no_wrap=True, style="bold green")
    table.add_column("weights", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("RF /\neff. stride", justify="right", no_wrap=True)
    for r in result.records:
        g = r.geometry
        stage = Text(printable(r.description), style="bold")
        stage.append("\n" + _params_text(r), style="dim")
        table.add_row(
            str(r.index),
            stage,
            *(() if compact else (_chw(g.in_shape),)),
            _chw(g.out_shape),
            f"{g.params:,}",
            _count(g.macs),
            f"{_pair(g.receptive_field)} / {_pair(g.jump)}",
        )
    return table


def formula_table(result: Result) -> Table:
    """How each stage's output size comes about, the numbers filled in."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("how")
    for r in result.records:
        table.add_row(str(r.index), _how(r))
    return table


def _formula_heading(result: Result) -> Text:
    """The general output-size formula of the kinds of stage in the report."""
    kinds = [k for k in ("conv", "pool") if any(
        r.kind == k and not r.is_global_pool for r in result.records
    )]  # fmt: skip
    text = Text("how each size comes about", style="bold")
    formulas = {"conv": FORMULA, "pool": POOL_FORMULA}
    if len(kinds) == 1:
        text.append(f": out = {formulas[kinds[0]]}", style="bold")
    for kind in kinds if len(kinds) > 1 else ():
        text.append(f"\n  {kind}: out = {formulas[kind]}")
    if any(r.options.get("ceil_mode") for r in result.records):
        text.append("\n  (ceil instead of floor with --ceil-mode)", style="dim")
    return text


def totals_line(result: Result, *, lines: int = 1) -> Text:
    """Weights, multiply-adds, output, receptive field and effective stride of the whole run;
    ``lines=2`` breaks before the receptive field (for narrow terminals)."""
    params = sum(r.geometry.params for r in result.records)
    macs = sum(r.geometry.macs for r in result.records)
    last = result.records[-1].geometry
    text = Text("total: ", style="bold")
    text.append(f"{params:,} weights, {_count(macs)} multiply-adds; ")
    text.append(f"output {_chw(last.out_shape)};" + (" " if lines == 1 else "\n       "))
    text.append(f"receptive field {_pair(last.receptive_field)} px, ")
    text.append(f"effective stride {_pair(last.jump)}")
    return text


def stats_table(result: Result) -> Table:
    """min / max / mean of each output map (the first ``MAX_STAT_ROWS``)."""
    table = Table(title="output maps", title_justify="left", pad_edge=False, box=None)
    table.add_column("map")
    for col in ("min", "max", "mean"):
        table.add_column(col, justify="right")
    names = map_names(result)
    stats = result.map_stats()
    for name, (lo, hi, mean) in list(zip(names, stats, strict=True))[:MAX_STAT_ROWS]:
        table.add_row(escape(printable(name)), f"{lo:.4g}", f"{hi:.4g}", f"{mean:.4g}")
    if len(stats) > MAX_STAT_ROWS:
        table.add_row(f"… {len(stats) - MAX_STAT_ROWS} more", "", "", "")
    return table


def mappings_text(write: WriteResult) -> Text:
    """One line when every picture shares a mapping, else one line per file."""
    maps = list(write.mappings) or ([write.mapping] if write.mapping is not None else [])
    fmt = getattr(write, "fmt", "") or "png"
    if len(maps) <= 1 or all(m == maps[0] for m in maps):
        return Text(mapping_text(maps[0], len(maps), fmt), style="dim")
    text = Text(f"{fmt} mappings, one per file:", style="dim")
    for path, m in list(zip(write.planned, maps, strict=False))[:MAX_STAT_ROWS]:
        text.append(f"\n  {path.name}: {m.text()}", style="dim")
    if len(maps) > MAX_STAT_ROWS:
        text.append(f"\n  … {len(maps) - MAX_STAT_ROWS} more", style="dim")
    return text


def report(
    result: Result,
    write: WriteResult | None = None,
    *,
    dry_run: bool = False,
    show_stats: bool = True,
) -> RenderableType:
    """The full per-input report: shape table, totals, warnings, map stats and files."""
    title = escape(printable(f"{result.input}: {_chw(result.in_shape)} {result.channels}".strip()))
    parts: list[RenderableType] = [
        ByWidth(shape_table(result, title=title), shape_table(result, title=title, compact=True)),
        _formula_heading(result),
        formula_table(result),
    ]  # fmt: skip
    parts.append(ByWidth(totals_line(result), totals_line(result, lines=2)))
    for w in warnings_of(result, write):
        parts.append(Text.assemble(("warning: ", "bold yellow"), printable(w)))
    if show_stats and (result.maps is not None or result.stats is not None):
        parts.append(stats_table(result))
    if write is not None:
        if write.mapping is not None:
            parts.append(mappings_text(write))
        files = write.planned if dry_run else write.paths
        verb = "would write" if dry_run else "wrote"
        listing = Text(f"{verb} {len(files)} file{'s' if len(files) != 1 else ''}:", style="bold")
        for p in files:
            listing.append("\n  - (stdout)" if str(p) == "-" else f"\n  {printable(p)}")
        parts.append(listing)
    return Group(*parts)


# --------------------------------------------------------------------------- preview


def preview(pixels: np.ndarray, *, max_width: int = 80, max_height: int = 48) -> Text:
    """Draw a ``(C, H, W)`` uint8 picture with half-block cells in true colour.

    Each character cell shows two pixels: ``▀`` with the top one as foreground
    and the bottom one as background. The picture is shrunk (by block averaging)
    to fit ``max_width`` columns and ``max_height`` lines.
    """
    pic = np.asarray(pixels, dtype=np.float32)
    if pic.ndim == 2:
        pic = pic[None]
    if pic.shape[0] in (2, 4):  # drop alpha: composite over mid-grey
        a = pic[-1:] / 255.0
        pic = pic[:-1] * a + 128 * (1 - a)
    if pic.shape[0] == 1:
        pic = np.repeat(pic, 3, axis=0)
    pic = pic[:3]
    _, h, w = pic.shape
    factor = max(1, int(np.ceil(max(w / max_width, h / (2 * max_height)))))
    h2, w2 = h // factor, w // factor
    if h2 == 0 or w2 == 0:
        h2, w2, factor = max(h, 1), max(w, 1), 1
    small = (
        pic[:, : h2 * factor, : w2 * factor].reshape(3, h2, factor, w2, factor).mean(axis=(2, 4))
    )
    if h2 % 2:
        small = np.concatenate([small, small[:, -1:]], axis=1)
    rgb = np.clip(small + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    text = Text()
    for y in range(0, rgb.shape[0], 2):
        for x in range(rgb.shape[1]):
            top, bottom = rgb[y, x], rgb[y + 1, x]
            text.append("▀", style=f"{_hex(top)} on {_hex(bottom)}")
        if y + 2 < rgb.shape[0]:
            text.append("\n")
    return text


def _hex(rgb: np.ndarray) -> str:
    return f"#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}"


def summary_table(outcomes: list[Outcome], wall: float | None = None) -> Table:
    """The batch summary: inputs, done, skipped, failed, wall time and images per second."""
    from convcli.run.records import summary_counts

    counts = summary_counts(outcomes)
    table = Table(title="batch summary", title_justify="left")
    for col in ("inputs", "done", "skipped", "failed"):
        table.add_column(col, justify="right")
    row = [str(counts[c]) for c in ("inputs", "done", "skipped", "failed")]
    if wall is not None:
        table.add_column("wall time", justify="right")
        table.add_column("images/s", justify="right")
        done = counts["done"]
        row += [f"{wall:.2f} s", f"{done / wall:.1f}" if wall > 0 else "-"]
    table.add_row(*row)
    return table
