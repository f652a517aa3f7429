"""Rich renderables for ``convcli explain``: a :class:`~convcli.pipeline.walk.Walkthrough`, drawn.

:func:`explain` turns the walk's numbers (computed in :mod:`convcli.pipeline.walk`)
into tables and text that fit 100 columns. Nothing here computes a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from convcli.ops.activations import parse_activation
from convcli.pipeline.walk import PoolWalk, PoolWindow, Walkthrough
from convcli.safety import printable
from convcli.shapes import AxisFormula, conv_geometry
from convcli.vocab import PoolOp

WIDTH = 100
POOL_COLOURS = (
    "on dark_green", "on dark_blue", "on dark_red", "on dark_magenta", "on dark_cyan",
    "on orange4", "on purple4", "on deep_pink4", "on dark_olive_green3",
)  # fmt: skip
PAD_TEXT = {
    "zeros": "zeros",
    "constant": "the constant {value}",
    "reflect": "a mirror image without repeating the edge (d c b | a b c d)",
    "symmetric": "a mirror image repeating the edge (b a | a b c d)",
    "replicate": "copies of the edge pixel",
    "circular": "the opposite side (wrap-around)",
}


def num(v: float) -> str:
    """Whole numbers as integers, anything else with 2 decimals.

    >>> num(3.0), num(-0.0), num(0.125), num(-0.001), num(float("-inf"))
    ('3', '0', '0.12', '0.00', '-inf')
    """
    v = float(v)
    if not np.isfinite(v):
        return "-inf" if v < 0 else "inf" if v > 0 else "nan"
    if abs(v - round(v)) < 1e-6 * max(1.0, abs(v)):
        return str(int(round(v))) if round(v) != 0 else "0"
    text = f"{v:.2f}"
    return "0.00" if text == "-0.00" else text


def _chw_text(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape)


def _pair_text(p: Sequence[int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]},{p[1]}"


def number_grid(
    values: np.ndarray,
    *,
    rows: Sequence[int] | None = None,
    cols: Sequence[int] | None = None,
    styles: dict[tuple[int, int], str] | None = None,
    cells: dict[tuple[int, int], str] | None = None,
    title: str | None = None,
) -> Table:
    """A 2-D array as a table of numbers, with row/column labels and per-cell styles."""
    h, w = values.shape
    rows = list(range(h)) if rows is None else list(rows)
    cols = list(range(w)) if cols is None else list(cols)
    styles = styles or {}
    cells = cells or {}
    table = Table(
        title=title, title_justify="left", box=box.SQUARE, show_header=True, pad_edge=True,
        header_style="dim", padding=(0, 1), title_style="", min_width=len(title or ""),
    )  # fmt: skip
    table.add_column("", style="dim", justify="right")
    for c in cols:
        table.add_column(str(c), justify="right")
    for r in range(h):
        row: list[Any] = [str(rows[r])]
        for c in range(w):
            text = cells.get((r, c), num(values[r, c]))
            row.append(Text(text, style=styles.get((r, c), "")))
        table.add_row(*row)
    return table


def _side_by_side(*items: RenderableType, gap: int = 2) -> Table:
    grid = Table.grid(padding=(0, gap))
    for _ in items:
        grid.add_column(vertical="middle")
    grid.add_row(*items)
    return grid


def _heading(n: int, text: str) -> Text:
    out = Text(f"\n{n}. ", style="bold cyan")
    out.append(text, style="bold")
    return out


def _para(*parts: str | tuple[str, str]) -> Text:
    return Text.assemble(*parts)


def _grid_width(values: np.ndarray) -> int:
    """Columns a :func:`number_grid` of ``values`` takes (estimate)."""
    w = max((len(num(v)) for v in values.ravel()), default=1)
    return 4 + values.shape[1] * (max(w, 2) + 3)


def explain(walk: Walkthrough, *, width: int = WIDTH) -> RenderableType:
    """The whole walk-through, as one renderable."""
    parts: list[RenderableType] = [_title(walk)]
    n = 1
    for section in (
        _input_section, _padding_section, _kernel_section, _stride_section, _window_section,
        _output_section, _pool_section, _summary_section,
    ):  # fmt: skip
        got = section(walk, n, width)
        if got:
            parts.extend(got)
            n += 1
    return Group(*parts)


def _title(walk: Walkthrough) -> Text:
    o = walk.options
    g = walk.geometry
    text = Text("What a conv layer does, step by step", style="bold underline")
    bits = [
        f"{walk.kernel.name} {g.kernel_hw[0]}×{g.kernel_hw[1]}",
        f"stride {_pair_text(g.stride)}",
        f"padding {_padding_word(o['padding'])}"
        + (f" ({o['pad_mode']})" if any(g.padding) else ""),
    ]  # fmt: skip
    if g.dilation != (1, 1):
        bits.append(f"dilation {_pair_text(g.dilation)}")
    if o["flip"]:
        bits.append("flipped")
    if o["bias"] is not None:
        bits.append(f"bias {_bias_text(o['bias'])}{_in_units(walk, o['bias'])}")
    if o["activation"] not in (None, "none"):
        bits.append(str(o["activation"]))
    if walk.pool is not None:
        p = walk.pool
        pg = p.geometry
        if PoolOp.parse(p.op).is_global:
            bits.append(p.op)
        else:
            bits.append(
                f"{p.op} pool {pg.kernel_hw[0]}×{pg.kernel_hw[1]} stride {_pair_text(pg.stride)}"
            )
    text.append("\n" + " · ".join(bits), style="dim")
    return text


def _padding_word(p: Any) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, int):
        return str(p)
    return ",".join(str(v) for v in p)


def _bias_text(b: Any) -> str:
    if isinstance(b, tuple | list):
        return ",".join(num(v) for v in b)
    return num(b)


def _in_units(walk: Walkthrough, value: Any) -> str:
    """`` (= -51 in 0–255 units)`` for a value given in convolve's units; "" when unscaled."""
    u = walk.units
    if u.scale == 1.0:
        return ""
    if isinstance(value, tuple | list):
        shown = ",".join(num(v * u.scale) for v in value)
    else:
        shown = num(float(value) * u.scale)
    return f" (= {shown} in {u.name} units)"


def _input_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    c, h, w = walk.patch.shape
    u = walk.units
    units = f", in {u.name} units" if u.scale != 1.0 else ""
    out: list[RenderableType] = [
        _heading(n, f"The input: a {h}×{w} patch{units}"),
        Text(printable(walk.source), style="dim") if walk.source else Text(""),
    ]
    grids = [
        number_grid(walk.patch[ch], title=f"channel {ch}" if c > 1 else None) for ch in range(c)
    ]
    out.extend(_fit(grids, [_grid_width(walk.patch[0])] * c, width))
    if u.scale != 1.0:
        s = num(u.scale)
        out.append(
            Text(
                f"Units: convcli reads 8-bit pixels as value/{s} (0…1); here they are shown ×{s}"
                f" (whole numbers), and so is every number below: divide by {s} for what"
                f" convolve computes. The bias is given in 0…1 units, as convolve takes it, and"
                f" shown ×{s}; sigmoid and tanh are not scale-free, so they act on the true"
                f" value (÷{s}) and their result is shown ×{s}.",
                style="dim",
            )
        )
    out.append(_channels_text(walk))
    return out


def _channels_text(walk: Walkthrough) -> Text:
    c = walk.patch.shape[0]
    k = walk.kernel
    n_out = walk.output.shape[0]
    s = "s" if c != 1 else ""
    text = Text("Channels: ", style="bold")
    text.append(f"this patch has {c} channel{s}. ")
    if k.kind == "2d":
        text.append(
            f"{k.name} is one 2-D kernel: it filters each channel on its own, so {c} channel{s}"
            f" give{'s' * (c == 1)} {n_out} map{'s' if n_out != 1 else ''} (an RGB photo stays"
            " RGB).",
            style="green",
        )
        other = (
            " A bank of n kernels would give n maps per channel; a 4-D layer (c_out, c_in, kh,"
            " kw) adds up all c_in channels into each of its c_out maps."
        )
    elif k.kind == "bank":
        n = k.weights.shape[0]
        text.append(
            f"{k.name} is a bank of {n} 2-D kernels: each filters each channel on its own,"
            f" giving {n}×{c} = {n_out} maps (all channels of kernel 0 first).",
            style="green",
        )
        other = " One 2-D kernel would give one map per channel; a 4-D layer adds channels up."
    else:
        c_out, c_in = k.weights.shape[:2]
        text.append(
            f"{k.name} is a 4-D layer ({c_out}, {c_in}, kh, kw): each of its {c_out} maps adds"
            f" up its kernels' responses over all {c_in} input channel{'s' * (c_in != 1)} -"
            " what a CNN layer does.",
            style="green",
        )
        other = (
            " A 2-D kernel would filter each channel on its own; a bank of n kernels gives"
            " n maps per channel."
        )
    text.append(other, style="dim")
    return text


def _fit(items: Sequence[RenderableType], widths: list[int], width: int) -> list[RenderableType]:
    """Items side by side when they fit in ``width`` columns, else one under another."""
    if len(items) > 1 and sum(widths) + 2 * (len(items) - 1) <= width:
        return [_side_by_side(*items)]
    return list(items)


def _padding_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    g = walk.geometry
    o = walk.options
    c, h, w = walk.patch.shape
    t, b, left, right = g.padding
    word = _padding_word(o["padding"])
    out: list[RenderableType] = [_heading(n, f"Padding: {word}")]
    fy, fx = g.formulas
    if any(g.padding):
        fill = PAD_TEXT[o["pad_mode"]].format(
            value=num(o["pad_value"]) + _in_units(walk, o["pad_value"])
        )
        msg = Text(f"padding='{word}' adds ")
        sides = [
            f"{v} {noun}{'s' * (v != 1)} {where}"
            for v, noun, where in (
                (t, "row", "on top"), (b, "row", "at the bottom"),
                (left, "column", "on the left"), (right, "column", "on the right"),
            )
            if v
        ]  # fmt: skip
        msg.append(_and(sides), style="bold")
        msg.append(f", filled by {o['pad_mode']}: {fill}.")
        if word == "same":
            msg.append(
                f" 'same' pads just enough that out = ceil(in / stride):"
                f" ceil({h}/{g.stride[0]}) = {fy.size_out}, ceil({w}/{g.stride[1]}) ="
                f" {fx.size_out}; an odd total puts the extra row/column at the bottom/right."
            )
        out.append(msg)
    else:
        out.append(
            Text(f"padding='{word}' adds nothing: windows stay inside the image, so the output"
                 " is smaller than the input.")
        )  # fmt: skip
    other = "valid" if word != "valid" else "same"
    alt = conv_geometry(
        walk.patch.shape, walk.weights.shape, stride=g.stride, padding=other,
        dilation=g.dilation, groups=o["groups"],
    ) if _fits(walk, other) else None  # fmt: skip
    if alt is not None:
        at, ab, al, ar = alt.padding
        added = f"top {at}, bottom {ab}, left {al}, right {ar}" if any(alt.padding) else "nothing"
        out.append(
            Text(
                f"With --padding {other} it would add {added} and give"
                f" {alt.out_shape[1]}×{alt.out_shape[2]} instead of"
                f" {g.out_shape[1]}×{g.out_shape[2]}.",
                style="dim",
            )
        )
    if not any(g.padding):
        return out
    rows = list(range(-t, h + b))
    cols = list(range(-left, w + right))
    styles: dict[tuple[int, int], str] = {}
    win = walk.window
    for r in range(len(rows)):
        for cc in range(len(cols)):
            inside = t <= r < t + h and left <= cc < left + w
            style = "" if inside else "dim"
            if r in win.rows and cc in win.cols:
                style = (style + " bold reverse").strip()
            styles[(r, cc)] = style
    ch = win.taps[0].channel
    grid = number_grid(walk.padded[ch], rows=rows, cols=cols, styles=styles)
    pad_rows = [str(r) for r in rows if not 0 <= r < h]
    pad_cols = [str(cc) for cc in cols if not 0 <= cc < w]
    where = []
    if pad_rows:
        where.append(f"row{'s' * (len(pad_rows) > 1)} {_and(pad_rows)}")
    if pad_cols:
        where.append(f"column{'s' * (len(pad_cols) > 1)} {_and(pad_cols)}")
    out.append(
        Text(
            f"The padded input, numbered as the image ({' and '.join(where)} are padding,"
            " dimmed; the window of step 5 is highlighted):"
        )
    )
    out.append(grid)
    return out


def _and(items: Sequence[str]) -> str:
    if len(items) > 4:
        return f"{items[0]}…{items[-1]}" if items == sorted(items, key=int) else ", ".join(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def _fits(walk: Walkthrough, padding: str) -> bool:
    try:
        conv_geometry(
            walk.patch.shape, walk.weights.shape, stride=walk.geometry.stride, padding=padding,
            dilation=walk.geometry.dilation, groups=walk.options["groups"],
        )  # fmt: skip
    except ValueError:
        return False
    return True


def _kernel_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    k = walk.kernel
    g = walk.geometry
    kh, kw = g.kernel_hw
    out: list[RenderableType] = [_heading(n, f"The kernel: {k.name}, {kh}×{kw}")]
    desc = f"{k.description}. " if k.description else ""
    flip = (
        "It is rotated 180° first (--flip: true convolution, as scipy.ndimage.convolve); shown"
        " as applied."
        if walk.options["flip"]
        else "It is used as written (cross-correlation, what CNNs call convolution): the"
        " top-left weight multiplies the top-left cell of each window."
    )
    line = Text(f"{desc}{flip} Each output value looks at a {kh}×{kw} window")
    if g.dilation != (1, 1):
        sh, sw = (g.dilation[0] * (kh - 1) + 1, g.dilation[1] * (kw - 1) + 1)
        line.append(f" whose taps are {_pair_text(g.dilation)} apart (dilation), spanning"
                    f" {sh}×{sw} pixels")  # fmt: skip
    line.append(".")
    out.append(line)
    w = walk.weights
    if w.ndim == 2:
        out.append(number_grid(w))
    else:
        members = [(f"{label}", wk) for label, wk in _labelled(walk)][:4]
        grids = [number_grid(wk, title=label) for label, wk in members]
        out.extend(_fit(grids, [_grid_width(wk) for _, wk in members], width))
        total = int(np.prod(w.shape[:-2]))
        if total > len(members):
            out.append(Text(f"… and {total - len(members)} more", style="dim"))
    return out


def _labelled(walk: Walkthrough) -> list[tuple[str, np.ndarray]]:
    k = walk.kernel
    w = walk.weights
    if w.ndim == 3:
        labels = k.labels if len(k.labels) == w.shape[0] else [str(i) for i in range(w.shape[0])]
        return [(labels[i], w[i]) for i in range(w.shape[0])]
    return [(f"out {o} / in {i}", w[o, i]) for o in range(w.shape[0]) for i in range(w.shape[1])]


def _stride_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    g = walk.geometry
    c, h, w = walk.patch.shape
    t, b, left, right = g.padding
    kh, kw = g.kernel_hw
    (sh, sw), (dh, dw) = g.stride, g.dilation
    ho, wo = g.out_shape[1:]
    starts_r = [i * sh - t for i in range(ho)]
    starts_c = [j * sw - left for j in range(wo)]
    out: list[RenderableType] = [
        _heading(n, f"Stride {_pair_text(g.stride)}: which windows are visited")
    ]
    msg = Text(
        f"The window moves {sh} row{'s' * (sh != 1)} down and {sw} column{'s' * (sw != 1)}"
        f" right at a time. Its top-left corner visits rows {_list(starts_r)} and columns"
        f" {_list(starts_c)}: {ho}×{wo} = {ho * wo} windows, one output value each."
    )
    if sh > 1 or sw > 1:
        msg.append(" A stride of 2 or more skips positions, so the output is smaller.")
    out.append(msg)
    for warning in g.warnings:
        out.append(Text.assemble(("note: ", "bold yellow"), warning))
    # window centres over the padded grid
    ay, ax = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
    centres = {(i * sh + ay, j * sw + ax) for i in range(ho) for j in range(wo)}
    hp, wp = h + t + b, w + left + right
    grid = Table(box=box.SIMPLE, show_header=True, pad_edge=False, header_style="dim",
                 padding=(0, 1), show_edge=False)  # fmt: skip
    grid.add_column("", style="dim", justify="right")
    for cc in range(wp):
        grid.add_column(str(cc - left), justify="right")
    for r in range(hp):
        row: list[Any] = [str(r - t)]
        for cc in range(wp):
            pad = not (t <= r < t + h and left <= cc < left + w)
            if (r, cc) in centres:
                row.append(Text("●", style="bold yellow"))
            else:
                row.append(Text("░" if pad else "·", style="dim"))
        grid.add_row(*row)
    even = (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2
    where = "centre" if not even else "centre (rounded up-left: the kernel is even)"
    out.append(Text(f"● = the {where} of each visited window; ░ = padding", style="dim"))
    out.append(grid)
    return out


def _list(v: Sequence[int]) -> str:
    if len(v) > 6:
        return ", ".join(str(x) for x in v[:3]) + ", …, " + str(v[-1])
    return ", ".join(str(x) for x in v)


def _window_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    win = walk.window
    g = walk.geometry
    t, left = g.padding[0], g.padding[2]
    r0, r1 = win.rows[0] - t, win.rows[-1] - t
    c0, c1 = win.cols[0] - left, win.cols[-1] - left
    map_name = f" of map {win.map}" if walk.output.shape[0] > 1 else ""
    out: list[RenderableType] = [
        _heading(n, f"One window: output[{win.row}, {win.col}]{map_name}"),
        Text(
            f"The window for output row {win.row}, column {win.col} covers input rows"
            f" {r0}…{r1} and columns {c0}…{c1}. Multiply each cell by the weight on top of it,"
            " then add everything up:"
        ),
    ]
    for tap in win.taps:
        if len(win.taps) > 1:
            out.append(Text(f"input channel {tap.channel}:", style="bold"))
        rows = [r - t for r in win.rows]
        cols = [cc - left for cc in win.cols]
        a = number_grid(tap.values, rows=rows, cols=cols, title="input window")
        k = number_grid(tap.weights, title="kernel")
        p = number_grid(tap.products, title="products")
        widths = [_grid_width(tap.values), 1, _grid_width(tap.weights), 1,
                  _grid_width(tap.products)]  # fmt: skip
        if sum(widths) + 8 <= width:
            out.append(_side_by_side(a, Text("×", style="bold"), k, Text("=", style="bold"), p))
        else:
            out.extend([a, k, p])
        terms = [num(v) for v in tap.products.ravel()]
        s = Text("sum: ", style="bold")
        s.append(" + ".join(f"({x})" if x.startswith("-") else x for x in terms))
        s.append(f" = {num(tap.total)}", style="bold")
        out.append(s)
    if len(win.taps) > 1:
        out.append(
            Text(
                "sum over channels: "
                + " + ".join(num(tp.total) for tp in win.taps)
                + f" = {num(win.total)}",
                style="bold",
            )
        )
    pre = win.pre
    u = walk.units
    steps = Text()
    if walk.options["bias"] is not None:
        steps.append("bias: ", style="bold")
        steps.append(f"{num(win.total)} + {_signed(win.bias)} = {num(pre)}")
        given = ""
        if u.scale != 1.0:
            given = f"; given as {num(win.bias / u.scale)}, shown ×{num(u.scale)}"
        steps.append(
            f"  (the bias is added to every output value of the map{given})\n", style="dim"
        )
    name, slope = parse_activation(win.activation)
    if name != "none" and win.scale_free:
        steps.append("activation: ", style="bold")
        steps.append(f"{_act_text(name, slope, pre)} = {num(win.value)}")
        steps.append(f"  ({_act_doc(name, slope)})\n", style="dim")
    elif name != "none":  # sigmoid, tanh on the true value, shown in the walk's units
        sc = num(u.scale)
        steps.append("activation: ", style="bold")
        steps.append(
            f"{name}({num(pre)} / {sc}) = {name}({win.true_pre:.4f}) = {win.true_value:.4f},"
            f" shown ×{sc} = {num(win.value)}"
        )
        steps.append(
            f"  ({_act_doc(name, slope)}; it is not scale-free, so it acts on the true"
            f" value, ÷{sc})\n",
            style="dim",
        )
    steps.append("→ ", style="bold")
    got = float(walk.output[win.map, win.row, win.col])
    steps.append(f"output[{win.row}, {win.col}] = {num(win.value)}", style="bold green")
    if u.scale != 1.0:
        steps.append(
            f"   (conv2d computed {got / u.scale:.6g}, ×{num(u.scale)} = {num(got)})", style="dim"
        )
    else:
        steps.append(f"   (conv2d computed {num(got)})", style="dim")
    out.append(steps)
    return out


def _signed(v: float) -> str:
    return f"({num(v)})" if v < 0 else num(v)


def _act_text(name: str, slope: float, v: float) -> str:
    if name == "leaky-relu":
        return f"leaky-relu({num(v)}) = " + (num(v) if v > 0 else f"{num(slope)} × {_signed(v)}")
    if name == "relu":
        return f"relu({num(v)}) = max(0, {num(v)})"
    return f"{name}({num(v)})"


def _act_doc(name: str, slope: float) -> str:
    return {
        "relu": "relu keeps positive values and turns negative ones into 0",
        "leaky-relu": f"negative values are multiplied by {num(slope)} instead of zeroed",
        "sigmoid": "sigmoid squashes any value into 0…1: 1 / (1 + e^-x)",
        "tanh": "tanh squashes any value into -1…1",
        "abs": "abs drops the sign: edges of both directions count",
    }[name]


def _formula_lines(formulas: tuple[AxisFormula, AxisFormula], pool: bool) -> Text:
    fy, fx = formulas
    text = Text()
    generic = (
        "out = floor((in + pads - kernel) / stride) + 1"
        if pool
        else "out = floor((in + pads - dilation·(kernel-1) - 1) / stride) + 1"
    )
    if fy.ceil_mode:
        generic = generic.replace("floor", "ceil")
    text.append(generic + "\n", style="dim")
    if fy.text() == fx.text():
        text.append("H, W: ", style="dim")
        text.append(fy.text(), style="cyan")
    else:
        text.append("H: ", style="dim")
        text.append(fy.text(), style="cyan")
        text.append("\nW: ", style="dim")
        text.append(fx.text(), style="cyan")
    return text


def _output_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    g = walk.geometry
    out_c, ho, wo = walk.output.shape
    out: list[RenderableType] = [
        _heading(n, f"The output: {out_c}×{ho}×{wo}"),
        _formula_lines(g.formulas, pool=False),
    ]
    win = walk.window
    has_act = parse_activation(walk.options["activation"])[0] != "none"
    shown = list(range(min(out_c, 4)))
    grids: list[RenderableType] = []
    widths: list[int] = []
    for m in shown:
        styles = {(win.row, win.col): "bold reverse"} if m == win.map else {}
        label = _map_label(walk, m)
        if has_act:
            grids.append(number_grid(walk.pre_activation[m], title=f"{label} before activation"))
            widths.append(_grid_width(walk.pre_activation[m]))
        grids.append(number_grid(walk.output[m], styles=styles, title=label))
        widths.append(_grid_width(walk.output[m]))
    out.extend(_fit(grids, widths, width))
    if out_c > len(shown):
        out.append(Text(f"… and {out_c - len(shown)} more maps", style="dim"))
    return out


def _map_label(walk: Walkthrough, m: int) -> str:
    k = walk.kernel
    c = walk.patch.shape[0]
    if k.kind == "bank":
        labels = k.labels if len(k.labels) == k.weights.shape[0] else ()
        member = labels[m // c] if labels else str(m // c)
        return f"map {m}: {member}" + (f" on channel {m % c}" if c > 1 else "")
    if k.kind == "layer" or walk.output.shape[0] > 1:
        return f"map {m}"
    return "output map"


def _pool_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    p = walk.pool
    if p is None:
        return []
    g = p.geometry
    y = walk.output[0]
    h, w = y.shape
    (kh, kw), (sh, sw) = g.kernel_hw, g.stride
    glob = PoolOp.parse(p.op).is_global
    what = p.op if glob else f"{p.op} pooling, {kh}×{kw} windows, stride {_pair_text(g.stride)}"
    out: list[RenderableType] = [_heading(n, f"Pooling: {what}")]
    doc = {
        "max": "Max pooling keeps the largest value of each window: the strongest response"
        " survives, its exact position within the window does not.",
        "avg": "Average pooling takes the mean of each window: a blur followed by subsampling.",
        "min": "Min pooling keeps the smallest value of each window.",
        "global-max": "Global max pooling keeps the largest value of the whole map.",
        "global-avg": "Global average pooling keeps the mean of the whole map.",
    }[p.op]
    msg = Text(doc + " Each map is pooled on its own; no weights are learned.")
    if not glob:
        if sh < kh or sw < kw:
            msg.append(
                f" The stride ({_pair_text(g.stride)}) is smaller than the window, so windows"
                " overlap: some values take part in two or more windows.",
                style="bold",
            )
        elif sh > kh or sw > kw:
            msg.append(" The stride is larger than the window: some values are never looked at.")
        else:
            msg.append(" Stride = window size: the windows tile the map without overlap.")
        if any(g.padding):
            t, b, left, right = g.padding
            pad = f" Padding (top {t}, bottom {b}, left {left}, right {right}) is implicit: "
            if p.op == "avg":
                pad += (
                    "zeros that count in each window's divisor (--no-count-include-pad"
                    " divides by the real cells only)."
                    if p.options["count_include_pad"]
                    else "left out of each average (--no-count-include-pad)."
                )
            else:
                pad += f"{'-inf' if p.op == 'max' else '+inf'}, so it never wins."
            msg.append(pad)
    out.append(msg)
    out.append(_formula_lines(g.formulas, pool=True))
    if walk.output.shape[0] > 1:
        out.append(Text(f"Shown for {_map_label(walk, 0)} (every map is pooled the same way).",
                        style="dim"))  # fmt: skip
    # which window each cell of the conv output belongs to
    names = [_window_name(i) for i in range(len(p.windows))]
    member: dict[tuple[int, int], list[int]] = {}
    for idx, pw in enumerate(p.windows):
        for r in pw.rows:
            for cc in pw.cols:
                member.setdefault((r, cc), []).append(idx)
    styles, labels = {}, {}
    most = max((len(ids) for ids in member.values()), default=0)
    for r in range(h):
        for cc in range(w):
            ids = member.get((r, cc), [])
            if ids:
                styles[(r, cc)] = "white " + POOL_COLOURS[ids[0] % len(POOL_COLOURS)]
                if len(ids) > 1:
                    styles[(r, cc)] += " underline"
            if most <= 2:
                labels[(r, cc)] = f"{''.join(names[i] for i in ids) or '·'} {num(y[r, cc])}"
            else:
                labels[(r, cc)] = f"{num(y[r, cc])} ({len(ids)})" if ids else f"· {num(y[r, cc])}"
    grid = number_grid(y, styles=styles, cells=labels, title="conv output, by window")
    pooled_styles = {
        (pw.row, pw.col): "white " + POOL_COLOURS[i % len(POOL_COLOURS)]
        for i, pw in enumerate(p.windows)
    }
    pooled_cells = {
        (pw.row, pw.col): f"{names[i]} {num(pw.value)}" for i, pw in enumerate(p.windows)
    }
    pooled = number_grid(
        p.pooled[0], styles=pooled_styles, cells=pooled_cells, title=f"{p.op} pooled"
    )
    other = number_grid(p.other[0], title=f"with {p.other_op} instead")
    grid_w = 4 + w * (max(len(v) for v in labels.values()) + 3)
    pw_w = 4 + p.pooled.shape[2] * (max(len(v) for v in pooled_cells.values()) + 3)
    out.extend(_fit([grid, pooled, other], [grid_w, pw_w, _grid_width(p.other[0])], width))
    legend = "letters name the windows"
    if most == 2:
        legend += "; a cell with two letters is in both windows (underlined)"
    elif most > 2:
        legend += "; (n) = the value is in n windows (underlined when n > 1)"
    if any((r, cc) not in member for r in range(h) for cc in range(w)):
        legend += "; · = in no window: dropped"
    out.append(Text(legend, style="dim"))
    for warning in g.warnings:
        out.append(
            Text.assemble(
                ("note: ", "bold yellow"),
                warning,
                " (--ceil-mode keeps a last partial window)" if not g.formulas[0].ceil_mode else "",
            )
        )
    lines = Text()
    limit = 12 if len(p.windows[0].rows) * len(p.windows[0].cols) <= 4 else 6
    for i, pw in enumerate(p.windows[:limit]):
        vals = [y[r, cc] for r in pw.rows for cc in pw.cols]
        lines.append(f"{names[i]}", style="bold " + POOL_COLOURS[i % len(POOL_COLOURS)])
        lines.append(
            f" row{'s' * (len(pw.rows) > 1)} {_span(pw.rows)},"
            f" col{'s' * (len(pw.cols) > 1)} {_span(pw.cols)}: "
        )
        lines.append(_pool_expr(p, vals, pw))
        lines.append(f" = {num(pw.value)}", style="bold")
        if i + 1 < min(len(p.windows), limit):
            lines.append("\n")
    if len(p.windows) > limit:
        lines.append(f"\n… and {len(p.windows) - limit} more windows", style="dim")
    out.append(lines)
    return out


def _window_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


def _span(v: Sequence[int]) -> str:
    return f"{v[0]}" if len(v) == 1 else f"{v[0]}–{v[-1]}"


def _pool_expr(p: PoolWalk, vals: list[float], pw: PoolWindow) -> str:
    shown = ", ".join(num(v) for v in vals[:16]) + (", …" if len(vals) > 16 else "")
    op = p.op.replace("global-", "")
    if op != "avg":
        kh, kw = p.geometry.kernel_hw
        pads = 0 if PoolOp.parse(p.op).is_global else kh * kw - len(vals)
        extra = f", {pads} padding cell{'s' * (pads != 1)}" if pads else ""
        return f"{op}({shown}{extra})"
    if p.op == "global-avg":
        divisor = len(vals)
    elif p.options["count_include_pad"]:
        # PyTorch divides by the window clipped to the padded input
        divisor = _avg_divisor(p, pw)
    else:
        divisor = len(vals)
    terms = " + ".join(_signed(v) for v in vals[:16]) + (" + …" if len(vals) > 16 else "")
    return f"({terms}) / {divisor}"


def _avg_divisor(p: PoolWalk, pw: PoolWindow) -> int:
    g = p.geometry
    (kh, kw), (sh, sw) = g.kernel_hw, g.stride
    t, b, left, right = g.padding
    h, w = g.in_shape[1:]
    r0, c0 = pw.row * sh - t, pw.col * sw - left
    rows = min(r0 + kh, h + b) - max(r0, -t)
    cols = min(c0 + kw, w + right) - max(c0, -left)
    return rows * cols


def _summary_section(walk: Walkthrough, n: int, width: int) -> list[RenderableType]:
    chain = Text(_chw_text(walk.patch.shape), style="bold")
    for stage, shape, _, _ in walk.plan_shapes:
        chain.append(f"  →{stage}→  ", style="dim")
        chain.append(_chw_text(shape), style="bold")
    _, _, rf, jump = walk.plan_shapes[-1]
    text = Text(
        f"Each final value depends on a {rf[0]}×{rf[1]} square of input pixels (its receptive"
        f" field); neighbouring final values are {_pair_text(jump)}"
        f" pixel{'s' * (jump != (1, 1))} apart (effective"
        " stride). Stack more layers and both grow - that is how a CNN sees large shapes with"
        " small kernels."
    )
    more = Text(
        "Try: --stride 2 · --padding valid · --dilation 2 · --bias -0.2 --activation relu ·"
        " --pool avg · --pool-size 3 --pool-stride 1 (overlapping) · -k sobel (a bank) ·"
        " --input photo.jpg · --animate walk.gif",
        style="dim",
    )
    return [_heading(n, "Sizes"), chain, text, more]


__all__ = ["explain", "num"]
