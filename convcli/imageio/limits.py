"""The decompression-bomb guard: how many pixels an image may have (``--max-pixels``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from convcli.errors import ImageError, ParameterError

#: ``max_pixels`` meaning "Pillow's own limit" (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485).
DEFAULT = "default"
_PIL_LOCK = threading.Lock()


def resolve_max_pixels(max_pixels: int | str | None) -> int | None:
    """The limit in force: a number of pixels, None (no limit) or Pillow's default.

    >>> resolve_max_pixels("none"), resolve_max_pixels("3e8"), resolve_max_pixels(10)
    (None, 300000000, 10)
    >>> resolve_max_pixels("default") == Image.MAX_IMAGE_PIXELS
    True
    """
    if isinstance(max_pixels, str):
        text = max_pixels.strip().lower()
        if text == DEFAULT:
            return Image.MAX_IMAGE_PIXELS
        if text in ("none", "off", "unlimited"):
            return None
        try:
            max_pixels = int(float(text))
        except (ValueError, OverflowError):
            raise ParameterError(
                f"--max-pixels takes a number of pixels or 'none', got {max_pixels!r}"
            ) from None
    if max_pixels is not None and (isinstance(max_pixels, bool) or max_pixels < 1):
        raise ParameterError(f"--max-pixels must be a number >= 1 or 'none', got {max_pixels!r}")
    return max_pixels


@contextmanager
def pillow_limit(limit: int | None) -> Iterator[None]:
    """``PIL.Image.MAX_IMAGE_PIXELS`` set to ``limit`` while the block runs (under a lock).

    Pillow checks its process-wide limit when it opens a file; use this around
    ``Image.open`` only (it is quick: the header), never around a decode.
    """
    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def check_pixels(label: str, w: int, h: int, limit: int | None) -> None:
    """Raise :class:`ImageError` when a ``w``×``h`` image is over ``limit``."""
    if limit is not None and w * h > limit:
        raise ImageError(
            f"{label}: too many pixels, refusing to decode ({w}x{h} = {w * h} pixels > the"
            f" limit of {limit}; raise it with --max-pixels N or lift it with --max-pixels none)"
        )
