"""Text about paths that is safe to print, and path names the file system will accept.

File names may hold any byte but ``/`` and NUL: escape sequences that retitle a
terminal or move its cursor, newlines that split a one-line message in two,
bytes that are not UTF-8. :func:`printable` turns every such character into a
visible backslash escape; every message, progress line and report that prints
a path goes through it. :func:`json_text` does the same for ``--json`` output
while keeping the exact name (a JSON reader gets the original string back).

Most file systems refuse a single name (one path component) longer than 255
bytes; Python then raises ``OSError: File name too long`` from wherever it
first touches the path. :func:`check_name_lengths` says so up front, in one
line that names the option.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from convcli.errors import ParameterError

#: Longest single file name (path component), in bytes, on ext4, XFS, Btrfs, APFS, NTFS.
NAME_MAX = 255

# C0 controls, DEL, C1 controls, the Unicode line/paragraph separators, the
# bidirectional overrides and isolates (which reorder what a terminal shows),
# and lone surrogates (bytes that were not UTF-8, decoded by os.fsdecode).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# what json.dumps leaves unescaped of the above (it escapes C0 itself; raw C0 in its
# output is the indentation's whitespace)
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character shown as a backslash escape (as ``ls -b``).

    C0 and C1 controls, DEL, line/paragraph separators, bidirectional
    overrides and undecodable bytes become ``\\n``, ``\\t``, ``\\r``,
    ``\\xNN`` or ``\\uNNNN``; everything else (accents, CJK, emoji,
    backslashes) is kept as it is. The result is one line.

    Examples
    --------
    >>> printable("bad\\x1b]0;TITLE\\x07\\nname.png")
    'bad\\\\x1b]0;TITLE\\\\x07\\\\nname.png'
    >>> print(printable("caf\\u00e9 \\u2013 \\x85.png"))
    café – \\x85.png
    >>> print(printable(os.fsdecode(b"raw-\\xff.png")))
    raw-\\xff.png
    """
    s = str(text)
    if not _UNSAFE.search(s):
        return s
    return _UNSAFE.sub(lambda m: _escape(m.group()), s)


def json_text(data: Any, **dumps: Any) -> str:
    """``json.dumps(data, ensure_ascii=False, **dumps)`` that is safe to print.

    JSON already escapes C0 controls; this also escapes DEL, C1 controls, line
    separators, bidirectional overrides and lone surrogates as ``\\uNNNN``,
    so the text is printable and valid UTF-8, and a JSON reader still gets the
    exact original strings back.

    >>> json_text({"input": "a\\x9b[2J\\udcff.png"})
    '{"input": "a\\\\u009b[2J\\\\udcff.png"}'
    >>> json.loads(json_text(["a\\x9b\\udcff"])) == ["a\\x9b\\udcff"]
    True
    >>> print(json_text({"a": ["\\n"]}, indent=1))
    {
     "a": [
      "\\n"
     ]
    }
    """
    text = json.dumps(data, ensure_ascii=False, **dumps)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def name_bytes(name: str) -> int:
    """Length of one path component in bytes, as the file system counts it.

    >>> name_bytes("café.png")
    9
    """
    return len(os.fsencode(name))


def too_long_name(path: str | os.PathLike[str]) -> str | None:
    """The first component of ``path`` longer than :data:`NAME_MAX` bytes, or None.

    >>> too_long_name("a/" + "b" * 256 + "/c") == "b" * 256
    True
    >>> too_long_name("a/" + "b" * 255) is None
    True
    """
    for part in os.fspath(path).split(os.sep):
        if name_bytes(part) > NAME_MAX:
            return part
    return None


def shorten(name: str, keep: int = 24) -> str:
    """A long name cut in the middle for a message: ``aaaa…aaaa (300 bytes)``.

    >>> shorten("x" * 300)
    'xxxxxxxxxxxxxxxx…xxxxxxxx (300 bytes)'
    """
    n = name_bytes(name)
    if len(name) <= keep:
        return f"{printable(name)} ({n} bytes)"
    head = keep * 2 // 3
    return f"{printable(name[:head])}…{printable(name[-(keep - head) :])} ({n} bytes)"


def check_name_lengths(path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`ParameterError` (exit 2) when a name in ``path`` is over 255 bytes.

    ``what`` names the option or thing (``-o``, ``--manifest``, ``-k``), so the
    one-line message says where the name came from.

    >>> try:
    ...     check_name_lengths("out/" + "n" * 300, "-o")
    ... except ParameterError as exc:
    ...     print(str(exc).replace("n" * 16, "n…"))
    -o: the name n……nnnnnnnn (300 bytes) is longer than file systems allow (255 bytes)
    """
    part = too_long_name(path)
    if part is not None:
        raise ParameterError(
            f"{what}: the name {shorten(part)} is longer than file systems allow ({NAME_MAX} bytes)"
        )


__all__ = [
    "NAME_MAX",
    "check_name_lengths",
    "json_text",
    "name_bytes",
    "printable",
    "shorten",
    "too_long_name",
]
