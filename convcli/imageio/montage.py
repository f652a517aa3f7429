"""Montage: one labelled grid image of every map."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convcli.errors import ParameterError
from convcli.imageio._common import index_labels
from convcli.imageio.pixels import to_pixels
from convcli.imageio.tone import Hint, RangeSpec, ToneMap


def montage_image(
    maps: np.ndarray,
    labels: Sequence[str] = (),
    *,
    max_tile: int = 256,
    min_tile: int = 64,
    gap: int = 4,
    range_mode: str | RangeSpec = "auto",
    hint: Hint | None = None,
    groups: Sequence[tuple[int, int]] | None = None,
    cmap: str | None = None,
    colorbar: bool = False,
) -> Image.Image:
    """A grid of tiles, one per map, each labelled.

    Each tile is mapped to levels with :func:`~convcli.imageio.to_pixels`
    (``range_mode``, ``hint``): on its own, or with the other tiles of its
    group — ``groups`` lists ``(start, stop)`` map ranges that share one mapping
    (the channels of one file; ``[(0, C)]``: all tiles, so their brightness
    compares). Tiles keep the maps' aspect ratio:
    larger maps are shrunk (long side ``max_tile``), tiny ones enlarged by a
    whole factor with nearest-neighbour (long side at least ``min_tile``), so
    pooled maps stay blocky and readable. The grid has ``ceil(sqrt(C))``
    columns on a white background; each label is drawn under its tile with
    Pillow's default font (with its own range when tiles are mapped each on
    its own and ``colorbar`` is on).

    Parameters
    ----------
    maps : numpy.ndarray
        ``(C, H, W)`` or ``(H, W)``.
    labels : sequence of str
        One per map (default: the map indices).
    range_mode, hint, groups
        The mapping of the tiles (see above).
    cmap : str, optional
        A colour map of :mod:`convcli.imageio.colormaps` for the tiles.
    colorbar : bool
        Add a bar under the grid showing which colour is which value.

    Returns
    -------
    PIL.Image.Image
        Mode ``L`` (``RGB`` with ``cmap``).

    Examples
    --------
    >>> im = montage_image(np.zeros((5, 8, 8)), ["a", "b", "c", "d", "e"])
    >>> im.mode, im.width   # 3 columns of 64-px tiles (8 px enlarged 8x) and 4-px gaps
    ('L', 208)
    >>> montage_image(np.zeros((2, 8, 8)), cmap="viridis", colorbar=True).mode
    'RGB'
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    n, h, w = arr.shape
    tags = [str(t) for t in labels] if labels else index_labels(n)
    if len(tags) != n:
        raise ParameterError(f"{len(tags)} labels given for {n} maps")
    table = None
    if cmap is not None:
        from convcli.imageio.colormaps import lut

        table = lut(cmap)
    spans = list(groups) if groups else [(i, i + 1) for i in range(n)]
    if sorted(i for a, b in spans for i in range(a, b)) != list(range(n)):
        raise ParameterError(f"montage groups {spans} do not cover the {n} maps once each")
    tiles: list[np.ndarray] = [np.empty(0, np.uint8)] * n
    tones: list[ToneMap] = [ToneMap("image", 0.0, 0.0, 1.0)] * n
    for a, b in spans:
        px, tone = to_pixels(arr[a:b], range_mode=range_mode, hint=hint)
        for i in range(a, b):
            tiles[i], tones[i] = px[i - a], tone
    shared = len(spans) == 1
    if colorbar and not shared:
        tags = [f"{t} {_range_text(m)}" for t, m in zip(tags, tones, strict=True)]
    font = _font()
    text_h = _text_height(font)
    tw, th, scale = _tile(h, w, max_tile, min_tile)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell_w, cell_h = tw + gap, th + text_h + 2 + gap
    width = gap + cols * cell_w
    bar_h = (12 + text_h + 2 + gap) if colorbar else 0
    mode = "RGB" if table is not None else "L"
    white = (255, 255, 255) if mode == "RGB" else 255
    black = (0, 0, 0) if mode == "RGB" else 0
    sheet = Image.new(mode, (width, gap + rows * cell_h + bar_h), white)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        tile = _tile_image(tiles[i], table)
        if (tw, th) != (w, h):
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BOX
            tile = tile.resize((tw, th), resample)
        x0 = gap + (i % cols) * cell_w
        y0 = gap + (i // cols) * cell_h
        sheet.paste(tile, (x0, y0))
        draw.text((x0, y0 + th + 1), _fit_text(draw, font, tags[i], tw), fill=black, font=font)
    if colorbar:
        _draw_colorbar(sheet, draw, font, table, tones[0] if shared else None,
                       top=gap + rows * cell_h, gap=gap, fill=black)  # fmt: skip
    return sheet


def _tile_image(levels: np.ndarray, table: np.ndarray | None) -> Image.Image:
    if table is not None:
        return Image.fromarray(np.ascontiguousarray(table[levels]), mode="RGB")
    return Image.fromarray(np.ascontiguousarray(levels))


def _range_text(m: ToneMap) -> str:
    """A tile's range in a few characters: ``±0.83`` or ``0..1.2``."""
    if m.kind in ("signed", "offset"):
        return f"±{m.hi:.2g}"
    return f"{m.lo:.2g}..{m.hi:.2g}"


def _draw_colorbar(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    font: Any,
    table: np.ndarray | None,
    tone: ToneMap | None,
    *,
    top: int,
    gap: int,
    fill: Any,
) -> None:
    """A gradient from black to white level with its values under it."""
    bar_w = max(64, min(256, sheet.width - 2 * gap))
    ramp = np.tile(np.linspace(0, 255, bar_w).round().astype(np.uint8), (12, 1))
    sheet.paste(_tile_image(ramp, table), (gap, top))
    y = top + 13
    if tone is None:
        draw.text((gap, y), "each tile: its own range (see labels)", fill=fill, font=font)
        return
    lo, hi = tone.lo, tone.hi
    marks = [(0, lo), (bar_w, hi)]
    if tone.kind in ("signed", "offset"):
        marks.insert(1, (bar_w // 2, 0.0))
    for x, value in marks:
        text = ("|x| " if tone.kind == "abs" and x == 0 else "") + f"{value:.3g}"
        tw = draw.textlength(text, font=font)
        left = gap + min(max(0, x - tw / 2), bar_w - tw)
        draw.text((left, y), text, fill=fill, font=font)


def _tile(h: int, w: int, max_tile: int, min_tile: int) -> tuple[int, int, float]:
    """Tile width, height and scale of an ``h`` × ``w`` map."""
    long_side = max(h, w)
    if long_side > max_tile:
        scale = max_tile / long_side
    elif long_side < min_tile:
        scale = float(math.ceil(min_tile / long_side))
    else:
        scale = 1.0
    return max(1, round(w * scale)), max(1, round(h * scale)), scale


#: Height of a tile's label line with Pillow's default font at size 11 (plus 1), for estimates.
LABEL_HEIGHT = 14


def montage_size(
    n: int,
    h: int,
    w: int,
    max_tile: int = 256,
    min_tile: int = 64,
    gap: int = 4,
    text_h: int = LABEL_HEIGHT,
) -> tuple[int, int]:
    """``(width, height)`` of the montage of ``n`` maps of ``h`` × ``w``, without drawing it.

    >>> montage_size(5, 8, 8)   # 3 columns, 2 rows of 64-px tiles
    (208, 172)
    >>> montage_size(4000, 256, 256)   # 64 columns, 63 rows of 256-px tiles
    (16644, 17392)
    """
    tw, th, _ = _tile(h, w, max_tile, min_tile)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return gap + cols * (tw + gap), gap + rows * (th + text_h + 2 + gap)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType / before 10.1
        return ImageFont.load_default()


def _text_height(font: Any) -> int:
    box = font.getbbox("Ag")
    return int(box[3]) + 1


def _fit_text(draw: ImageDraw.ImageDraw, font: Any, text: str, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".." if text else ""
