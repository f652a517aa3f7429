"""Deflate streams for png and tiff, by ISA-L (the ``isal`` package), else by zlib.

Both write and read standard zlib / raw deflate data; any reader inflates
either. ISA-L is the faster by far, measured on the Up-filtered rows of a
blurred 2048² RGB photo (12.6 MB): level 1 compresses in 27 ms against zlib's
116 ms (level 1, run-length strategy), to 3.94 MB against 3.63 MB, and
inflates in 24 ms against 49 ms. ``isal`` is a dependency; zlib is the fallback
where it is missing.
"""

from __future__ import annotations

import zlib
from typing import Any

_engine: Any
try:
    from isal import isal_zlib as _engine

    ENGINE = "isal"
except ImportError:  # pragma: no cover - where isal is not installed
    _engine = zlib
    ENGINE = "zlib"

#: Errors of broken compressed data, from either engine.
ERRORS: tuple[type[BaseException], ...] = (zlib.error, getattr(_engine, "error", zlib.error))

SYNC_FLUSH = zlib.Z_SYNC_FLUSH
FINISH = zlib.Z_FINISH


def compressor(wbits: int = 15) -> Any:
    """A fast ``compressobj``: ``wbits`` 15 for a zlib stream, -15 for raw deflate."""
    if ENGINE == "isal":
        return _engine.compressobj(1, _engine.DEFLATED, wbits)
    return zlib.compressobj(1, zlib.DEFLATED, wbits, 9, zlib.Z_RLE)


def decompressor() -> Any:
    """A ``decompressobj`` of a zlib stream (``decompress(data, max_length)``,
    ``unconsumed_tail`` as zlib's)."""
    return _engine.decompressobj()


def adler32(data: Any, value: int = 1) -> int:
    return int(_engine.adler32(data, value)) & 0xFFFFFFFF


def crc32(data: Any, value: int = 0) -> int:
    return int(_engine.crc32(data, value)) & 0xFFFFFFFF
