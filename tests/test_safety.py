"""convcli.safety: printable names and file-name lengths."""

from __future__ import annotations

import json
import os

import pytest

from convcli.errors import ParameterError
from convcli.safety import (
    NAME_MAX,
    check_name_lengths,
    json_text,
    name_bytes,
    printable,
    shorten,
    too_long_name,
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain.png", "plain.png"),
        ("ünï cødé – fïlé 写真 📷.png", "ünï cødé – fïlé 写真 📷.png"),  # printable text stays
        ("back\\slash", "back\\slash"),
        ("tab\there", "tab\\there"),
        ("new\nline\r", "new\\nline\\r"),
        ("\x1b]0;TITLE\x07", "\\x1b]0;TITLE\\x07"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1 \x85 csi \x9b2J", "c1 \\x85 csi \\x9b2J"),
        ("rtl \u202egnp.exe", "rtl \\u202egnp.exe"),
        ("sep \u2028 \u2029", "sep \\u2028 \\u2029"),
        (os.fsdecode(b"latin-1 \xe9t\xe9.png"), "latin-1 \\xe9t\\xe9.png"),
    ],
)
def test_printable_escapes_controls_only(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable() or " " in raw
    assert "\n" not in printable(raw)


def test_printable_takes_any_object() -> None:
    from pathlib import Path

    assert printable(Path("a\nb")) == "a\\nb"
    assert printable(3) == "3"


def test_json_text_is_printable_and_exact() -> None:
    data = {"input": "a\x1b[2J\x9b\u202e" + os.fsdecode(b"\xff") + ".png", "n": [1, 2]}
    text = json_text(data, indent=2)
    assert "\n" in text  # the indentation is kept
    assert not any(ch in text for ch in "\x1b\x9b\u202e")
    text.encode("utf-8")  # no lone surrogate left: printable as UTF-8
    assert json.loads(text) == data


def test_name_lengths_are_counted_in_bytes() -> None:
    assert name_bytes("é" * 127) == 254
    assert too_long_name("é" * 127) is None
    assert too_long_name("é" * 128) == "é" * 128
    assert too_long_name("ok/" + "x" * (NAME_MAX + 1) + "/ok") == "x" * (NAME_MAX + 1)
    assert too_long_name("/" + "x" * NAME_MAX) is None


def test_check_name_lengths_is_one_line_naming_the_option() -> None:
    check_name_lengths("out/" + "x" * 255, "-o")
    with pytest.raises(ParameterError) as err:
        check_name_lengths("out/" + "x" * 300 + "\n.png", "--manifest")
    message = str(err.value)
    assert message.startswith("--manifest: the name xxxxxxxxxxxxxxxx…")
    assert message.endswith("(305 bytes) is longer than file systems allow (255 bytes)")
    assert "\n" not in message and len(message) < 120


def test_shorten_keeps_short_names_whole() -> None:
    assert shorten("short.png") == "short.png (9 bytes)"
    assert shorten("a\nb") == "a\\nb (3 bytes)"
