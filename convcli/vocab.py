"""Every closed set of words convcli understands, declared once.

The command line (choices and help), both YAML readers (kernels and
pipelines), the numeric core's checks and the renderers all take their words
from here, so a word accepted in one place is accepted everywhere. Adding a
word means adding it here and writing the code that gives it meaning.

Each set is a :class:`Word` enum. ``parse`` accepts the canonical spelling and
the documented alternative spellings (case-insensitive; ``_`` for ``-``), and
raises :class:`~convcli.errors.ParameterError` naming the choices otherwise.

>>> PadMode.parse("Reflect"), Activation.parse("leaky_relu"), Format.parse("tif")
(<PadMode.reflect: 'reflect'>, <Activation.leaky_relu: 'leaky-relu'>, <Format.tiff: 'tiff'>)
>>> Format.of_extension(".TIFF"), Format.png.extension
(<Format.tiff: 'tiff'>, '.png')
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from convcli.errors import ParameterError


class Word(StrEnum):
    """A closed set of words: canonical values plus accepted spellings."""

    @classmethod
    def what(cls) -> str:
        """What the word names, for messages ("pad mode")."""
        return _WHAT.get(cls.__name__, cls.__name__.lower())

    @classmethod
    def choices(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def parse(cls, text: object, *, what: str | None = None) -> Self:
        """The member named by ``text`` (a member, a value or an accepted spelling)."""
        if isinstance(text, cls):
            return text
        if isinstance(text, str):
            key = text.strip().lower()
            key = _SPELLINGS.get(cls.__name__, {}).get(key.replace("_", "-"), key.replace("_", "-"))
            for member in cls:
                if member.value == key:
                    return member
        hint = did_you_mean(str(text), cls.choices())
        raise ParameterError(
            f"{what or cls.what()} must be one of {', '.join(cls.choices())}; got {text!r}{hint}"
        )


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else ``""``.

    >>> did_you_mean("reflct", ["reflect", "zeros"])
    " (did you mean 'reflect'?)"
    """
    import difflib

    close = difflib.get_close_matches(str(word).lower(), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class PadMode(Word):
    """How the border is filled (numpy/PyTorch names; see :mod:`convcli.ops.padding`)."""

    zeros = "zeros"
    constant = "constant"
    reflect = "reflect"
    symmetric = "symmetric"
    replicate = "replicate"
    circular = "circular"


class PaddingWord(Word):
    """Padding given by name instead of numbers."""

    valid = "valid"
    same = "same"
    full = "full"
    same_lower = "same-lower"  # ONNX's SAME_LOWER: same, an odd extra pixel top/left


class PoolOp(Word):
    """Pooling operations (PyTorch's rules)."""

    max = "max"
    avg = "avg"
    min = "min"
    global_max = "global-max"
    global_avg = "global-avg"

    @property
    def is_global(self) -> bool:
        return self.value.startswith("global")

    @property
    def averages(self) -> bool:
        return self in (PoolOp.avg, PoolOp.global_avg)


class Activation(Word):
    """Activations applied after the bias (``leaky-relu`` takes ``:slope``)."""

    none = "none"
    relu = "relu"
    leaky_relu = "leaky-relu"
    sigmoid = "sigmoid"
    tanh = "tanh"
    abs = "abs"


#: PyTorch's default negative slope for leaky-relu.
DEFAULT_LEAKY_SLOPE = 0.01


def parse_activation(spec: object) -> tuple[Activation, float]:
    """``"leaky-relu:0.2"`` → ``(Activation.leaky_relu, 0.2)``; None → none.

    Spellings: any case, ``_`` or ``-`` (``leaky_relu``, ``LeakyReLU``).

    >>> parse_activation("LeakyReLU:0.2"), parse_activation(None)
    ((<Activation.leaky_relu: 'leaky-relu'>, 0.2), (<Activation.none: 'none'>, 0.0))
    """
    import math

    if spec is None:
        return Activation.none, 0.0
    if isinstance(spec, Activation):
        return spec, DEFAULT_LEAKY_SLOPE if spec is Activation.leaky_relu else 0.0
    if not isinstance(spec, str):
        raise ParameterError(f"activation must be a name, got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    act = Activation.parse(name)
    if arg and act is not Activation.leaky_relu:
        raise ParameterError(f"activation {act} takes no parameter; got {spec!r}")
    slope = DEFAULT_LEAKY_SLOPE if act is Activation.leaky_relu else 0.0
    if arg:
        try:
            slope = float(arg)
        except ValueError:
            raise ParameterError(f"leaky-relu slope must be a number; got {arg!r}") from None
        if not math.isfinite(slope):
            raise ParameterError(f"leaky-relu slope must be finite; got {arg!r}")
    return act, slope


class Format(Word):
    """Output file formats, with their file extensions (the first is the one written).

    ``keep`` is not a file format but a choice: each input's own format where
    convcli writes it (jpeg, webp, tiff), else png (:meth:`kept_for`).
    """

    png = "png"
    jpeg = "jpeg"
    webp = "webp"
    tiff = "tiff"
    npy = "npy"
    npz = "npz"
    keep = "keep"

    @property
    def extensions(self) -> tuple[str, ...]:
        return _FORMAT_EXTENSIONS[self.value]

    @property
    def extension(self) -> str:
        if self is Format.keep:
            raise ValueError("--format keep has no extension of its own")
        return self.extensions[0]

    @property
    def is_picture(self) -> bool:
        """Written as 8/16-bit pixels (through a range mapping), not as raw floats."""
        return self in (Format.png, Format.jpeg, Format.webp)

    @property
    def is_lossy(self) -> bool:
        """8-bit only, with a quality setting."""
        return self in (Format.jpeg, Format.webp)

    @classmethod
    def of_extension(cls, ext: str) -> Format | None:
        """The format an output file name's extension asks for, or None."""
        ext = ext.lower()
        for member in cls:
            if ext in member.extensions:
                return member
        return None

    @classmethod
    def kept_for(cls, source: str) -> Format:
        """``--format keep``: the format of input ``source`` where convcli writes it, else png.

        >>> Format.kept_for("a/photo.JPG"), Format.kept_for("scan.bmp")
        (<Format.jpeg: 'jpeg'>, <Format.png: 'png'>)
        """
        import os

        found = cls.of_extension(os.path.splitext(source)[1])
        return found if found in (cls.jpeg, cls.webp, cls.tiff) else cls.png


_FORMAT_EXTENSIONS = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg"),
    "webp": (".webp",),
    "tiff": (".tif", ".tiff"),
    "npy": (".npy",),
    "npz": (".npz",),
    "keep": (),
}

#: Extensions of the images convcli reads (folders are searched for these).
INPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


class RangeMode(Word):
    """How float results become pixel levels (png)."""

    auto = "auto"
    clip = "clip"
    minmax = "minmax"
    abs = "abs"
    offset = "offset"


class RangeScope(Word):
    """Which files share one float → pixel mapping."""

    file = "file"  # each output file its own
    input = "input"  # every file of one input the same (side-by-side comparison)


class Colormap(Word):
    """Colour maps for one-channel pictures (tables from the ``cmap`` package)."""

    gray = "gray"
    viridis = "viridis"
    magma = "magma"
    inferno = "inferno"
    plasma = "plasma"
    cividis = "cividis"
    coolwarm = "coolwarm"
    rdbu = "rdbu"


class Compression(Word):
    """Lossless TIFF compression."""

    none = "none"
    lzw = "lzw"
    deflate = "deflate"


class CombineOp(Word):
    """How a bank's maps are reduced to one map per input channel."""

    magnitude = "magnitude"
    max = "max"
    min = "min"
    mean = "mean"
    sum = "sum"


class GridScale(Word):
    """Contrast of a filter picture (``kernels show --png``)."""

    filter = "filter"  # each filter by its own largest |w|
    layer = "layer"  # one scale for the whole kernel


class Alpha(Word):
    """What happens to an image's transparency."""

    premultiply = "premultiply"
    drop = "drop"
    channel = "channel"


class DType(Word):
    """The computation's float type."""

    float32 = "float32"
    float64 = "float64"


class Executor(Word):
    """Where a batch runs."""

    local = "local"
    dask = "dask"


class Normalize(Word):
    """How a YAML kernel's weights are normalised."""

    none = "none"
    sum = "sum"
    l1 = "l1"


class AnimationFormat(Word):
    """Animation files (``explain --animate``), chosen by the file's extension."""

    gif = "gif"
    apng = "apng"

    @property
    def extensions(self) -> tuple[str, ...]:
        return {"gif": (".gif",), "apng": (".png", ".apng")}[self.value]

    @property
    def pillow(self) -> str:
        """Pillow's name for the format (an APNG is a PNG with ``save_all``)."""
        return {"gif": "GIF", "apng": "PNG"}[self.value]

    @classmethod
    def of_extension(cls, ext: str) -> AnimationFormat | None:
        ext = ext.lower()
        return next((m for m in cls if ext in m.extensions), None)


_WHAT = {
    "PadMode": "pad mode",
    "PaddingWord": "padding",
    "PoolOp": "pool op",
    "Activation": "activation",
    "Format": "format",
    "RangeMode": "range",
    "Alpha": "alpha",
    "DType": "dtype",
    "Executor": "executor",
    "Normalize": "normalize",
    "RangeScope": "range scope",
    "Colormap": "colour map",
    "Compression": "compression",
    "CombineOp": "combine",
    "GridScale": "scale",
    "AnimationFormat": "animation format",
}

#: Accepted alternative spellings, by set (keys already lower-case, ``_`` → ``-``).
_SPELLINGS: dict[str, dict[str, str]] = {
    "Activation": {"leakyrelu": "leaky-relu"},
    "Format": {"tif": "tiff", "jpg": "jpeg"},
    "RangeMode": {"identity": "clip"},  # the old name
    "Colormap": {"grey": "gray", "greys": "gray", "rd-bu": "rdbu"},
}
