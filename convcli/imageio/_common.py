"""Small helpers shared by the imageio modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

#: Channel names of a picture with 1..4 channels.
CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def index_labels(n: int) -> list[str]:
    """``0 .. n-1`` zero-padded to one width: ``['00', '01', ..., '11']`` for 12."""
    width = len(str(n - 1)) if n > 1 else 1
    return [str(i).zfill(width) for i in range(n)]


def tile_rawmode(img: Image.Image) -> str:
    """The raw mode of an opened image's first tile (``"RGB;16B"`` for a 16-bit colour
    PNG that Pillow presents as ``RGB``); ``""`` once loaded or when there is none."""
    tile = getattr(img, "tile", None) or []
    try:
        args = tile[0][3]
    except (IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""
