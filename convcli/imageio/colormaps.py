"""Colour maps for one-channel pictures (``--cmap``): 256-entry lookup tables.

The colours come from the `cmap <https://pypi.org/project/cmap/>`_ package (a
dependency-free catalogue of the scientific colour maps, whose tables equal
matplotlib's), imported only when a colour map is used. Each name here maps to
one fully namespaced cmap name, so no alias is ambiguous.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from convcli.errors import ParameterError
from convcli.vocab import Colormap

#: ``--cmap`` names (:class:`convcli.vocab.Colormap`) → the cmap catalogue's names.
#: ``coolwarm`` and ``rdbu`` are diverging (for signed results: 0 is the neutral middle).
_CATALOGUE: dict[str, str] = {
    "gray": "matlab:gray",
    "viridis": "bids:viridis",
    "magma": "bids:magma",
    "inferno": "bids:inferno",
    "plasma": "bids:plasma",
    "cividis": "cividis:cividis",
    "coolwarm": "matplotlib:coolwarm",
    "rdbu": "colorbrewer:RdBu",
}


def colormap_name(name: str) -> str:
    """The canonical ``--cmap`` name (``RdBu`` → ``rdbu``, ``grey`` → ``gray``).

    >>> colormap_name("RdBu"), colormap_name("Grey")
    ('rdbu', 'gray')
    """
    return Colormap.parse(name).value


@cache
def lut(name: str) -> np.ndarray:
    """The ``(256, 3)`` uint8 lookup table of a colour map: level ``i`` → RGB.

    Entry ``i`` is the map's colour at ``i / 255``, rounded to the nearest level
    (as matplotlib's ``cmap(np.linspace(0, 1, 256))`` rounded).

    >>> t = lut("viridis"); t.shape, t.dtype, t[0].tolist(), t[-1].tolist()
    ((256, 3), dtype('uint8'), [68, 1, 84], [253, 231, 37])
    """
    key = colormap_name(name)
    try:
        from cmap import Colormap as CmapColormap
    except ImportError:  # pragma: no cover - cmap is a dependency
        raise ParameterError("colour maps need the 'cmap' package (pip install cmap)") from None
    rgba = np.asarray(CmapColormap(_CATALOGUE[key]).lut(256), dtype=np.float64)
    table = np.floor(rgba[:, :3] * 255 + 0.5).clip(0, 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def apply_colormap(levels: np.ndarray, name: str) -> np.ndarray:
    """Colour one-channel 8-bit levels: ``(H, W)`` or ``(1, H, W)`` uint8 → ``(3, H, W)``.

    >>> apply_colormap(np.array([[0, 255]], np.uint8), "gray")[:, 0].tolist()
    [[0, 255], [0, 255], [0, 255]]
    """
    px = np.asarray(levels)
    if px.ndim == 3:
        if px.shape[0] != 1:
            raise ParameterError(f"a colour map colours one channel, got {px.shape[0]}")
        px = px[0]
    if px.dtype != np.uint8:
        raise ParameterError(f"a colour map takes 8-bit levels, got {px.dtype}")
    return np.moveaxis(lut(name)[px], -1, 0)


__all__ = ["apply_colormap", "colormap_name", "lut"]
