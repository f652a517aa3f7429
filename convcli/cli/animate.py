"""``convcli explain --animate FILE``: the walk-through drawn as frames (GIF, or APNG for .png).

Two steps, both presentation only — every number comes from the
:class:`~convcli.pipeline.walk.Walkthrough`, formatted as the text view formats
it (:func:`~convcli.cli.explain_view.num`):

1. :func:`frames` turns a walk into a list of :class:`Frame` — plain data: the
   grids with the text and role of every cell, the window's box, the visited
   centres, a caption and a duration. Tests read the numbers here.
2. :func:`render` draws one frame with Pillow; :func:`save_animation` draws them
   all and writes the file atomically.

The frames, in order (``1 + H_out·W_out + P + 1`` of them):

- one opening frame: the padded input (padding in grey), the kernel, the empty
  output;
- one frame per output value, in reading order: the window on the padded input
  (its taps tinted, its box outlined), the centres of the windows visited so far
  (blue dots), the output cell filling in with its value;
- one frame per pooling window (``P`` = the pooled map's H·W; 0 with
  ``--pool none``): the window on the output map, the pooled cell filling in;
- one closing frame with everything filled in.

Output is deterministic: the same walk gives the same bytes (one fixed palette
for every frame, no timestamps). The default walk (6×6 patch, 3×3 kernel, same
padding, 2×2 max pool) makes 47 frames, 1500×514 pixels, about 37 s: a 0.33 MB
GIF or a 0.47 MB APNG, drawn and written in about 2 s.

Examples
--------
>>> import numpy as np
>>> from convcli.pipeline.walk import walkthrough
>>> walk = walkthrough(np.arange(16.0).reshape(4, 4), np.ones((3, 3)), padding="valid")
>>> fs = frames(walk)
>>> len(fs) == frame_count(walk) == 1 + 2 * 2 + 1 + 1
True
>>> [c.text for c in fs[1].grid("output").cells[0]]
['45', '']
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from convcli.cli.explain_view import num
from convcli.errors import ParameterError
from convcli.pipeline.walk import Walkthrough, window_cells
from convcli.vocab import AnimationFormat, PoolOp

if TYPE_CHECKING:
    from PIL import Image, ImageFont

#: Milliseconds each kind of frame stays on screen.
DURATIONS = {"intro": 2500, "conv": 600, "pool": 900, "final": 5000}

# --------------------------------------------------------------------------- the frames as data


@dataclass(frozen=True)
class Cell:
    """One cell: its text and its role (which decides the colours)."""

    text: str
    role: str  # input, pad, weight, empty, output, new, pooled, in-window, pool-new


@dataclass(frozen=True)
class Grid:
    """A titled grid of cells, with row/column labels and what is marked on it."""

    name: str  # input, kernel, output, pooled
    title: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    cells: tuple[tuple[Cell, ...], ...]
    box: tuple[int, int, int, int] | None = None  # top, left, bottom, right (inclusive)
    box_role: str = "window"
    marks: frozenset[tuple[int, int]] = frozenset()  # visited window centres

    def texts(self) -> list[list[str]]:
        return [[c.text for c in row] for row in self.cells]


@dataclass(frozen=True)
class Frame:
    """One picture of the animation."""

    phase: str  # intro, conv, pool, final
    grids: tuple[Grid, ...]
    caption: tuple[str, ...]
    duration: int  # milliseconds
    focus: tuple[str, int, int] | None = None  # the cell that fills in: (grid, row, col)

    @property
    def legend(self) -> str:
        if self.phase == "pool":
            return "coloured box: the pooling window    purple: the pooled map, filling in"
        return (
            "grey: padding    orange: the window (its taps tinted)"
            "    ● centres of the windows visited"
        )

    def grid(self, name: str) -> Grid:
        return next(g for g in self.grids if g.name == name)


def frame_count(walk: Walkthrough) -> int:
    """``1 + H_out·W_out + P + 1``: opening, one per output value, one per pooling window
    (``P``, 0 without pooling), closing."""
    _, ho, wo = walk.output.shape
    pools = len(walk.pool.windows) if walk.pool is not None else 0
    return 1 + ho * wo + pools + 1


def frames(walk: Walkthrough) -> list[Frame]:
    """Every frame of the animation of ``walk`` (see the module docstring)."""
    g = walk.geometry
    _, ho, wo = walk.output.shape
    tap = walk.window.taps[0]
    padded = walk.padded[tap.channel]
    t, _, left, _ = g.padding
    h, w = walk.patch.shape[1:]
    ph, pw = padded.shape
    pad_cells = [
        [Cell(num(padded[r, c]), "input" if t <= r < t + h and left <= c < left + w else "pad")
         for c in range(pw)]
        for r in range(ph)
    ]  # fmt: skip
    input_rows = tuple(str(r - t) for r in range(ph))
    input_cols = tuple(str(c - left) for c in range(pw))
    channels = walk.patch.shape[0]
    in_title = "padded input" + (f", channel {tap.channel} of {channels}" if channels > 1 else "")
    kernel = Grid(
        "kernel", _kernel_title(walk), tuple(map(str, range(tap.weights.shape[0]))),
        tuple(map(str, range(tap.weights.shape[1]))),
        tuple(tuple(Cell(num(v), "weight") for v in row) for row in tap.weights),
    )  # fmt: skip
    out_title = _output_title(walk)
    out_rows, out_cols = tuple(map(str, range(ho))), tuple(map(str, range(wo)))
    pool = walk.pool
    pooled_shape = pool.pooled.shape[1:] if pool is not None else (0, 0)
    pooled_title = _pooled_title(walk)

    def out_grid(filled: int, new: int | None, **kw: Any) -> Grid:
        cells = tuple(
            tuple(
                Cell(num(walk.output[0, i, j]) if i * wo + j < filled else "",
                     "new" if i * wo + j == new else "output" if i * wo + j < filled else "empty")
                for j in range(wo)
            )
            for i in range(ho)
        )  # fmt: skip
        return Grid("output", out_title, out_rows, out_cols, cells, **kw)

    def pooled_grid(filled: int, new: int | None) -> Grid:
        assert pool is not None
        pwo = pooled_shape[1]
        cells = tuple(
            tuple(
                Cell(num(pool.pooled[0, i, j]) if i * pwo + j < filled else "",
                     "pool-new" if i * pwo + j == new else "pooled" if i * pwo + j < filled
                     else "empty")
                for j in range(pwo)
            )
            for i in range(pooled_shape[0])
        )  # fmt: skip
        return Grid(
            "pooled", pooled_title, tuple(map(str, range(pooled_shape[0]))),
            tuple(map(str, range(pwo))), cells,
        )  # fmt: skip

    def input_grid(marks: frozenset[tuple[int, int]], win: tuple[int, int] | None) -> Grid:
        cells = pad_cells
        box = None
        if win is not None:
            rows, cols = window_cells(g, *win)
            taps = {(r, c) for r in rows for c in cols}
            cells = [
                [Cell(x.text, "tap") if (r, c) in taps else x for c, x in enumerate(row)]
                for r, row in enumerate(pad_cells)
            ]
            box = (rows[0], cols[0], rows[-1], cols[-1])
        return Grid(
            "input", in_title, input_rows, input_cols,
            tuple(tuple(row) for row in cells), box=box, marks=marks,
        )  # fmt: skip

    def with_pooled(*grids: Grid, filled: int = 0, new: int | None = None) -> tuple[Grid, ...]:
        return (*grids, pooled_grid(filled, new)) if pool is not None else grids

    out: list[Frame] = []
    out.append(Frame(
        "intro", with_pooled(input_grid(frozenset(), None), kernel, out_grid(0, None)),
        _intro_caption(walk), DURATIONS["intro"],
    ))  # fmt: skip
    marks: frozenset[tuple[int, int]] = frozenset()
    for i in range(ho):
        for j in range(wo):
            rows, cols = window_cells(g, i, j)
            marks = marks | {(rows[(len(rows) - 1) // 2], cols[(len(cols) - 1) // 2])}
            n = i * wo + j
            out.append(Frame(
                "conv",
                with_pooled(input_grid(marks, (i, j)), kernel, out_grid(n + 1, n)),
                _conv_caption(walk, i, j, rows, cols), DURATIONS["conv"], ("output", i, j),
            ))  # fmt: skip
    done_input = input_grid(marks, None)
    if pool is not None:
        colours = len(POOL_FILLS)
        for k, win in enumerate(pool.windows):
            box = (win.rows[0], win.cols[0], win.rows[-1], win.cols[-1])
            grid = out_grid(ho * wo, None, box=box, box_role=f"pool{k % colours}")
            inside = {(r, c) for r in win.rows for c in win.cols}
            grid = Grid(
                grid.name, grid.title, grid.rows, grid.cols,
                tuple(tuple(Cell(x.text, f"in-pool{k % colours}") if (r, c) in inside else x
                            for c, x in enumerate(row)) for r, row in enumerate(grid.cells)),
                box=grid.box, box_role=grid.box_role,
            )  # fmt: skip
            out.append(Frame(
                "pool", (done_input, kernel, grid, pooled_grid(k + 1, k)),
                _pool_caption(walk, k), DURATIONS["pool"], ("pooled", win.row, win.col),
            ))  # fmt: skip
    final = with_pooled(done_input, kernel, out_grid(ho * wo, None),
                        filled=len(pool.windows) if pool is not None else 0)  # fmt: skip
    out.append(Frame("final", final, _final_caption(walk), DURATIONS["final"]))
    return out


def _kernel_title(walk: Walkthrough) -> str:
    k = walk.kernel
    if k.kind == "2d":
        return f"kernel {k.name}"
    if k.kind == "bank":
        return f"kernel {k.labels[0] if k.labels else k.name + '[0]'}"
    return f"kernel {k.name} [0, {walk.window.taps[0].channel}]"


def _output_title(walk: Walkthrough) -> str:
    n = walk.output.shape[0]
    return "output" if n == 1 else f"output map 0 of {n}"


def _pooled_title(walk: Walkthrough) -> str:
    p = walk.pool
    if p is None:
        return ""
    if PoolOp.parse(p.op).is_global:
        return p.op
    size = p.geometry.kernel_hw
    return f"{p.op} pool {size[0]}×{size[1]}"


def _units_note(walk: Walkthrough) -> str:
    u = walk.units
    if u.scale == 1.0:
        return ""
    return f" Numbers in {u.name} units ({num(u.scale)}× what convolve computes)."


def _intro_caption(walk: Walkthrough) -> tuple[str, ...]:
    g = walk.geometry
    o = walk.options
    c, h, w = walk.patch.shape
    kh, kw = g.kernel_hw
    t, b, left, right = g.padding
    word = o["padding"] if isinstance(o["padding"], str) else "explicit"
    if any(g.padding):
        pads = (
            f"padding '{word}' adds top {t}, bottom {b}, left {left}, right {right}"
            f" ({o['pad_mode']}, grey)"
        )
    else:
        pads = f"padding '{word}' adds nothing"
    stride = g.stride[0] if g.stride[0] == g.stride[1] else f"{g.stride[0]},{g.stride[1]}"
    first = f"A {kh}×{kw} kernel slides over a {h}×{w} patch with stride {stride}; {pads}."
    bias = " + bias" if o["bias"] is not None else ""
    act = o["activation"] if o["activation"] not in (None, "none") else ""
    second = f"Each output value = sum(window × kernel){bias}" + (f", then {act}." if act else ".")
    return (first, second + _units_note(walk))


def _conv_caption(
    walk: Walkthrough, i: int, j: int, rows: tuple[int, ...], cols: tuple[int, ...]
) -> tuple[str, ...]:
    t, left = walk.geometry.padding[0], walk.geometry.padding[2]
    o = walk.options
    bias = " + bias" if o["bias"] is not None else ""
    pre = walk.pre_activation[0, i, j]
    value = walk.output[0, i, j]
    line = f"output[{i}, {j}] = sum(window × kernel){bias} = {num(pre)}"
    if o["activation"] not in (None, "none"):
        act = str(o["activation"])
        if not walk.window.scale_free:  # sigmoid, tanh act on the true value
            sc = num(walk.units.scale)
            act = f"{act}(x / {sc}) × {sc}"
        line += f"  →  {act}  →  {num(value)}"
    channels = len(walk.window.taps)
    where = (f"window: rows {rows[0] - t}…{rows[-1] - t}, columns {cols[0] - left}…"
             f"{cols[-1] - left} (centre marked ●)")  # fmt: skip
    if channels > 1:
        where += f"; the sum runs over all {channels} input channels (channel 0 shown)"
    return (line, where)


def _pool_caption(walk: Walkthrough, k: int) -> tuple[str, ...]:
    p = walk.pool
    assert p is not None
    win = p.windows[k]
    values = [num(walk.output[0, r, c]) for r in win.rows for c in win.cols]
    shown = ", ".join(values[:12]) + (", …" if len(values) > 12 else "")
    op = p.op.replace("global-", "")
    line = f"pooled[{win.row}, {win.col}] = {op}({shown}) = {num(win.value)}"
    g = p.geometry
    span = (f"rows {win.rows[0]}…{win.rows[-1]}, columns {win.cols[0]}…{win.cols[-1]} of the"
            " output")  # fmt: skip
    if not PoolOp.parse(p.op).is_global:
        sh, sw = g.stride
        span += f"; the window moves by {sh if sh == sw else f'{sh},{sw}'}"
    return (line, span)


def _final_caption(walk: Walkthrough) -> tuple[str, ...]:
    chain = "×".join(map(str, walk.patch.shape))
    for stage, shape, _, _ in walk.plan_shapes:
        chain += f"  →  {stage}  →  " + "×".join(map(str, shape))
    _, _, rf, jump = walk.plan_shapes[-1]
    return (
        chain,
        f"Each final value sees a {rf[0]}×{rf[1]} square of input pixels (receptive field);"
        f" neighbours are {jump[0] if jump[0] == jump[1] else f'{jump[0]}×{jump[1]}'} pixel"
        f"{'s' * (jump != (1, 1))} apart (effective stride).",
    )


# --------------------------------------------------------------------------- drawing

BACKGROUND = (255, 255, 255)
INK = (25, 25, 25)
FAINT = (120, 120, 120)
FILLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # role: (fill, text)
    "input": ((255, 255, 255), INK),
    "pad": ((222, 222, 222), (105, 105, 105)),
    "tap": ((253, 222, 186), INK),
    "weight": ((214, 230, 247), INK),
    "empty": ((250, 250, 250), INK),
    "output": ((224, 243, 222), INK),
    "new": ((92, 184, 92), (255, 255, 255)),
    "pooled": ((238, 232, 250), INK),
    "pool-new": ((128, 100, 200), (255, 255, 255)),
}
LINES = {"window": (230, 120, 20), "grid": (190, 190, 190), "mark": (40, 100, 210)}
POOL_FILLS = (
    ((255, 236, 179), (214, 160, 0)),
    ((206, 232, 255), (30, 120, 210)),
    ((255, 214, 214), (200, 50, 50)),
    ((214, 245, 214), (40, 150, 60)),
)  # fmt: skip  (light fill, box colour) per pooling window, in turn
for _k, (_fill, _line) in enumerate(POOL_FILLS):
    FILLS[f"in-pool{_k}"] = (_fill, INK)
    LINES[f"pool{_k}"] = _line

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


@cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed, else Pillow's own scalable default font."""
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for path in (FONT_DIR / name, Path(name)):
        try:
            return ImageFont.truetype(str(path), size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)  # Pillow >= 10.1 (pyproject.toml)


@dataclass(frozen=True)
class Layout:
    """Where everything goes: one layout for all frames, so the picture never jumps."""

    width: int
    height: int
    cell: tuple[int, int]  # cell width, height
    origins: dict[str, tuple[int, int]] = field(default_factory=dict)  # grid → first cell x, y
    title_y: int = 0
    caption_y: int = 0

    def cell_box(self, grid: str, r: int, c: int) -> tuple[int, int, int, int]:
        """The pixel rectangle (x0, y0, x1, y1) of a cell (x1, y1 exclusive)."""
        x, y = self.origins[grid]
        cw, ch = self.cell
        return x + c * cw, y + r * ch, x + (c + 1) * cw, y + (r + 1) * ch


MARGIN = 24
GAP = 44
LABEL = 30  # room for row labels / column labels
TITLE_H = 28
CAPTION_LINE = 24
NUMBER_SIZE = 17


def layout(fs: list[Frame]) -> Layout:
    """Cell size from the widest number in any frame; grids side by side."""
    font = _font(NUMBER_SIZE)
    widest = max(
        (font.getlength(c.text) for f in fs for g in f.grids for row in g.cells for c in row),
        default=0.0,
    )
    cw, ch = max(50, int(widest) + 28), 36  # room for the centre dot beside the number
    first = fs[0]
    x, y0 = MARGIN, MARGIN + TITLE_H + 8
    origins = {}
    bottom = y0
    for g in first.grids:
        gx, gy = x + LABEL, y0 + TITLE_H + LABEL - 8
        origins[g.name] = (gx, gy)
        x = gx + len(g.cols) * cw + GAP
        bottom = max(bottom, gy + len(g.rows) * ch)
    width = x - GAP + MARGIN
    # captions wrap at the picture's width
    lines = max(len(_wrap(f.caption, width - 2 * MARGIN)) for f in fs)
    caption_y = bottom + 20
    height = caption_y + (lines + 1) * CAPTION_LINE + MARGIN
    return Layout(width, height, (cw, ch), origins, MARGIN, caption_y)


def _wrap(caption: tuple[str, ...], width: int) -> list[str]:
    font = _font(15)
    per_line = max(20, int(width / max(font.getlength("x"), 1.0)))
    out: list[str] = []
    for line in caption:
        out.extend(textwrap.wrap(line, per_line) or [""])
    return out


def render(frame: Frame, lay: Layout, *, heading: str = "") -> Image.Image:
    """One frame as an RGB picture."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (lay.width, lay.height), BACKGROUND)
    d = ImageDraw.Draw(img)
    if heading:
        d.text((MARGIN, lay.title_y), heading, fill=INK, font=_font(18, bold=True))
    number, small, label = _font(NUMBER_SIZE), _font(13), _font(15, bold=True)
    cw, ch = lay.cell
    for g in frame.grids:
        x0, y0 = lay.origins[g.name]
        d.text((x0 - LABEL, y0 - TITLE_H - LABEL + 6), g.title, fill=INK, font=label)
        for c, text in enumerate(g.cols):
            d.text((x0 + c * cw + cw / 2, y0 - 10), text, fill=FAINT, font=small, anchor="ms")
        for r, text in enumerate(g.rows):
            d.text((x0 - 8, y0 + r * ch + ch / 2), text, fill=FAINT, font=small, anchor="rm")
        for r, row in enumerate(g.cells):
            for c, cell in enumerate(row):
                fill, ink = FILLS[cell.role]
                box = lay.cell_box(g.name, r, c)
                d.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=fill,
                            outline=LINES["grid"])  # fmt: skip
                if cell.text:
                    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
                    d.text(centre, cell.text, fill=ink, font=number, anchor="mm")
        for r, c in sorted(g.marks):
            bx = lay.cell_box(g.name, r, c)
            d.ellipse((bx[0] + 3, bx[1] + 3, bx[0] + 10, bx[1] + 10), fill=LINES["mark"])
        if g.box is not None:
            top, left, bottom, right = g.box
            a, b = lay.cell_box(g.name, top, left), lay.cell_box(g.name, bottom, right)
            d.rectangle((a[0] - 2, a[1] - 2, b[2] + 1, b[3] + 1), outline=LINES[g.box_role],
                        width=4)  # fmt: skip
    y = lay.caption_y
    for line in _wrap(frame.caption, lay.width - 2 * MARGIN):
        d.text((MARGIN, y), line, fill=INK, font=_font(15))
        y += CAPTION_LINE
    d.text((MARGIN, lay.height - MARGIN - 14), frame.legend, fill=FAINT, font=_font(13))
    return img


def heading_of(walk: Walkthrough) -> str:
    """The line on top of every frame: kernel, stride, padding, bias, activation, pooling."""
    g = walk.geometry
    o = walk.options
    kh, kw = g.kernel_hw
    bits = [f"{walk.kernel.name} {kh}×{kw}", f"stride {g.stride[0]}"
            if g.stride[0] == g.stride[1] else f"stride {g.stride[0]},{g.stride[1]}"]  # fmt: skip
    word = o["padding"] if isinstance(o["padding"], str) else "explicit"
    bits.append(f"padding {word}")
    if g.dilation != (1, 1):
        bits.append(f"dilation {g.dilation[0]}")
    if o["bias"] is not None:
        u = walk.units
        given = walk.window.bias / u.scale
        bits.append(f"bias {num(given)}" + (f" (shown {num(walk.window.bias)})"
                                             if u.scale != 1.0 else ""))  # fmt: skip
    if o["activation"] not in (None, "none"):
        bits.append(str(o["activation"]))
    if walk.pool is not None:
        bits.append(_pooled_title(walk) + f" stride {walk.pool.geometry.stride[0]}")
    return "  ·  ".join(bits)


def render_all(walk: Walkthrough) -> tuple[list[Image.Image], list[int], Layout]:
    """Every frame drawn, their durations, and the layout they share."""
    fs = frames(walk)
    lay = layout(fs)
    heading = heading_of(walk)
    return [render(f, lay, heading=heading) for f in fs], [f.duration for f in fs], lay


@dataclass(frozen=True)
class Animation:
    """What :func:`save_animation` wrote."""

    path: Path
    frames: int
    size: tuple[int, int]
    seconds: float
    format: str  # gif | apng


def animation_format(path: Path | str) -> AnimationFormat:
    """GIF for .gif, APNG for .png / .apng; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    fmt = AnimationFormat.of_extension(suffix)
    if fmt is None:
        raise ParameterError(
            f"--animate {path}: write a .gif or a .png (animated PNG),"
            f" not {suffix or 'no suffix'!r}"
        )
    return fmt


def save_animation(walk: Walkthrough, path: Path | str, *, force: bool = False) -> Animation:
    """Draw every frame of ``walk`` and write them to ``path`` (GIF or APNG), atomically."""
    from convcli.errors import OutputError
    from convcli.imageio import check_outputs, write_file

    fmt = animation_format(path)
    target = Path(path)
    if not force and target.exists() and not target.is_dir():
        raise OutputError(f"{target} exists (use --force to overwrite it)")
    check_outputs([target], force=True)  # a folder there, a file where a folder should be
    pictures, durations, lay = render_all(walk)
    # one palette for every frame: small files, and no colour shifts between frames
    images = [_indexed(im) for im in pictures]

    def encode(fh: BinaryIO) -> None:
        images[0].save(
            fh, format=fmt.pillow, save_all=True, append_images=images[1:], duration=durations,
            loop=0, optimize=True,
        )  # fmt: skip

    write_file(target, encode, force=force)
    seconds = sum(durations) / 1000
    return Animation(target, len(images), (lay.width, lay.height), seconds, fmt.value)


@cache
def _palette() -> np.ndarray:
    """The fixed palette, ``(n, 3)``: the colours used, and the blends that anti-aliased
    text makes between each text colour and each background."""
    colours: list[tuple[int, ...]] = sorted({BACKGROUND, INK, FAINT, *LINES.values()})
    for fill, ink in FILLS.values():
        for k in range(8):
            colours.append(
                tuple(round(f + (i - f) * k / 7) for f, i in zip(fill, ink, strict=True))
            )
    for line in (FAINT, INK, *LINES.values()):
        for k in range(1, 7):
            colours.append(tuple(round(255 + (c - 255) * k / 7) for c in line))
    return np.array(list(dict.fromkeys(colours))[:256], dtype=np.int32)


def _indexed(img: Image.Image) -> Image.Image:
    """``img`` in the fixed palette, each colour mapped to its nearest entry (exactly: a
    colour of the palette keeps its value, unlike Pillow's approximate ``quantize``)."""
    from PIL import Image

    palette = _palette()
    rgb = np.asarray(img.convert("RGB"), dtype=np.int32)
    keys = ((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).ravel()
    pal_keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(pal_keys)
    sorted_keys = pal_keys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    index = order[pos]
    other = sorted_keys[pos] != keys  # colours not in the palette: the nearest entry
    if other.any():
        unique, inverse = np.unique(keys[other], return_inverse=True)
        colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
        distance = ((colours[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
        index[other] = distance.argmin(axis=1)[inverse]
    out = Image.fromarray(index.astype(np.uint8).reshape(rgb.shape[:2]), mode="P")
    out.putpalette([int(v) for v in palette.ravel()])
    return out


__all__ = [
    "Animation", "Cell", "Frame", "Grid", "Layout", "animation_format", "frame_count",
    "frames", "heading_of", "layout", "render", "render_all", "save_animation",
]  # fmt: skip
