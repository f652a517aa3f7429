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


def montage_image(
    maps: np.ndarray,
    labels: Sequence[str] = (),
    *,
    max_tile: int = 256,
    min_tile: int = 64,
    gap: int = 4,
) -> Image.Image:
    """A grid of grey tiles, one per map, each min-max normalised on its own, labelled.

    Tiles keep the maps' aspect ratio: larger maps are shrunk (long side
    ``max_tile``), tiny ones enlarged by a whole factor with nearest-neighbour
    (long side at least ``min_tile``), so pooled maps stay blocky and readable.
    The grid has ``ceil(sqrt(C))`` columns on a white background; each label is
    drawn under its tile with Pillow's default font.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(C, H, W)`` or ``(H, W)``.
    labels : sequence of str
        One per map (default: the map indices).

    Returns
    -------
    PIL.Image.Image
        Mode ``L``.

    Examples
    --------
    >>> im = montage_image(np.zeros((5, 8, 8)), ["a", "b", "c", "d", "e"])
    >>> im.mode, im.width   # 3 columns of 64-px tiles (8 px enlarged 8x) and 4-px gaps
    ('L', 208)
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    n, h, w = arr.shape
    tags = list(labels) if labels else index_labels(n)
    if len(tags) != n:
        raise ParameterError(f"{len(tags)} labels given for {n} maps")
    font = _font()
    text_h = _text_height(font)
    tw, th, scale = _tile(h, w, max_tile, min_tile)
    cols = math.ceil(math.sqrt(n))
    cell_w, cell_h = tw + gap, th + text_h + 2 + gap
    sheet = Image.new("L", montage_size(n, h, w, max_tile, min_tile, gap, text_h), 255)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        px, _ = to_pixels(arr[i], range_mode="minmax")
        tile = Image.fromarray(px)
        if (tw, th) != (w, h):
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BOX
            tile = tile.resize((tw, th), resample)
        x0 = gap + (i % cols) * cell_w
        y0 = gap + (i // cols) * cell_h
        sheet.paste(tile, (x0, y0))
        draw.text((x0, y0 + th + 1), _fit_text(draw, font, str(tags[i]), tw), fill=0, font=font)
    return sheet


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
