"""Every command-line option, declared once, parsed at the edge.

Each alias below is an ``Annotated`` type that a command signature uses as is.
Words come from :mod:`convcli.vocab` (with their accepted spellings); values
that need logic (``--stride 2,1``, ``--padding same``, ``--bias 1,2``) are
parsed by ``parser=`` callables, so a command body receives numbers, never
option text, and a bad value is a usage error (exit 2) naming the option.

The output and batch options that ``convolve``, ``pool`` and ``run`` share are
one :class:`OutputArgs` object, added to a command by :func:`with_output_options`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click

from convcli.cli.declare import Argument, Option
from convcli.vocab import (
    Alpha,
    Colormap,
    CombineOp,
    Compression,
    DType,
    Executor,
    Format,
    PadMode,
    PoolOp,
    RangeScope,
    Word,
    parse_activation,
)

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- parsers


def _parser(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` as a ``parser=``: the convcli error it raises is the usage error's message."""
    return fn


def _word(words: type[Word], option: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return words.parse(text)

    parse.__name__ = words.__name__
    return parse


def _metavar(words: type[Word]) -> str:
    return "|".join(words.choices())


def _pair(option: str, minimum: int = 1) -> Callable[[str], tuple[int, int]]:
    def parse(text: str) -> tuple[int, int]:
        from convcli.shapes import as_pair

        return as_pair(text, option, minimum=minimum)

    return parse


def _padding(text: str) -> Any:
    from convcli.shapes import parse_padding

    return parse_padding(text)


def _bias(text: str) -> float | tuple[float, ...] | None:
    from convcli.pipeline.engine import parse_bias

    return parse_bias(text)


def _activation(text: str) -> str:
    act, slope = parse_activation(text)
    return f"{act.value}:{slope:g}" if ":" in text else act.value


def _positive(option: str) -> Callable[[str], int]:
    def parse(text: object) -> int:
        from convcli.errors import ParameterError

        try:
            value = int(str(text))  # type: ignore[call-overload]
        except ValueError:
            raise ParameterError(f"{option} must be a whole number, got {text!r}") from None
        if value < 1:
            raise ParameterError(f"{option} must be >= 1, got {value}")
        return value

    return parse


def _range(text: object) -> str:
    from convcli.imageio.rangespec import parse_range

    word = str(text).strip().lower()
    parse_range(word)
    return word


def _normalize(text: object) -> Any:
    from convcli.pipeline.engine import parse_normalize

    return parse_normalize(str(text))


def _threshold(text: object) -> float | str | None:
    from convcli.imageio.write import parse_threshold

    return parse_threshold(str(text))


def _quality(text: object) -> int:
    from convcli.errors import ParameterError

    value = _positive("--quality")(str(text))
    if value > 100:
        raise ParameterError(f"--quality must be 1 to 100, got {value}")
    return value


def _bytes(text: object) -> int:
    from convcli.pipeline.tiles import parse_bytes

    return parse_bytes(str(text))


def _max_pixels(text: object) -> int | None:
    from convcli.imageio.limits import resolve_max_pixels

    return resolve_max_pixels(str(text))


def _limit(text: object) -> int | str | None:
    from convcli.run.limits import parse_limit

    return parse_limit(str(text))


def _bit_depth(text: object) -> int:
    from convcli.errors import ParameterError

    if str(text).strip() not in ("8", "16"):
        raise ParameterError(f"--bit-depth must be 8 or 16, got {text!r}")
    return int(str(text))


def word_parser(words: type[Word], option: str) -> Callable[[Any], Any]:
    """A ``parser=`` for an option taking a word of ``words``."""
    return _parser(_word(words, option))


def pair_parser(option: str, minimum: int = 1) -> Callable[[Any], Any]:
    """A ``parser=`` for ``N`` or ``NH,NW`` options."""
    return _parser(_pair(option, minimum))


def positive_parser(option: str) -> Callable[[Any], Any]:
    """A ``parser=`` for whole numbers >= 1."""
    return _parser(_positive(option))


#: A ``parser=`` for padding options.
padding_parser = _parser(_padding)

# --------------------------------------------------------------------------- inputs and kernels

Inputs = Annotated[
    list[str],
    Argument(
        help="Image files, folders of images, or - for stdin.",
        metavar="INPUT",
        show_default=False,
    ),
]
Kernels = Annotated[
    list[str],
    Option(
        "--kernel",
        "-k",
        metavar="KERNEL",
        show_default=False,
        help="A built-in (gaussian:5:1.2), a YAML file, NAME for NAME.yaml in the kernel"
        " folders, or weights: FILE.npy, FILE.npz:NAME, FILE.safetensors:NAME,"
        " FILE.onnx[:NODE]. Several -k form one bank.",
    ),
]
OptKernels = Annotated[
    list[str] | None,
    Option(
        "--kernel",
        "-k",
        metavar="KERNEL",
        show_default=False,
        help="A built-in, a YAML file or NAME.yaml (several -k form one bank).",
    ),
]
KernelDirs = Annotated[
    list[Path] | None,
    Option(
        "--kernel-dir",
        "-K",
        metavar="DIR",
        file_okay=False,
        show_default=False,
        help="A folder searched for NAME.yaml before $CONVCLI_KERNEL_PATH and ./kernels"
        " (repeatable).",
    ),
]

# --------------------------------------------------------------------------- layer

Stride = Annotated[
    Any,
    Option(
        parser=pair_parser("stride"),
        metavar="S|SH,SW",
        show_default=False,
        help="Step between windows [default: 1, or the kernel file's].",
    ),
]
Padding = Annotated[
    Any,
    Option(
        parser=padding_parser,
        metavar="PAD",
        show_default=False,
        help="valid, same, full, P, PH,PW or T,B,L,R [default: same].",
    ),
]
PadModeOpt = Annotated[
    Any,
    Option(
        "--pad-mode",
        parser=word_parser(PadMode, "--pad-mode"),
        metavar=_metavar(PadMode),
        show_default=False,
        help="How the border is filled [default: reflect, or zeros for an ONNX Conv's kernel].",
    ),
]
PadValue = Annotated[
    float,
    Option(
        "--pad-value",
        metavar="V",
        show_default=False,
        help="Fill for --pad-mode constant [default: 0].",
    ),
]
Dilation = Annotated[
    Any,
    Option(
        parser=pair_parser("dilation"),
        metavar="D|DH,DW",
        show_default=False,
        help="Spacing between kernel taps [default: 1].",
    ),
]
Flip = Annotated[bool, Option("--flip", help="True convolution: rotate the kernel by 180°.")]
Bias = Annotated[
    Any,
    Option(
        parser=_parser(_bias),
        metavar="B|B1,B2,...",
        show_default=False,
        help="Added after the convolution: one number, or one per output map.",
    ),
]
CombineOpt = Annotated[
    Any,
    Option(
        "--combine",
        parser=word_parser(CombineOp, "--combine"),
        metavar="OP",
        show_default=False,
        help="Reduce a bank's maps to one per channel, after the activation and before"
        " pooling: magnitude (sobel: the gradient magnitude), max (kirsch: Kirsch edges), min,"
        " mean or sum.",
    ),
]
ActivationOpt = Annotated[
    Any,
    Option(
        "--activation",
        parser=_parser(_activation),
        metavar="NAME",
        show_default=False,
        help="none, relu, leaky-relu[:slope], sigmoid, tanh or abs [default: none].",
    ),
]
Groups = Annotated[
    Any,
    Option(
        parser=positive_parser("--groups"),
        metavar="G",
        show_default=False,
        help="Groups of a 4-D layer kernel [default: 1, or an ONNX Conv's group].",
    ),
]

Until = Annotated[
    str | None,
    Option(
        "--until", show_default=False, metavar="NODE",
        help="ONNX model: stop after this node (its name or its output's name).",
    ),
]  # fmt: skip
NormalizeOpt = Annotated[
    Any,
    Option(
        "--normalize", parser=_parser(lambda t: _normalize(t)), show_default=False,
        metavar="MEAN,STD|imagenet",
        help="Feed stage 1 (x - mean) / std of the 0–1 image: MEAN,STD for all channels,"
        " M1,M2,M3,S1,S2,S3 per channel, or imagenet.",
    ),
]  # fmt: skip

# --------------------------------------------------------------------------- image

AlphaOpt = Annotated[
    Alpha,
    Option(
        "--alpha",
        parser=word_parser(Alpha, "--alpha"),
        metavar=_metavar(Alpha),
        show_default=False,
        help="What transparency does [default: premultiply].",
    ),
]
Gray = Annotated[bool, Option("--gray", help="Convert to grey (ITU-R 601-2 luma) first.")]
DTypeOpt = Annotated[
    DType,
    Option(
        "--dtype",
        parser=word_parser(DType, "--dtype"),
        metavar=_metavar(DType),
        show_default=False,
        help="The computation's float type [default: float32].",
    ),
]

# --------------------------------------------------------------------------- pooling

PoolAfter = Annotated[
    Any,
    Option(
        "--pool",
        parser=word_parser(PoolOp, "--pool"),
        metavar="OP",
        show_default=False,
        help=f"Pool after the convolution: {', '.join(PoolOp.choices())}.",
    ),
]
PoolOpOpt = Annotated[
    PoolOp,
    Option(
        "--op",
        parser=word_parser(PoolOp, "--op"),
        metavar="OP",
        show_default=False,
        help=f"{', '.join(PoolOp.choices())} [default: max].",
    ),
]
PoolSize = Annotated[
    Any,
    Option(
        "--pool-size",
        parser=pair_parser("pool size"),
        metavar="K|KH,KW",
        show_default=False,
        help="Pooling window [default: 2].",
    ),
]
PoolStride = Annotated[
    Any,
    Option(
        "--pool-stride",
        parser=pair_parser("pool stride"),
        metavar="S|SH,SW",
        show_default=False,
        help="Step between windows [default: the window size].",
    ),
]
PoolPadding = Annotated[
    Any,
    Option(
        "--pool-padding",
        parser=padding_parser,
        metavar="PAD",
        show_default=False,
        help="P, PH,PW, valid or same [default: 0].",
    ),
]
CeilMode = Annotated[
    bool,
    Option("--ceil-mode", help="Round the pooled size up (keep a last partial window)."),
]
CountPad = Annotated[
    bool,
    Option(
        "--count-include-pad/--no-count-include-pad",
        show_default=False,
        help="avg: count padding in the divisor [default: count it].",
    ),
]

# --------------------------------------------------------------------------- output and batch

Json = Annotated[bool, Option("--json", help="Print the report as JSON on stdout.")]


@dataclass(frozen=True)
class OutputArgs:
    """The output, report and batch options shared by convolve, pool and run.

    ``given`` names the options set on the command line (the others hold their
    defaults), so a pipeline file's ``output:`` section can fill those in.
    """

    out: str = "convcli-out"
    fmt: Format | None = None
    bit_depth: int | None = None
    range_mode: str = "auto"
    range_scope: RangeScope = RangeScope.file
    cmap: Colormap | None = None
    threshold: float | str | None = None
    quality: int = 90
    compression: Compression = Compression.none
    colorbar: bool = False
    montage: bool = False
    force: bool = False
    skip_existing: bool = False
    preview: bool = False
    json: bool = False
    dry_run: bool = False
    quiet: bool = False
    recursive: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    workers: int | None = None
    manifest: Path | None = None
    executor: Executor = Executor.local
    scheduler: str | None = None
    tile: int | None = None
    memory_budget: int | None = None
    max_pixels: int | None = None  # None: no limit (--max-pixels none)
    max_output_pixels: int | str | None = "auto"  # None: no limit
    given: frozenset[str] = frozenset()


#: The command-line parameter of each :class:`OutputArgs` field: (annotation, default).
_OUTPUT_PARAMS: dict[str, tuple[Any, Any]] = {
    "out": (
        Annotated[
            str,
            Option(
                "--out",
                "-o",
                show_default=False,
                metavar="PATH",
                help="Output folder; or a file name (one input, one output; its extension picks the"
                " format); or - for stdout [default: convcli-out].",
            ),
        ],
        "convcli-out",
    ),
    "fmt": (
        Annotated[
            Any,
            Option(
                "--format",
                show_default=False,
                parser=word_parser(Format, "--format"),
                metavar=_metavar(Format),
                help="File format [default: png, or the -o file's extension]: png, jpeg and webp"
                " are pictures, tiff holds float32, npy/npz arrays; keep: each input's own format"
                " (jpeg, webp, tiff; others png).",
            ),
        ],
        None,
    ),
    "bit_depth": (
        Annotated[
            Any,
            Option(
                "--bit-depth",
                parser=_parser(_bit_depth),
                metavar="8|16",
                show_default=False,
                help="Bits per sample: png [default: 8]; tiff gets 8/16-bit integer samples"
                " (mapped as pictures are) instead of float32.",
            ),
        ],
        None,
    ),
    "range_mode": (
        Annotated[
            str,
            Option(
                "--range",
                parser=_parser(_range),
                metavar="MODE|LO,HI|pLO,pHI",
                show_default=False,
                help="How values become picture levels: auto (by what the result is: an image"
                " clips to 0..1, a signed response puts 0 at mid-grey, a non-negative one 0 at"
                " black), clip, minmax, abs, offset, LO,HI (values, e.g. -1,1) or pLO,pHI"
                " (percentiles, e.g. p1,p99) [default: auto].",
            ),
        ],
        "auto",
    ),
    "range_scope": (
        Annotated[
            RangeScope,
            Option(
                "--range-scope",
                parser=word_parser(RangeScope, "--range-scope"),
                metavar="file|input",
                show_default=False,
                help="file: each output file its own mapping; input: one mapping for all"
                " files of an input, for side-by-side comparison [default: file].",
            ),
        ],
        RangeScope.file,
    ),
    "cmap": (
        Annotated[
            Any,
            Option(
                "--cmap",
                parser=word_parser(Colormap, "--cmap"),
                metavar="NAME",
                show_default=False,
                help=f"Colour map for one-channel pictures: {', '.join(Colormap.choices())}.",
            ),
        ],
        None,
    ),
    "threshold": (
        Annotated[
            Any,
            Option(
                "--threshold",
                parser=_parser(_threshold),
                metavar="T|otsu",
                show_default=False,
                help="Binary 0/255 pictures: mapped values above T are white; otsu picks T per"
                " file.",
            ),
        ],
        None,
    ),
    "quality": (
        Annotated[
            int,
            Option(
                "--quality",
                parser=_parser(_quality),
                metavar="1-100",
                show_default=False,
                help="jpeg and webp quality [default: 90].",
            ),
        ],
        90,
    ),
    "compression": (
        Annotated[
            Compression,
            Option(
                "--compression",
                parser=word_parser(Compression, "--compression"),
                metavar=_metavar(Compression),
                show_default=False,
                help="Lossless tiff compression [default: none].",
            ),
        ],
        Compression.none,
    ),
    "colorbar": (
        Annotated[
            bool,
            Option("--colorbar", help="Add a colour bar with its values to the montage."),
        ],
        False,
    ),
    "montage": (
        Annotated[
            bool,
            Option("--montage", help="Also write one grid picture with a labelled tile per map."),
        ],
        False,
    ),
    "force": (
        Annotated[bool, Option("--force", help="Overwrite existing outputs (never an input).")],
        False,
    ),
    "skip_existing": (
        Annotated[
            bool,
            Option("--skip-existing", help="Skip inputs whose outputs all exist (resume a batch)."),
        ],
        False,
    ),
    "preview": (
        Annotated[bool, Option("--preview", help="Draw the result in the terminal.")],
        False,
    ),
    "json": (Json, False),
    "dry_run": (
        Annotated[
            bool,
            Option("--dry-run", help="Report shapes and file names; compute and write nothing."),
        ],
        False,
    ),
    "quiet": (
        Annotated[bool, Option("--quiet", "-q", help="Print nothing but errors.")],
        False,
    ),
    "recursive": (
        Annotated[bool, Option("--recursive", "-r", help="Search folders recursively.")],
        False,
    ),
    "include": (
        Annotated[
            list[str] | None,
            Option(
                "--include",
                show_default=False,
                metavar="GLOB",
                help="Only files matching GLOB in folders (repeatable).",
            ),
        ],
        None,
    ),
    "exclude": (
        Annotated[
            list[str] | None,
            Option(
                "--exclude",
                show_default=False,
                metavar="GLOB",
                help="Skip files matching GLOB in folders (repeatable).",
            ),
        ],
        None,
    ),
    "workers": (
        Annotated[
            Any,
            Option(
                "--workers",
                "-j",
                show_default=False,
                parser=positive_parser("--workers"),
                metavar="N",
                help="Worker processes for a batch [default: the CPU count].",
            ),
        ],
        None,
    ),
    "manifest": (
        Annotated[
            Path | None,
            Option(
                "--manifest",
                show_default=False,
                metavar="FILE",
                dir_okay=False,
                help="Write one JSON line per input to FILE.",
            ),
        ],
        None,
    ),
    "executor": (
        Annotated[
            Executor,
            Option(
                "--executor",
                show_default=False,
                parser=word_parser(Executor, "--executor"),
                metavar=_metavar(Executor),
                help="Run a batch in local processes or on a Dask cluster [default: local].",
            ),
        ],
        Executor.local,
    ),
    "scheduler": (
        Annotated[
            str | None,
            Option(
                "--scheduler",
                show_default=False,
                metavar="ADDRESS",
                help="The Dask scheduler (with --executor dask), e.g. tcp://10.0.0.5:8786.",
            ),
        ],
        None,
    ),
    "tile": (
        Annotated[
            Any,
            Option(
                "--tile",
                parser=positive_parser("--tile"),
                metavar="N",
                show_default=False,
                help="Compute in tiles of N×N output pixels [default: only images too large"
                " for the memory budget, in full-width bands sized to it].",
            ),
        ],
        None,
    ),
    "memory_budget": (
        Annotated[
            Any,
            Option(
                "--memory-budget",
                parser=_parser(_bytes),
                metavar="SIZE",
                show_default=False,
                help="Working memory a tiled run aims for, e.g. 512M or 2G [default: 256M or"
                " $CONVCLI_MEMORY_BUDGET]; an image whose whole run needs over twice this runs"
                " in tiles.",
            ),
        ],
        None,
    ),
    "max_pixels": (
        Annotated[
            Any,
            Option(
                "--max-pixels",
                parser=_parser(_max_pixels),
                metavar="N|none",
                show_default=False,
                help="Refuse input images with more pixels (a decompression-bomb guard)"
                " [default: 89,478,485]; none lifts it.",
            ),
        ],
        "default",
    ),
    "max_output_pixels": (
        Annotated[
            Any,
            Option(
                "--max-output-pixels",
                parser=_parser(_limit),
                metavar="N|auto|none",
                show_default=False,
                help="Most values (C×H×W) any one array of the run may hold (padded input,"
                " stage output, montage), checked before computing: N, auto (2**28, or 4×"
                " the input if more) or none [default: auto].",
            ),
        ],
        "auto",
    ),
}

assert set(_OUTPUT_PARAMS) == {f.name for f in fields(OutputArgs)} - {"given"}


def with_output_options(command: F) -> F:
    """Add the shared output and batch options to ``command``, passed as ``outputs: OutputArgs``.

    The command declares ``ctx: click.Context`` and ``outputs: OutputArgs`` last;
    the command line sees one option per field instead.
    """
    sig = inspect.signature(command, eval_str=True)
    own = [p for name, p in sig.parameters.items() if name != "outputs"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, (ann, default) in _OUTPUT_PARAMS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        ctx: click.Context = kwargs["ctx"]
        values = {name: kwargs.pop(name) for name in _OUTPUT_PARAMS}
        values["include"] = tuple(values["include"] or ())
        values["exclude"] = tuple(values["exclude"] or ())
        named = frozenset(name for name in _OUTPUT_PARAMS if given(ctx, name))
        return command(**kwargs, outputs=OutputArgs(**values, given=named))

    wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    del wrapper.__wrapped__  # the command is built from the new signature, not the command's
    return wrapper  # type: ignore[return-value]


def given(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
