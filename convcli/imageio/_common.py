"""Small helpers shared by the imageio modules."""

from __future__ import annotations

#: Channel names of a picture with 1..4 channels.
CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def index_labels(n: int) -> list[str]:
    """``0 .. n-1`` zero-padded to one width: ``['00', '01', ..., '11']`` for 12."""
    width = len(str(n - 1)) if n > 1 else 1
    return [str(i).zfill(width) for i in range(n)]
