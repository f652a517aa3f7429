"""A kernel's filters as one picture: a grid of small tiles (the classic first-layer picture).

:func:`filter_grid` draws the weights, not what they do to an image:

* a layer ``(c_out, 3, kh, kw)``: one RGB tile per filter (input channel 0 is
  red, 1 green, 2 blue: the order of an RGB image), in a near-square grid;
* a layer ``(c_out, 1, kh, kw)``, a bank ``(n, kh, kw)`` or a 2-D kernel: one grey
  tile per filter, in a near-square grid;
* any other layer: one row per output filter, one grey tile per input channel.

Each tile is scaled symmetrically around 0, so mid-grey is a zero weight, white
(or full colour) the most positive and black the most negative:
``scale="filter"`` (default) scales each output filter by its own largest
``|w|`` (every filter at full contrast, as the classic pictures are drawn;
the input slices of one filter share its scale); ``scale="layer"`` uses one
scale for the whole kernel, so weak filters look weak. Tiles are enlarged
with nearest-neighbour (each weight a visible square) and separated by white
gaps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.vocab import GridScale

#: Long side a tile is enlarged to, at least (nearest-neighbour, whole factors).
TILE_TARGET = 48
#: Longest side of the whole picture; the zoom shrinks (to 1) to stay under it.
MAX_SIDE = 2048


@dataclass(frozen=True)
class GridLayout:
    """How :func:`filter_grid` lays out the tiles of a kernel of a given shape."""

    mode: str  # "rgb" | "grey" (one tile per filter) | "slices" (a row per filter)
    rows: int
    columns: int
    tile: tuple[int, int]  # kh, kw of one weight tile
    zoom: int
    gap: int
    count: int  # tiles drawn

    @property
    def size(self) -> tuple[int, int]:
        """The picture's (height, width) in pixels."""
        th, tw = self.tile[0] * self.zoom, self.tile[1] * self.zoom
        return (
            self.rows * th + (self.rows + 1) * self.gap,
            self.columns * tw + (self.columns + 1) * self.gap,
        )

    def describe(self) -> str:
        """One line for people: what the tiles are and how they are laid out.

        >>> grid_layout((64, 3, 7, 7)).describe()
        '64 filters as RGB tiles, 8×8 grid, 7×7 weights shown ×7'
        """
        what = {
            "rgb": f"{self.count} filters as RGB tiles",
            "grey": f"{self.count} filter{'s' if self.count != 1 else ''} as grey tiles",
            "slices": f"{self.rows} filters × {self.columns} input channels as grey tiles",
        }[self.mode]
        grid = f"{self.rows}×{self.columns} grid" if self.mode != "slices" else "one row per filter"
        kh, kw = self.tile
        zoom = f" shown ×{self.zoom}" if self.zoom > 1 else ""
        return f"{what}, {grid}, {kh}×{kw} weights{zoom}"


def grid_layout(shape: Sequence[int], *, zoom: int | None = None, gap: int = 2) -> GridLayout:
    """The layout :func:`filter_grid` uses for a kernel of ``shape`` (2-D, 3-D or 4-D).

    >>> g = grid_layout((16, 8, 3, 3))
    >>> g.mode, g.rows, g.columns, g.zoom, g.size
    ('slices', 16, 8, 16, (802, 402))
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3, 4) or min(shape) < 1:
        raise ShapeError(f"a kernel is 2-D, 3-D or 4-D with no empty axis; got shape {shape}")
    kh, kw = shape[-2:]
    if len(shape) == 4 and shape[1] not in (1, 3):
        mode, rows, columns, count = "slices", shape[0], shape[1], shape[0] * shape[1]
    else:
        count = 1 if len(shape) == 2 else shape[0]
        mode = "rgb" if len(shape) == 4 and shape[1] == 3 else "grey"
        columns = math.ceil(math.sqrt(count))
        rows = math.ceil(count / columns)
    if gap < 0:
        raise ParameterError(f"gap must be >= 0, got {gap}")
    if zoom is None:
        zoom = max(1, math.ceil(TILE_TARGET / max(kh, kw)))
        fit = min(
            (MAX_SIDE - (rows + 1) * gap) // (rows * kh),
            (MAX_SIDE - (columns + 1) * gap) // (columns * kw),
        )
        zoom = max(1, min(zoom, fit))
    elif zoom < 1:
        raise ParameterError(f"zoom must be >= 1, got {zoom}")
    return GridLayout(mode, rows, columns, (kh, kw), zoom, gap, count)


def filter_grid(
    weights: np.ndarray, *, scale: str = "filter", zoom: int | None = None, gap: int = 2
) -> np.ndarray:
    """Draw a kernel's filters as a grid of tiles (see the module docstring).

    Parameters
    ----------
    weights : ndarray
        ``(kh, kw)``, ``(n, kh, kw)`` or ``(c_out, c_in, kh, kw)``.
    scale : ``"filter"`` or ``"layer"``
        Symmetric around 0 per output filter (default) or for the whole kernel.
    zoom : int, optional
        Nearest-neighbour enlargement of each weight (default: tiles of about
        48 px, the whole picture at most 2048 px a side).
    gap : int
        White pixels between tiles and around the grid.

    Returns
    -------
    ndarray
        ``(3, H, W)`` uint8 for RGB tiles, else ``(1, H, W)`` uint8 (0 = most
        negative, 128 = zero, 255 = most positive).

    Examples
    --------
    >>> w = np.zeros((2, 3, 1, 1)); w[0, 0] = 1.0; w[1, 2] = -1.0   # a red and an anti-blue
    >>> px = filter_grid(w, zoom=1, gap=0)
    >>> px.shape, px[:, 0, 0].tolist(), px[:, 0, 1].tolist()
    ((3, 1, 2), [255, 128, 128], [128, 128, 0])
    """
    scale = GridScale.parse(scale).value
    w = np.asarray(weights, dtype=np.float64)
    layout = grid_layout(w.shape, zoom=zoom, gap=gap)
    if not np.all(np.isfinite(w)):
        raise ParameterError("weights hold NaN or infinite values")
    kh, kw = layout.tile
    # one scale per output filter (axis 0), or one for everything
    if w.ndim == 2:
        filters = w[None, None]
    elif w.ndim == 3:
        filters = w[:, None]
    else:
        filters = w
    if scale == "filter":
        peak = np.abs(filters).max(axis=(1, 2, 3), keepdims=True)
    else:
        peak = np.full((1, 1, 1, 1), np.abs(filters).max())
    unit = filters / np.where(peak > 0, peak, 1.0)  # in [-1, 1]
    levels = np.clip(np.floor(128.0 + 127.5 * unit + 0.5), 0, 255).astype(np.uint8)
    # a zero weight is exactly 128, +max 255, -max 0 (128 - 127.5 rounds to 1: pin it)
    levels[unit <= -1.0] = 0

    channels = 3 if layout.mode == "rgb" else 1
    height, width = layout.size
    out = np.full((channels, height, width), 255, dtype=np.uint8)
    z, g = layout.zoom, layout.gap
    th, tw = kh * z, kw * z

    def place(tile: np.ndarray, row: int, col: int) -> None:
        y, x = g + row * (th + g), g + col * (tw + g)
        out[:, y : y + th, x : x + tw] = np.repeat(np.repeat(tile, z, axis=-2), z, axis=-1)

    if layout.mode == "slices":
        for o in range(layout.rows):
            for i in range(layout.columns):
                place(levels[o, i][None], o, i)
    else:
        for n in range(layout.count):
            place(levels[n], n // layout.columns, n % layout.columns)
    return out


def save_png(path: str | os.PathLike[str], pixels: np.ndarray, *, force: bool = False) -> Path:
    """Write ``(C, H, W)`` uint8 pixels as a png, atomically (never half a file).

    Refuses (:class:`~convcli.errors.OutputError`) an existing file without
    ``force``, and a name that does not end in ``.png`` (``ParameterError``).
    """
    from convcli.imageio.png import write_png
    from convcli.imageio.write import _commit, check_outputs

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ParameterError(f"{p}: the picture is written as png; name a .png file")
    check_outputs([p], force=force)
    _commit([(p, lambda fh: write_png(fh, pixels))], force=force)
    return p
