# ruff: noqa: E501  (the case tables below are wider than code lines)
"""A corpus of broken and hostile inputs, built on demand into a folder.

Nothing large is committed: every file is made by a few lines of code when a
test asks for it (the "decompression bombs" are 70-byte PNG headers that
declare a huge size). ``tests/test_corpus.py`` runs each case through the real
``convcli`` in a subprocess and checks, for every one: the exit code, exactly
one line on stderr that names the file and the problem (no traceback, no
"internal error"), no partial or temporary file in the output folder, and the
inputs byte-for-byte unchanged; in a batch, that the good files were still done.

The cases and what each gets (``convcli convolve FILE -k box -o out`` unless said):

Inputs (``INPUTS``)

=================  =====================================  ====  =========================================
case               file                                   exit  the one stderr line
=================  =====================================  ====  =========================================
empty              zero bytes, ``empty.png``              1     ``empty.png: empty file (0 bytes)``
truncated-png      first half of a PNG                    1     ``cut-png.png: truncated image (...)``
truncated-jpeg     first half of a JPEG                   1     ``cut-jpeg.jpg: truncated image (...)``
corrupt-png        one IDAT byte flipped (CRC fails)      1     ``crc.png: broken image data (...)``
random-bytes       500 random bytes, ``noise.png``        1     ``noise.png: not an image Pillow can read``
random-gif         random bytes, ``static.gif``           1     ``static.gif: not an image Pillow can read``
text-as-png        a text file named ``notes.png``        1     ``notes.png: not an image Pillow can read``
zero-width         PNG header declaring 0×10              1     ``zero-width.png: not an image ...``
bomb               PNG header declaring 100000²           1     ``bomb.png: too many pixels, refusing ...``
bomb-just-over     PNG header declaring 15000² (>limit)   1     ``bomb-2.png: too many pixels, refusing ...``
missing            a name that does not exist             1     ``missing.png: no such file``
dangling-link      a symlink to nothing                   1     ``dangling.png: no such file``
fifo               a named pipe ``pipe.png`` (no hang)    1     ``pipe.png: empty file (0 bytes)``
tiny-valid         1×1 image, ``-k box:3 --padding valid``  1   ``dot.png: kernel 3×3 ... larger than the padded input 1×1``
animated-gif       2 frames, red then green               0     (none; the first frame, red, is used)
gray16-tiff        16-bit grey TIFF                       0     (none; values /65535, exact in npy)
cmyk-jpeg          CMYK JPEG                              0     (none; converted to RGB)
icc-profile        PNG with an sRGB ICC profile           0     (none; profile ignored, pixels as stored)
unicode-name       ``ünï cødé – fïlé.png``                0     (none; output ``ünï cødé – fïlé.identity.png``)
jpeg-named-png     a JPEG file named ``.png``             0     (none; the content decides)
=================  =====================================  ====  =========================================

Batch: all of the above in one folder (plus a sub-folder, a symlink loop back
to the folder, a hidden file) with ``-r -j 2 -q --manifest``: exit 1, one
``error:`` line per bad file (each naming it), every good file done, the
manifest says which failed, no temporary files, inputs unchanged.

Outputs

=====================================  ====  ===============================================
case                                   exit  the one stderr line
=====================================  ====  ===============================================
``-o`` is the input (even ``--force``)   1   ``in.png: is an input; refusing to overwrite it``
an input named like another's output     1   ``in/a.box.png: is an input; ...`` (the other done)
existing output, no ``--force``          1   ``out/in.box.png exists (use --force ...)``
``-o FILE`` where a folder must be       2   ``-o blocker: blocker is a file, not a folder``
a file where a mirrored sub-folder is    2   ``-o out: out/sub is a file, not a folder``
``--manifest`` under a file              2   ``--manifest blocker/m.jsonl: blocker is a file, ...``
read-only output folder (simulated)      1   ``out/x.box.png: cannot write (Permission denied)``, per input
disk full while encoding (ENOSPC)        1   ``out/b.box.png: cannot write (No space left on device)``
disk full on rename (ENOSPC)             1   same, for that input only; the others done
disk full writing the manifest           1   ``m.jsonl: cannot write the manifest (No space ...)``
SIGINT / SIGTERM during a batch        130   ``interrupted``; then ``--skip-existing`` finishes (exit 0)
=====================================  ====  ===============================================

Kernels (``-k``; exit 2, nothing read or written; ``FILE:LINE: problem``): ragged
rows, a non-number, NaN, an empty file, a tab indent, a list at the top,
``!!int abc``, ``!!python/object``, an alias that contains itself, a
"billion laughs" of aliases, a NUL byte, ``normalize: sum`` on a zero-sum
kernel, 5-D weights, ``stride: 0``, ``stride: 10**23``, non-UTF-8 bytes, a
missing file; built-in specs ``gausian`` (did you mean), ``box:100000`` (at
most 4097), ``gaussian::1e-300`` (weights not finite), ``gaussian:4`` (odd),
``gabor:5:1e300:1e300:1e300`` (out of range).

Pipelines (``convcli run``; exit 2; ``FILE:LINE: stage N (kind): problem``):
a misspelt option, an unknown step, a step that is not a mapping, ``!!foo``
tags, a conv without a kernel, a broken kernel file (both files named),
``size: 0``, deep nesting, an empty file, invalid YAML.

Option values (exit 2 before any work unless said): ``--stride 0`` / ``-1`` /
``10**20``, ``--padding -2`` / ``sideways`` / ``1,2,3``, ``--pad-mode mirror``,
``--pad-value nan``, ``--dilation 0`` / ``10**20``, ``--activation swish`` /
``relu:2``, ``--bias x`` / ``nan``, ``--pool-size 0``, ``--pool-stride 10**20``,
``-k nope``, a ``--padding`` so large the padded input cannot exist (checked
on the input's size, before computing); per input (exit 1): a pool window
larger than the image, ``--bias`` with more values than channels.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

# --------------------------------------------------------------------------- file makers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def good_png(path: Path, size: int = 12, seed: int = 0) -> Path:
    """A small RGB PNG of random pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _encoded(fmt: str, size: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` grey pixels and holds almost none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def _write(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def _truncated(fmt: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = _encoded(fmt)
        path.write_bytes(data[: len(data) // 2])

    return make


def _corrupt_png(path: Path) -> None:
    data = bytearray(_encoded("PNG"))
    at = data.index(b"IDAT") + 12  # inside the compressed stream
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _dangling(path: Path) -> None:
    path.symlink_to(path.with_name("nowhere.png"))


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dot(path: Path) -> None:
    Image.new("L", (1, 1), 9).save(path)


def _animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


GRAY16 = np.array([[0, 1, 65535], [1000, 32768, 65534], [7, 8, 9]], dtype=np.uint16)


def _gray16_tiff(path: Path) -> None:
    Image.fromarray(GRAY16).save(path)


def _cmyk_jpeg(path: Path) -> None:
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(path, quality=95)


def _icc_png(path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (5, 3), (10, 120, 230)).save(path, icc_profile=profile)


def _jpeg_named_png(path: Path) -> None:
    path.write_bytes(_encoded("JPEG", size=8))


def _plain_png(path: Path) -> None:
    good_png(path, size=7, seed=3)


# --------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class InputCase:
    """One input file and what ``convcli convolve FILE -k <kernel> -o out`` must do with it."""

    id: str
    name: str  # file name to create
    make: Callable[[Path], None] | None  # None: the file is not created (missing)
    code: int  # exit code
    message: str = ""  # regex for the stderr line after "error: <name>: " ('' when code 0)
    args: tuple[str, ...] = ("-k", "box")
    output: str = ""  # for code 0: the output file expected in out/
    posix_only: bool = False
    extra: dict = field(default_factory=dict)


INPUTS: list[InputCase] = [
    InputCase("empty", "empty.png", _write(b""), 1, r"empty file \(0 bytes\)"),
    InputCase("truncated-png", "cut-png.png", _truncated("PNG"), 1, r"truncated image \("),
    InputCase("truncated-jpeg", "cut-jpeg.jpg", _truncated("JPEG"), 1, r"truncated image \("),
    InputCase("corrupt-png", "crc.png", _corrupt_png, 1, r"broken image data \("),
    InputCase(
        "random-bytes", "noise.png", _write(_rng(2).bytes(500)), 1, "not an image Pillow can read"
    ),
    InputCase(
        "random-gif", "static.gif", _write(_rng(3).bytes(300)), 1, "not an image Pillow can read"
    ),
    InputCase(
        "text-as-png", "notes.png", _write(b"a shopping list\n"), 1, "not an image Pillow can read"
    ),
    InputCase("zero-width", "zero-width.png", _write(png_header(0, 10)), 1, "not an image"),
    InputCase(
        "bomb",
        "bomb.png",
        _write(png_header(100_000, 100_000)),
        1,
        r"too many pixels, refusing to decode",
    ),  # fmt: skip
    InputCase(
        "bomb-just-over",
        "bomb-2.png",
        _write(png_header(15_000, 15_000)),
        1,
        r"too many pixels, refusing to decode",
    ),  # fmt: skip
    InputCase("missing", "missing.png", None, 1, "no such file"),
    InputCase("dangling-link", "dangling.png", _dangling, 1, "no such file", posix_only=True),
    InputCase("fifo", "pipe.png", _fifo, 1, r"empty file \(0 bytes\)", posix_only=True),
    InputCase(
        "tiny-valid",
        "dot.png",
        _dot,
        1,
        r"kernel 3×3 .*is larger than the padded input 1×1",
        args=("-k", "box:3", "--padding", "valid"),
    ),  # fmt: skip
    InputCase(
        "animated-gif",
        "anim.gif",
        _animated_gif,
        0,
        args=("-k", "identity", "--format", "npy"),
        output="anim.identity.npy",
    ),  # fmt: skip
    InputCase(
        "gray16-tiff",
        "deep.tif",
        _gray16_tiff,
        0,
        args=("-k", "identity", "--format", "npy"),
        output="deep.identity.npy",
    ),  # fmt: skip
    InputCase(
        "cmyk-jpeg",
        "cmyk.jpg",
        _cmyk_jpeg,
        0,
        args=("-k", "identity", "--format", "npy"),
        output="cmyk.identity.npy",
    ),  # fmt: skip
    InputCase(
        "icc-profile",
        "icc.png",
        _icc_png,
        0,
        args=("-k", "identity", "--format", "npy"),
        output="icc.identity.npy",
    ),  # fmt: skip
    InputCase(
        "unicode-name",
        "ünï cødé – fïlé.png",
        _plain_png,
        0,
        args=("-k", "identity"),
        output="ünï cødé – fïlé.identity.png",
    ),  # fmt: skip
    InputCase(
        "jpeg-named-png",
        "photo.png",
        _jpeg_named_png,
        0,
        args=("-k", "box"),
        output="photo.box.png",
    ),  # fmt: skip
]


def build(case: InputCase, folder: Path) -> Path:
    """Create ``case``'s file in ``folder`` (not for ``missing``); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / case.name
    if case.make is not None:
        case.make(path)
    return path


# --------------------------------------------------------------------------- bad YAML


def billion_laughs(levels: int = 9) -> str:
    """Nine aliases of nine aliases of ...: 9**levels numbers from a few hundred bytes."""
    lines = ["l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines.append(f"weights: [*l{levels - 1}]")
    return "\n".join(lines) + "\n"


#: (id, file text, regex for the stderr line after "error: <file>:") for ``-k FILE``.
BAD_KERNELS: list[tuple[str, str | bytes, str]] = [
    ("ragged", "weights:\n  - [1, 2, 3]\n  - [4, 5]\n", r"3: weights row 2 has 2 numbers, row 1 has 3"),
    ("not-a-number", "weights:\n  - [1, x]\n", r"2: weights row 1, column 2 must be a number"),
    ("nan", "weights: [[.nan, 1]]\n", r"1: .*finite"),
    ("empty-file", "", r" the file is empty"),
    ("tab-indent", "weights:\n\t- [1]\n", r"2: invalid YAML"),
    ("top-level-list", "- [1, 2]\n", r"1: the top level of a kernel file must be a mapping"),
    ("bad-int-tag", "weights: [[1]]\nscale: !!int abc\n", r"2: cannot read this value"),
    ("python-tag", "weights: [[1]]\nstride: !!python/object:os.system 1\n", r"2: cannot read this value"),
    ("self-alias", "weights: &w [[1], *w]\n", r" nested too deeply"),
    ("billion-laughs", billion_laughs(), r"\d+: weights holds more than \d+ numbers"),
    ("nul-byte", "weights: [[1\x00]]\n", r" invalid YAML: unacceptable character"),
    ("zero-sum-normalize", "weights: [[-1, 0, 1]]\nnormalize: sum\n", r"\d: normalize: sum, but"),
    ("five-d", "weights: [[[[[1]]]]]\n", r"1: weights is 5-D"),
    ("stride-0", "weights: [[1]]\nstride: 0\n", r"2: stride must be >= 1, got 0"),
    ("stride-huge", "weights: [[1]]\nstride: 100000000000000000000000\n", r"2: stride must be at most"),
    ("latin-1", b"name: caf\xe9\nweights: [[1]]\n", r" cannot read the file"),
]  # fmt: skip


#: (id, -k spec, regex for the stderr line after "error: ").
BAD_KERNEL_SPECS: list[tuple[str, str, str]] = [
    ("misspelt", "gausian", r"unknown kernel 'gausian' \(did you mean 'gaussian'\?\)"),
    ("missing-file", "nothere.yaml", r"no such kernel file: nothere.yaml"),
    ("huge-box", "box:100000", r"box: k must be at most 4097, got 100000"),
    ("tiny-sigma", "gaussian::1e-300", r"gaussian::1e-300: .*not finite"),
    ("huge-sigma", "gaussian::1e300", r"gaussian: sigma 1e\+300 needs a kernel wider than"),
    ("even-gaussian", "gaussian:4", r"gaussian: k must be odd"),
    ("overflow", "gabor:5:1e300:1e300:1e300", r"gabor:5:1e300:1e300:1e300: .*out of range"),
]

#: (id, pipeline text, regex for the stderr line after "error: <file>:") for ``convcli run``.
BAD_PIPELINES: list[tuple[str, str, str]] = [
    ("misspelt-option", "stages:\n  - conv: {kernel: sobel, strid: 2}\n",
     r"2: stage 1 \(conv\): unknown option 'strid' \(did you mean 'stride'\?\)"),
    ("unknown-step", "stages:\n  - convolve: sobel\n", r"2: stage 1: unknown step 'convolve'"),
    ("step-not-mapping", "stages:\n  - sobel\n", r"2: stage 1: each step must be"),
    ("bad-tag", "stages:\n  - conv: {kernel: sobel, stride: !!foo 2}\n",
     r"2: stage 1 \(conv\): cannot read this value"),
    ("no-kernel", "stages:\n  - conv: {stride: 2}\n", r"2: stage 1 \(conv\): conv needs a kernel"),
    ("broken-kernel", "stages:\n  - conv: {kernel: broken.yaml}\n",
     r"2: stage 1 \(conv\): kernel: .*broken.yaml:3: weights row 2 has 1 numbers, row 1 has 2"),
    ("pool-size-0", "stages:\n  - pool: {op: max, size: 0}\n",
     r"2: stage 1 \(pool\): size must be >= 1, got 0"),
    ("deep-nesting", "stages: " + "[" * 3000 + "]" * 3000 + "\n", r" nested too deeply"),
    ("empty-file", "", r" the file is empty"),
    ("invalid-yaml", "stages: [conv: {kernel: sobel\n", r"\d+: not valid YAML"),
]  # fmt: skip

#: (id, extra options for ``convolve in.png -k box``, exit code, regex for the stderr line).
BAD_OPTIONS: list[tuple[str, tuple[str, ...], int, str]] = [
    ("stride-0", ("--stride", "0"), 2, r"stride must be >= 1, got 0"),
    ("stride-negative", ("--stride", "-1"), 2, r"stride must be >= 1, got -1"),
    ("stride-huge", ("--stride", "1" + "0" * 20), 2, r"stride must be at most 2147483647"),
    ("padding-negative", ("--padding", "-2"), 2, r"padding must not be negative"),
    ("padding-word", ("--padding", "sideways"), 2, r"padding must be valid, same, full"),
    ("padding-three", ("--padding", "1,2,3"), 2, r"padding takes 1, 2 or 4 numbers"),
    ("pad-mode", ("--pad-mode", "mirror"), 2, r"pad mode must be one of zeros, .*; got 'mirror'"),
    ("pad-value-nan", ("--pad-mode", "constant", "--pad-value", "nan"), 2,
     r"pad value must be finite"),
    ("dilation-0", ("--dilation", "0"), 2, r"dilation must be >= 1, got 0"),
    ("dilation-huge", ("--dilation", "1" + "0" * 20), 2, r"dilation must be at most"),
    ("activation", ("--activation", "swish"), 2, r"activation must be one of none, relu"),
    ("activation-param", ("--activation", "relu:2"), 2, r"activation relu takes no parameter"),
    ("bias-word", ("--bias", "x"), 2, r"bias must be a number"),
    ("bias-nan", ("--bias", "nan"), 2, r"bias must be finite"),
    ("pool-size-0", ("--pool", "max", "--pool-size", "0"), 2, r"pool size must be >= 1, got 0"),
    ("pool-stride-huge", ("--pool", "avg", "--pool-stride", "9" * 20, "--ceil-mode"), 2,
     r"pool stride must be at most"),
    ("unknown-kernel", ("-k", "nope"), 2, r"unknown kernel 'nope'"),
    ("pool-window-too-big", ("--pool", "max", "--pool-size", "64"), 1,
     r"in.png: pool window 64×64 is larger than the padded input 12×12"),
    ("padding-astronomic", ("--padding", "1000000000"), 2,
     r"in.png: the padded input 3×2000000012×2000000012 is too large to compute"),
    ("bias-too-many", ("--bias", "1,2,3,4,5"), 1,
     r"in.png: bias has 5 values but there are 3 output channels"),
]  # fmt: skip


# --------------------------------------------------------------------------- checks


def snapshot(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``folder`` (links not followed)."""
    out: dict[str, str] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root, name)
            if p.is_symlink() or not p.is_file():
                continue
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary or hidden files under ``folder``: what an interrupted write would leave."""
    if not folder.exists():
        return []
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.name.startswith(".") or p.name.endswith(".tmp") or "tmp" in p.suffix
    )
