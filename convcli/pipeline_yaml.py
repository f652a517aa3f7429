"""Pipeline files for ``convcli run`` and ``convcli shape`` (SPEC §4).

A pipeline file names the stages an image goes through, in order::

    name: tiny-cnn
    gray: true                 # image options: gray, alpha, dtype
    stages:
      - conv: {kernel: sobel, activation: relu}     # any layer option
      - pool: {op: max, size: 2}
      - conv: {kernel: layer2.yaml, stride: 2}      # 4-D kernels must match the maps' count
      - pool: {op: avg, size: 2}
    output: {format: png, montage: true}            # defaults for the output options

Option names are the command line's without the dashes (``pad_mode`` or
``pad-mode``). ``- conv: sobel`` and ``- pool: max`` are short for
``{kernel: sobel}`` and ``{op: max}``. A kernel is a built-in spec, a YAML file
or a list of them (one bank); files are looked for next to the pipeline file
first, then as ``-k`` does.

Every error is a :class:`~convcli.errors.PipelineError` naming the file, the
line and the stage: ``tiny.yaml:7: stage 3 (conv): unknown option 'strid' (did
you mean 'stride'?)``.

Examples
--------
>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "p.yaml").write_text("stages:\\n  - conv: {kernel: sobel-x, strid: 2}\\n")
>>> load_pipeline(d / "p.yaml")  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
convcli.errors.PipelineError: .../p.yaml:2: stage 1 (conv): unknown option 'strid'
(did you mean 'stride'?)
>>> _ = (d / "p.yaml").write_text("stages:\\n  - conv: sobel-x\\n  - pool: max\\n")
>>> pipeline, output = load_pipeline(d / "p.yaml")
>>> [s.name for s in pipeline.stages], pipeline.name, output
(['sobel-x', 'maxpool'], 'p', {})
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convcli.errors import ConvcliError, ParameterError, PipelineError, ShapeError
from convcli.pipeline import ALPHA_MODES, ConvStage, Pipeline, PoolStage, Result, Stage, plan
from convcli.yamlnodes import (
    TAG_BOOL,
    TAG_FLOAT,
    TAG_INT,
    TAG_NULL,
    construct,
    did_you_mean,
    line_of,
)

TOP_KEYS = ("name", "description", "gray", "alpha", "dtype", "stages", "output")
CONV_KEYS = (
    "kernel", "stride", "padding", "pad_mode", "pad_value", "dilation", "flip", "bias",
    "activation", "groups",
)  # fmt: skip
POOL_KEYS = ("op", "size", "stride", "padding", "ceil_mode", "count_include_pad")
OUTPUT_KEYS = (
    "out", "format", "bit_depth", "range", "montage", "force", "skip_existing", "preview",
    "save_stages",
)  # fmt: skip
FORMATS = ("png", "tiff", "npy", "npz")
RANGES = ("auto", "clip", "minmax", "abs", "offset")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class PipelineFile:
    """A parsed pipeline file: the pipeline, its ``output:`` defaults, and where each stage is."""

    pipeline: Pipeline
    output: dict[str, Any]
    file: str
    stage_lines: tuple[int | None, ...]

    def plan(self, in_shape: tuple[int, int, int], channels: str = "") -> Result:
        """:func:`plan_stages` with errors that name this file and the stage's line."""
        return plan_stages(
            self.pipeline, in_shape, channels, file=self.file, lines=self.stage_lines
        )


def load_pipeline(
    path: str | Path, *, kernel_dirs: Iterable[str | Path] = ()
) -> tuple[Pipeline, dict[str, Any]]:
    """Read a pipeline file: ``(Pipeline, output defaults)``.

    The output defaults use the keys of :data:`OUTPUT_KEYS` (``format``,
    ``range``, ``bit_depth`` ...); only keys the file sets are present.

    Raises
    ------
    PipelineError
        Naming ``file:line`` and the stage, for every problem in the file,
        including a kernel that cannot be loaded.
    """
    pf = read_pipeline(path, kernel_dirs=kernel_dirs)
    return pf.pipeline, pf.output


def read_pipeline(path: str | Path, *, kernel_dirs: Iterable[str | Path] = ()) -> PipelineFile:
    """Like :func:`load_pipeline`, keeping the file name and each stage's line."""
    return _Reader(Path(path), list(kernel_dirs)).read()


def plan_stages(
    pipeline: Pipeline,
    in_shape: tuple[int, int, int],
    channels: str = "",
    *,
    file: str | None = None,
    lines: Sequence[int | None] = (),
) -> Result:
    """:func:`convcli.pipeline.plan`, with shape errors naming the stage that fails.

    With ``file`` the error is a :class:`PipelineError` at that stage's line;
    otherwise a :class:`ShapeError` starting ``stage N (...)``.

    >>> import numpy as np
    >>> from convcli.kernels import Kernel, load_kernel
    >>> layer = Kernel("layer2", np.zeros((4, 3, 3, 3)))
    >>> p = Pipeline((ConvStage(load_kernel("sobel")), PoolStage("max", 2), ConvStage(layer)),
    ...              name="x")
    >>> plan_stages(p, (1, 8, 8))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    convcli.errors.ShapeError: stage 3 (conv layer2): layer kernel expects 3 input channels
    (c_in/groups=3 × groups=1), the input has 2 (coming from stage 2: 2×4×4)
    """
    try:
        return plan(pipeline, in_shape, channels)
    except ParameterError as exc:
        failed = exc
    # find the first stage that does not fit by planning ever longer prefixes
    n, maps_in = len(pipeline.stages), in_shape
    for i in range(1, len(pipeline.stages) + 1):
        prefix = Pipeline(pipeline.stages[:i], name=pipeline.name)
        try:
            maps_in = plan(prefix, in_shape, channels).out_shape
        except ParameterError as exc:
            n, failed = i, exc
            break
    stage = pipeline.stages[n - 1]
    came = "the input image" if n == 1 else f"stage {n - 1}"
    message = (
        f"stage {n} ({stage.kind} {stage.name}): {failed} (coming from {came}: "
        f"{'×'.join(str(v) for v in maps_in)})"
    )
    if file is not None:
        line = lines[n - 1] if n - 1 < len(lines) else None
        raise PipelineError(message, file=file, line=line) from failed
    raise ShapeError(message) from failed


# --------------------------------------------------------------------------- reading


def _construct(node: yaml.Node) -> Any:
    """The Python value of a node (:func:`convcli.yamlnodes.construct`, as a PipelineError;
    the file and stage are filled in by :meth:`_Reader.read`)."""
    return construct(node, PipelineError)


class _Reader:
    def __init__(self, path: Path, kernel_dirs: list[str | Path]):
        self.path = path
        self.file = str(path)
        self.kernel_dirs = kernel_dirs
        self.where = ""  # "stage 3 (conv): " while reading a stage

    def error(self, message: str, node: yaml.Node | None) -> PipelineError:
        return PipelineError(f"{self.where}{message}", file=self.file, line=line_of(node))

    # ----------------------------------------------------------------- structure

    def read(self) -> PipelineFile:
        try:
            return self._read()
        except PipelineError as exc:
            if exc.file is None:  # from _construct, which knows only the node
                raise PipelineError(
                    f"{self.where}{exc.message}", file=self.file, line=exc.line
                ) from None
            raise
        except RecursionError:
            raise PipelineError(
                "nested too deeply (or a list that contains itself through an alias)",
                file=self.file,
            ) from None

    def _read(self) -> PipelineFile:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PipelineError("no such pipeline file", file=self.file) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PipelineError(f"cannot read the pipeline file: {exc}", file=self.file) from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
            problem = " ".join(problem.split())
            line = mark.line + 1 if mark is not None else None
            raise PipelineError(f"not valid YAML: {problem}", file=self.file, line=line) from None
        if root is None:
            raise PipelineError(
                "the file is empty; a pipeline needs 'stages:' (a list of conv: / pool:)",
                file=self.file,
            )
        top = self.mapping(root, TOP_KEYS, "a pipeline file", kind="key")
        if "stages" not in top:
            raise self.error("no 'stages:' (a list of conv: / pool: steps)", root)
        name = self.path.stem
        if "name" in top:
            name = self.text(top["name"][1], "name")
        if "description" in top:
            self.text(top["description"][1], "description")
        gray = self.boolean(top["gray"][1], "gray") if "gray" in top else False
        alpha = self.word(top["alpha"][1], "alpha", ALPHA_MODES) if "alpha" in top else None
        dtype = self.word(top["dtype"][1], "dtype", DTYPES) if "dtype" in top else "float32"
        stages_node = top["stages"][1]
        if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
            raise self.error(
                "stages must be a non-empty list of steps such as '- conv: {kernel: sobel}'",
                stages_node,
            )
        stages: list[Stage] = []
        lines: list[int | None] = []
        for i, node in enumerate(stages_node.value, 1):
            stages.append(self.stage(i, node))
            lines.append(line_of(node))
            self.where = ""
        output = self.output(top["output"][1]) if "output" in top else {}
        pipeline = Pipeline(
            tuple(stages), name=name, gray=gray, alpha=alpha or "premultiply", dtype=dtype
        )
        return PipelineFile(pipeline, output, self.file, tuple(lines))

    def mapping(
        self, node: yaml.Node, known: Sequence[str], what: str, kind: str = "option"
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys (dashes read as underscores) of a mapping node; unknown keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            got = "a list" if isinstance(node, yaml.SequenceNode) else f"{node.value!r}"
            raise self.error(f"{what} must be a mapping (key: value), got {got}", node)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(f"{what} has a list or mapping where a name should be", key_node)
            raw = str(key_node.value)
            key = raw.strip().lower().replace("-", "_")
            if key not in known:
                shown = [k.replace("_", "-") if "-" in raw else k for k in known]
                hint = did_you_mean(raw, shown) or f"; use one of {', '.join(shown)}"
                raise self.error(f"unknown {kind} {raw!r}{hint}", key_node)
            if key in out:
                first = line_of(out[key][0])
                raise self.error(f"{raw!r} is given twice (first on line {first})", key_node)
            out[key] = (key_node, value_node)
        return out

    def stage(self, i: int, node: yaml.Node) -> Stage:
        self.where = f"stage {i}: "
        example = "'- conv: {kernel: sobel}' or '- pool: {op: max, size: 2}'"
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            n = len(node.value) if isinstance(node, yaml.MappingNode) else 0
            if n > 1:
                keys = ", ".join(str(k.value) for k, _ in node.value)
                raise self.error(
                    f"a step is one conv: or pool: (got {keys}); indent its options under it,"
                    f" e.g. {example}",
                    node,
                )
            raise self.error(f"each step must be {example}", node)
        key_node, body = node.value[0]
        kind = str(key_node.value).strip().lower()
        if kind not in ("conv", "pool"):
            raise self.error(
                f"unknown step {key_node.value!r}{did_you_mean(kind, ('conv', 'pool'))};"
                " use conv or pool",
                key_node,
            )
        self.where = f"stage {i} ({kind}): "
        if kind == "conv":
            return self.conv(key_node, body)
        return self.pool(key_node, body)

    # ----------------------------------------------------------------- stages

    def conv(self, key_node: yaml.Node, body: yaml.Node) -> ConvStage:
        if isinstance(body, yaml.ScalarNode | yaml.SequenceNode) and body.tag != TAG_NULL:
            m = {"kernel": (key_node, body)}  # - conv: sobel   /   - conv: [sobel-x, laplacian]
        elif isinstance(body, yaml.ScalarNode):
            raise self.error("conv needs a kernel, e.g. '- conv: {kernel: sobel}'", key_node)
        else:
            m = self.mapping(body, CONV_KEYS, "conv options")
        if "kernel" not in m:
            raise self.error("conv needs a kernel, e.g. '- conv: {kernel: sobel}'", body)
        kernel = self.kernel(m["kernel"][1])
        opts: dict[str, Any] = {}
        for key in ("stride", "dilation"):
            if key in m:
                opts[key] = self.pair(m[key][1], key)
        if "padding" in m:
            opts["padding"] = self.padding(m["padding"][1], conv=True)
        if "pad_mode" in m:
            from convcli.ops.padding import PAD_MODES

            opts["pad_mode"] = self.word(m["pad_mode"][1], "pad_mode", PAD_MODES)
        if "pad_value" in m:
            opts["pad_value"] = self.number(m["pad_value"][1], "pad_value")
        if "flip" in m:
            opts["flip"] = self.boolean(m["flip"][1], "flip")
        if "bias" in m:
            opts["bias"] = self.bias(m["bias"][1])
        if "activation" in m:
            opts["activation"] = self.activation(m["activation"][1])
        if "groups" in m:
            opts["groups"] = self.whole(m["groups"][1], "groups", minimum=1)
        stage = ConvStage(kernel, **opts)
        self.validate(stage, key_node)
        return stage

    def pool(self, key_node: yaml.Node, body: yaml.Node) -> PoolStage:
        from convcli.shapes import POOL_OPS

        if isinstance(body, yaml.ScalarNode) and body.tag == TAG_NULL:
            m: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        elif isinstance(body, yaml.ScalarNode):
            m = {"op": (key_node, body)}  # - pool: max
        else:
            m = self.mapping(body, POOL_KEYS, "pool options")
        opts: dict[str, Any] = {}
        if "op" in m:
            opts["op"] = self.word(m["op"][1], "op", POOL_OPS)
        if "size" in m:
            opts["size"] = self.pair(m["size"][1], "size")
        if "stride" in m:
            opts["stride"] = self.pair(m["stride"][1], "stride")
        if "padding" in m:
            opts["padding"] = self.padding(m["padding"][1], conv=False)
        for key in ("ceil_mode", "count_include_pad"):
            if key in m:
                opts[key] = self.boolean(m[key][1], key)
        stage = PoolStage(**opts)
        self.validate(stage, key_node)
        return stage

    def validate(self, stage: Stage, node: yaml.Node) -> None:
        try:
            stage.validate()
        except ParameterError as exc:
            raise self.error(str(exc), node) from None

    def kernel(self, node: yaml.Node) -> Any:
        from convcli.pipeline import bank_of

        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise self.error("kernel is an empty list", node)
            specs = [self.text(n, "kernel") for n in node.value]
        else:
            specs = [self.text(node, "kernel")]
        from convcli.safety import NAME_MAX, shorten, too_long_name

        folder = self.path.parent
        resolved = []
        for spec in specs:
            long = too_long_name(spec)
            if long is not None:
                raise self.error(
                    f"kernel: the name {shorten(long)} is longer than file systems allow"
                    f" ({NAME_MAX} bytes)",
                    node,
                )
            beside = folder / spec
            resolved.append(str(beside) if beside.is_file() else spec)
        try:
            return bank_of(resolved, kernel_dirs=[folder, *self.kernel_dirs])
        except ConvcliError as exc:
            raise self.error(f"kernel: {exc}", node) from None

    def output(self, node: yaml.Node) -> dict[str, Any]:
        self.where = "output: "
        m = self.mapping(node, OUTPUT_KEYS, "output")
        out: dict[str, Any] = {}
        for key, (_, value) in m.items():
            if key == "out":
                out[key] = self.text(value, key)
            elif key == "format":
                word = self.text(value, key).strip().lower()
                out[key] = self.word(value, key, FORMATS) if word != "tif" else "tiff"
            elif key == "range":
                out[key] = self.word(value, key, RANGES)
            elif key == "bit_depth":
                depth = self.whole(value, key, minimum=1)
                if depth not in (8, 16):
                    raise self.error(f"bit_depth must be 8 or 16, got {depth}", value)
                out[key] = depth
            else:
                out[key] = self.boolean(value, key)
        self.where = ""
        return out

    # ----------------------------------------------------------------- values

    def text(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == TAG_NULL or not str(node.value):
            got = "nothing" if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            raise self.error(f"{what} must be text, got {got}", node)
        return str(node.value)

    def word(self, node: yaml.Node, what: str, choices: Sequence[str]) -> str:
        value = self.text(node, what).strip().lower()
        if value not in choices:
            raise self.error(
                f"{what} must be one of {', '.join(choices)}; got {value!r}"
                f"{did_you_mean(value, choices)}",
                node,
            )
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_BOOL:
            shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            raise self.error(f"{what} must be true or false, got {shown!r}", node)
        return bool(_construct(node))

    def number(self, node: yaml.Node, what: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (TAG_INT, TAG_FLOAT):
            shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            raise self.error(f"{what} must be a number, got {shown!r}", node)
        value = float(_construct(node))
        if not math.isfinite(value):
            raise self.error(f"{what} must be a finite number, got {node.value}", node)
        return value

    def whole(self, node: yaml.Node, what: str, *, minimum: int) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_INT:
            shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            raise self.error(f"{what} must be a whole number, got {shown!r}", node)
        value = int(_construct(node))
        if value < minimum:
            raise self.error(f"{what} must be >= {minimum}, got {value}", node)
        return value

    def bias(self, node: yaml.Node) -> float | tuple[float, ...]:
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise self.error("bias is an empty list", node)
            return tuple(self.number(n, "bias") for n in node.value)
        return self.number(node, "bias")

    def pair(self, node: yaml.Node, what: str) -> Any:
        from convcli.shapes import as_pair

        value = self.plain(node, what)
        try:
            return as_pair(value, what)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None

    def padding(self, node: yaml.Node, *, conv: bool) -> Any:
        from convcli.shapes import parse_padding

        value = self.plain(node, "padding")
        try:
            spec = parse_padding(value)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None
        if spec == "full" and not conv:
            raise self.error("pool padding must be P, PH,PW, valid or same; got 'full'", node)
        return spec

    def activation(self, node: yaml.Node) -> str:
        from convcli.ops.activations import parse_activation

        if isinstance(node, yaml.ScalarNode) and node.tag == TAG_NULL:
            return "none"
        text = self.text(node, "activation").strip().lower()
        try:
            parse_activation(text)
        except ParameterError as exc:
            base = text.partition(":")[0]
            from convcli.ops.activations import ACTIVATIONS

            raise self.error(f"{exc}{did_you_mean(base, ACTIVATIONS)}", node) from None
        return text

    def plain(self, node: yaml.Node, what: str) -> Any:
        """A scalar or a flat list of scalars, as Python values (lists become tuples)."""
        if isinstance(node, yaml.SequenceNode):
            if any(not isinstance(n, yaml.ScalarNode) for n in node.value):
                raise self.error(f"{what} must be a number or a flat list of numbers", node)
            return tuple(_construct(n) for n in node.value)
        if isinstance(node, yaml.MappingNode):
            raise self.error(f"{what} must be a number or a list, got a mapping", node)
        value = _construct(node)
        if value is None:
            raise self.error(f"{what} has no value", node)
        if isinstance(value, float) and not value.is_integer():
            raise self.error(f"{what} must hold whole numbers, got {value}", node)
        return int(value) if isinstance(value, float) else value


__all__ = ["PipelineFile", "load_pipeline", "plan_stages", "read_pipeline"]
