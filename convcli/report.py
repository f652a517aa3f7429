"""Rich renderables for shape reports, map statistics and terminal previews.

Every function here *returns* something to print; nothing prints. The JSON
form of a report (:func:`result_json`) holds the same content as the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from convcli.safety import printable

if TYPE_CHECKING:
    from convcli.imageio import MapImage, WriteResult
    from convcli.pipeline import Result, StageRecord

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
    if record.name.startswith("global"):
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
    parts = [f"stride {_pair(g.stride)}"]  # the kernel size is in the description
    if record.kind == "conv":
        if g.dilation != (1, 1):
            parts.append(f"dilation {_pair(g.dilation)}")
        if o.get("groups", 1) != 1:
            parts.append(f"groups {o['groups']}")
        if o.get("flip"):
            parts.append("flipped")
        if o.get("bias") is not None:
            parts.append(f"bias {o['bias']}")
        if o.get("activation") not in (None, "none"):
            parts.append(str(o["activation"]))
    else:
        if o.get("ceil_mode"):
            parts.append("ceil mode")
        if record.name.startswith("avg") and not o.get("count_include_pad", True):
            parts.append("exclude pad")
    return " · ".join(parts)


def shape_table(result: Result, *, title: str | None = None) -> Table:
    """One row per stage: in → out, weights, multiply-adds, receptive field / effective stride."""
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("stage")
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
            _chw(g.in_shape),
            _chw(g.out_shape),
            _count(g.params),
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
        r.kind == k and not r.name.startswith("global") for r in result.records
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


def totals_line(result: Result) -> Text:
    params = sum(r.geometry.params for r in result.records)
    macs = sum(r.geometry.macs for r in result.records)
    last = result.records[-1].geometry
    text = Text("total: ", style="bold")
    text.append(f"{_count(params)} weights, {_count(macs)} multiply-adds; ")
    text.append(
        f"output {_chw(last.out_shape)}; receptive field {_pair(last.receptive_field)} px, "
    )
    text.append(f"effective stride {_pair(last.jump)}")
    return text


def warnings_of(result: Result, write: WriteResult | None = None) -> list[str]:
    """Every warning the report shows: unused rows/columns, clipped pixels, notes."""
    out = [f"stage {r.index} ({r.name}): {w}" for r in result.records for w in r.geometry.warnings]
    mapping = getattr(write, "mapping", None)
    if mapping is not None and mapping.clipped_fraction > 0:
        out.append(
            f"png mapping '{mapping.range_mode}' clipped {mapping.clipped_fraction:.2%} of values"
            " (try --range minmax or --range offset)"
        )
    out.extend(result.notes)
    return out


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


def mapping_text(m: MapImage, n_files: int = 1) -> str:
    """How the png pixels were made, in words: which value became black, which white.

    >>> from convcli.imageio import MapImage
    >>> mapping_text(MapImage("offset", 0.0, -2.0, 2.0), 2)
    'png mapping: offset: -2 → black, 0 → mid-grey, 2 → white (one mapping for all files)'
    """
    x = "|x| " if m.range_mode == "abs" else ""
    mid = ", 0 → mid-grey" if m.range_mode == "offset" else ""
    text = f"png mapping: {m.range_mode}: {x}{m.lo:.4g} → black{mid}, {m.hi:.4g} → white"
    if m.range_mode in ("identity", "clip") and m.clipped_fraction > 0:
        text += ", values outside clipped"
    return text + (" (one mapping for all files)" if n_files > 1 else "")


def map_names(result: Result) -> list[str]:
    """A readable name per output map: ``R``, ``sobel-x:G``, ``3`` ..."""
    n = result.out_shape[0]
    ch = result.channels
    if result.layout == "image" and len(ch) == n:
        return list(ch)
    if result.layout.startswith("bank:") and ch:
        return [f"{lab}:{c}" for lab in result.labels for c in ch][:n] or [str(i) for i in range(n)]
    if len(result.labels) == n:
        return list(result.labels)
    return [str(i) for i in range(n)]


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
        shape_table(result, title=title),
        _formula_heading(result),
        formula_table(result),
    ]  # fmt: skip
    parts.append(totals_line(result))
    for w in warnings_of(result, write):
        parts.append(Text.assemble(("warning: ", "bold yellow"), printable(w)))
    if show_stats and result.maps is not None:
        parts.append(stats_table(result))
    if write is not None:
        if write.mapping is not None:
            parts.append(Text(mapping_text(write.mapping, len(write.planned)), style="dim"))
        files = write.planned if dry_run else write.paths
        verb = "would write" if dry_run else "wrote"
        listing = Text(f"{verb} {len(files)} file{'s' if len(files) != 1 else ''}:", style="bold")
        for p in files:
            listing.append("\n  - (stdout)" if str(p) == "-" else f"\n  {printable(p)}")
        parts.append(listing)
    return Group(*parts)


# --------------------------------------------------------------------------- JSON


def record_json(r: StageRecord) -> dict[str, Any]:
    g = r.geometry
    return {
        "index": r.index,
        "kind": r.kind,
        "name": r.name,
        "description": r.description,
        "in_shape": list(g.in_shape),
        "out_shape": list(g.out_shape),
        "kernel": list(g.kernel_hw),
        "stride": list(g.stride),
        "dilation": list(g.dilation),
        "padding": dict(zip(("top", "bottom", "left", "right"), g.padding, strict=True)),
        "formula": {"H": g.formulas[0].text(), "W": g.formulas[1].text()},
        "params": g.params,
        "macs": g.macs,
        "receptive_field": list(g.receptive_field),
        "effective_stride": list(g.jump),
        "options": {k: _jsonable(v) for k, v in r.options.items()},
        "warnings": list(g.warnings),
        "seconds": round(r.seconds, 6),
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def result_json(result: Result, write: WriteResult | None = None, *, dry_run: bool = False) -> dict:
    """The report as plain data (what ``--json`` prints)."""
    data: dict[str, Any] = {
        "input": result.input,
        "in_shape": list(result.in_shape),
        "channels": result.channels,
        "out_shape": list(result.out_shape),
        "stages": [record_json(r) for r in result.records],
        "total_params": sum(r.geometry.params for r in result.records),
        "total_macs": sum(r.geometry.macs for r in result.records),
        "warnings": warnings_of(result, write),
    }
    if result.maps is not None:
        data["maps"] = [
            {"name": n, "min": lo, "max": hi, "mean": mean}
            for n, (lo, hi, mean) in zip(map_names(result), result.map_stats(), strict=True)
        ]
    if write is not None:
        data["outputs"] = [str(p) for p in (write.planned if dry_run else write.paths)]
        if write.mapping is not None:
            m = write.mapping
            data["mapping"] = {
                "range": m.range_mode, "lo": m.lo, "hi": m.hi,
                "clipped_fraction": m.clipped_fraction,
            }  # fmt: skip
    data["dry_run"] = dry_run
    return data


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
