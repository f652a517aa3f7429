"""Decode one input image on a thread while the rest of the program starts.

A single-input run spends its first tenth of a second or more importing numpy,
OpenCV and the pipeline, and then about as long decoding its input. Pillow's
PNG, JPEG and WebP decoders release the GIL, so the two can overlap:
:func:`start`, called first by a command, opens the image's header in the
calling thread and decodes the pixels on a daemon thread;
:func:`~convcli.imageio.read.load_image` then calls :func:`take`, which hands
the decoded image over when it is the same, unchanged file, decoded without
error. In every other case :func:`take` gives None and the normal read runs,
with its normal errors: a prefetch changes how soon the pixels are there, never
what they are or what a bad file says. Nothing here raises.

Only Pillow-level modules are imported here (no numpy), so :func:`start` runs
before the heavy imports.

What is prefetched: one regular, non-empty file (not ``-``), PNG, JPEG or
WebP by its header, with 8-bit samples (16-bit PNG has its own decoder in
:mod:`convcli.imageio.read`), at most :data:`MAX_PIXELS` pixels and at most
the ``max_pixels`` limit of the read. It is opened under the warning filters and
the pixel limit that :func:`~convcli.imageio.read.load_image` uses; the decode
itself (``Image.load``) issues no Python warnings for these formats (Pillow
warns about odd files when it opens them, not when it decodes them).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import warnings
import zlib
from contextlib import nullcontext
from typing import Any

from PIL import Image

from convcli.imageio._common import tile_rawmode
from convcli.imageio.limits import pillow_limit, resolve_max_pixels

#: Most pixels a prefetched image may have (2**24, e.g. 4096×4096: 48 MiB of RGB).
#: Bigger images go to the tiled path under the default memory budget, which reads
#: regions, never the whole picture; decoding one in advance would waste its memory.
MAX_PIXELS = 1 << 24

#: Formats whose decoders release the GIL, by the first bytes of the file.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)

#: Modes of 8-bit (or fewer) samples; ``I;16``, ``I`` and ``F`` go the normal way.
_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
)

Identity = tuple[int, int, int, int]


class _Prefetch:
    """One image being decoded on a daemon thread."""

    def __init__(self, path: str, identity: Identity, img: Image.Image) -> None:
        self.path = path  # absolute, as it was when started
        self.identity = identity
        self.img = img
        self.failed = False
        self.thread = threading.Thread(target=self._load, name="convcli-prefetch", daemon=True)

    def _load(self) -> None:
        try:
            if self.img.format == "PNG":
                whole = _one_idat(self.path, self.identity[2])
                if whole is not None:  # the same image, its data in one chunk
                    # no warning filters here (they are process-wide): the header
                    # opened without one in the main thread, and these are its bytes
                    img = Image.open(whole, formats=["PNG"])
                    self.img.close()
                    self.img = img
            # the decoder gets everything at once: one call with the GIL released
            self.img.decodermaxblock = max(self.identity[2], 1 << 16)  # type: ignore[attr-defined]
            self.img.load()
        except BaseException:  # any failure: the normal read runs again and reports it
            self.failed = True


_LOCK = threading.Lock()
_pending: _Prefetch | None = None


def start(source: str, *, max_pixels: int | str | None = "default") -> None:
    """Start decoding ``source`` on a thread when it can be (see the module's rules).

    ``max_pixels`` is the limit the read will use (``--max-pixels``). Calling
    again drops what an earlier call started. Never raises.
    """
    drop()
    try:
        prefetch = _open(source, max_pixels)
    except Exception:  # whatever went wrong, the normal read meets it again
        return
    if prefetch is None:
        return
    global _pending
    with _LOCK:
        _pending = prefetch
    prefetch.thread.start()


def take(label: str) -> Image.Image | None:
    """The decoded image of ``label`` when :func:`start` prefetched that file, else None.

    Waits for the decode to end. Returns the image only when it was started for
    the same path, decoded without error, and the file's identity (device, inode,
    size, modification time) is what it was when started; otherwise closes what
    it had and returns None. One-shot: the next call returns None. The caller
    owns (and closes) the image.
    """
    global _pending
    with _LOCK:
        prefetch, _pending = _pending, None
    if prefetch is None:
        return None
    prefetch.thread.join()
    img = prefetch.img
    try:
        same = (
            not prefetch.failed
            and os.path.abspath(label) == prefetch.path
            and _identity(os.stat(label)) == prefetch.identity
        )
    except (OSError, TypeError, ValueError):
        same = False
    if same:
        return img
    img.close()
    return None


def drop() -> None:
    """Forget a prefetch that nothing will take (a run that reads by region instead)."""
    img = take("")  # a path that never matches
    if img is not None:  # pragma: no cover (take("") gives None)
        img.close()


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open(source: str, max_pixels: int | str | None) -> _Prefetch | None:
    """The header of ``source`` opened, when the module's rules allow a prefetch."""
    if not isinstance(source, str) or source in ("", "-"):
        return None
    limit = resolve_max_pixels(max_pixels)
    st = os.stat(source)
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return None
    with open(source, "rb") as fh:
        head = fh.read(16)
    fmt = _format_of(head)
    if fmt is None:
        return None
    img = _open_image(source, fmt, limit)
    if img is None:
        return None
    try:
        pixels = img.width * img.height
        if (
            img.format == fmt
            and img.mode in _MODES
            and ";16" not in tile_rawmode(img)
            and pixels <= MAX_PIXELS
            and (limit is None or pixels <= limit)
        ):
            return _Prefetch(os.path.abspath(source), _identity(st), img)
    except BaseException:
        img.close()
        raise
    img.close()
    return None


def _open_image(source: str, fmt: str, limit: int | None) -> Image.Image | None:
    """The image opened as load_image opens it; None when Pillow warned about it."""
    with warnings.catch_warnings(record=True) as seen:
        # load_image ignores Pillow's warnings about odd but readable files; such
        # a file is simply not prefetched. The decompression-bomb warning is an error.
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pillow_limit(limit) if limit != Image.MAX_IMAGE_PIXELS else nullcontext():
            img = Image.open(source, formats=[fmt])
    if seen:
        img.close()
        return None
    return img


def _one_idat(path: str, size: int) -> io.BytesIO | None:
    """The PNG file with its image data in one IDAT chunk (None: leave it as it is).

    Pillow decodes a PNG one IDAT chunk at a time and needs the GIL between
    chunks; encoders write chunks of 8–64 KiB, so a decode on a thread crawls
    while the main thread imports (measured: 185 ms instead of 110 ms for a
    2048² photo in 64 KiB chunks). Joined, the chunks decode in one call, at full
    speed beside the imports. Every other chunk is kept, in order; a file whose
    IDAT chunks are not consecutive, or that ends early, is left alone. The
    chunks are joined by one copy with the GIL held briefly (no slicing copies).
    """
    with open(path, "rb") as fh:
        data = fh.read(size + 1)
    view = memoryview(data)
    pos, first, last, n_idat = 8, 0, 0, 0
    parts: list[Any] = []
    while pos + 12 <= len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + n
        if end > len(data):
            return None
        if kind == b"IDAT":
            if n_idat and last != pos:
                return None  # IDAT chunks apart
            if not n_idat:
                first = pos
            parts.append(view[pos + 8 : pos + 8 + n])
            n_idat += 1
            last = end
        pos = end
        if kind == b"IEND":
            break
    if not n_idat or pos != len(data):
        return None
    body = sum(len(p) for p in parts)
    out = bytearray().join([view[:first], struct.pack(">I", body), b"IDAT", *parts, bytes(4)])
    crc = zlib.crc32(memoryview(out)[first + 4 : first + 8 + body]) & 0xFFFFFFFF
    out[first + 8 + body :] = struct.pack(">I", crc)
    out += view[last:]
    return io.BytesIO(out)


def _format_of(head: bytes) -> str | None:
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None
