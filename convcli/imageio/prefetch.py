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

import os
import stat
import threading
import warnings
from contextlib import nullcontext

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
    _drop()
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


def _drop() -> None:
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
    with warnings.catch_warnings():
        # as load_image opens an image: odd but readable files are not our user's
        # problem; the decompression-bomb warning stops the read (here: the prefetch)
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pillow_limit(limit) if limit != Image.MAX_IMAGE_PIXELS else nullcontext():
            img = Image.open(source, formats=[fmt])
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


def _format_of(head: bytes) -> str | None:
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None
