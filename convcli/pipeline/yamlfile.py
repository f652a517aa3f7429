"""Pipeline files for ``convcli run`` and ``convcli shape`` (README, "Multi-stage pipelines").

A pipeline file names the stages an image goes through, in order::

    name: tiny-cnn
    gray: true                 # image options: gray, alpha, dtype
    stages:
      - conv: {kernel: sobel, activation: relu}     # any layer option
      - pool: {op: max, size: 2}
      - conv: {kernel: layer2.yaml, stride: 2}      # 4-D kernels must match the maps' count
      - pool: {op: avg, size: 2}
    output: {format: png, montage: true}            # defaults for the output options

``- combine: magnitude`` (or ``{op: max}``) reduces a bank's maps to one per
input channel (:class:`~convcli.pipeline.CombineStage`).

Option names are the command line's without the dashes (``pad_mode`` or
``pad-mode``). ``- conv: sobel`` and ``- pool: max`` are short for
``{kernel: sobel}`` and ``{op: max}``. A kernel is a built-in spec, a YAML file
or a list of them (one bank); files are looked for next to the pipeline file
first, then as ``-k`` does. A conv stage may instead give a layer's shape only —
``{kernel_size: 3, out_channels: 64, groups: 1, bias: true}`` — for
``convcli shape``; such a file cannot be run (:meth:`PipelineFile.require_weights`).

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convcli.errors import ConvcliError, ParameterError, PipelineError, ShapeError
from convcli.pipeline.engine import (
    CombineStage,
    ConvStage,
    Pipeline,
    PoolStage,
    Result,
    Stage,
    plan,
)
from convcli.vocab import (
    Alpha,
    Colormap,
    CombineOp,
    Compression,
    DType,
    Format,
    PadMode,
    PoolOp,
    RangeScope,
    did_you_mean,
)
from convcli.yamlnodes import TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_NULL, NodeReader, construct, line_of

TOP_KEYS = ("name", "description", "gray", "alpha", "dtype", "stages", "output")
CONV_KEYS = (
    "kernel", "stride", "padding", "pad_mode", "pad_value", "dilation", "flip", "bias",
    "activation", "groups", "kernel_size", "out_channels",
)  # fmt: skip
POOL_KEYS = ("op", "size", "stride", "padding", "ceil_mode", "count_include_pad")
COMBINE_KEYS = ("op",)
OUTPUT_KEYS = (
    "out", "format", "bit_depth", "range", "montage", "force", "skip_existing", "preview",
    "save_stages", "range_scope", "cmap", "threshold", "quality", "compression", "colorbar",
)  # fmt: skip


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

    def require_weights(self) -> None:
        """Refuse to run a file whose conv stages give only a ``kernel_size`` (no weights)."""
        for i, stage in enumerate(self.pipeline.stages, 1):
            if isinstance(stage, ConvStage) and stage.shape_only:
                raise PipelineError(
                    f"stage {i} (conv {stage.name}): kernel_size gives a layer's shape but no"
                    " weights, so there is nothing to run; give each conv stage a kernel (a"
                    " kernel file or a built-in) to run this file, or see its sizes with"
                    " 'convcli shape FILE --input CxHxW'",
                    file=self.file,
                    line=self.stage_lines[i - 1],
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


class _Reader(NodeReader):
    def __init__(self, path: Path, kernel_dirs: list[str | Path]):
        self.path = path
        self.file = str(path)
        self.kernel_dirs = kernel_dirs
        self.where = ""  # "stage 3 (conv): " while reading a stage

    def error(self, message: str, node: yaml.Node | None = None) -> PipelineError:
        return PipelineError(f"{self.where}{message}", file=self.file, line=line_of(node))

    def construct(self, node: yaml.Node) -> Any:
        return _construct(node)

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
        alpha = self.word(top["alpha"][1], "alpha", Alpha).value if "alpha" in top else None
        dtype = self.word(top["dtype"][1], "dtype", DType).value if "dtype" in top else "float32"
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
        steps = ("conv", "pool", "combine")
        if kind not in steps:
            raise self.error(
                f"unknown step {key_node.value!r}{did_you_mean(kind, steps)};"
                " use conv, pool or combine",
                key_node,
            )
        self.where = f"stage {i} ({kind}): "
        if kind == "conv":
            return self.conv(key_node, body)
        if kind == "combine":
            return self.combine(key_node, body)
        return self.pool(key_node, body)

    # ----------------------------------------------------------------- stages

    def conv(self, key_node: yaml.Node, body: yaml.Node) -> ConvStage:
        if isinstance(body, yaml.ScalarNode | yaml.SequenceNode) and body.tag != TAG_NULL:
            m = {"kernel": (key_node, body)}  # - conv: sobel   /   - conv: [sobel-x, laplacian]
        elif isinstance(body, yaml.ScalarNode):
            raise self.error("conv needs a kernel, e.g. '- conv: {kernel: sobel}'", key_node)
        else:
            m = self.mapping(body, CONV_KEYS, "conv options")
        if "kernel" not in m and "kernel_size" not in m:
            raise self.error(
                "conv needs a kernel, e.g. '- conv: {kernel: sobel}' (or a kernel_size, for a"
                " layer described by its shape only)",
                body,
            )
        opts: dict[str, Any] = {}
        if "kernel" in m:
            for key in ("kernel_size", "out_channels"):
                if key in m:
                    raise self.error(
                        f"{key} describes a layer without weights: give it instead of kernel,"
                        " not with it",
                        m[key][0],
                    )
            kernel = self.kernel(m["kernel"][1])
        else:
            kernel = self.shape_only(m, opts)
        for key in ("stride", "dilation"):
            if key in m:
                opts[key] = self.pair(m[key][1], key)
        if "padding" in m:
            opts["padding"] = self.padding(m["padding"][1], conv=True)
        if "pad_mode" in m:
            opts["pad_mode"] = self.word(m["pad_mode"][1], "pad_mode", PadMode).value
        if "pad_value" in m:
            opts["pad_value"] = self.number(m["pad_value"][1], "pad_value")
        if "flip" in m:
            opts["flip"] = self.boolean(m["flip"][1], "flip")
        if "bias" in m and "bias" not in opts:
            opts["bias"] = self.bias(m["bias"][1])
        if "activation" in m:
            opts["activation"] = self.activation(m["activation"][1])
        if "groups" in m:
            opts["groups"] = self.whole(m["groups"][1], "groups", minimum=1)
        stage = ConvStage(kernel, **opts)
        self.validate(stage, key_node)
        return stage

    def shape_only(self, m: dict[str, tuple[yaml.Node, yaml.Node]], opts: dict[str, Any]) -> Any:
        """``kernel_size`` [``out_channels``, ``groups``, ``bias: true``]: a layer's shape."""
        from convcli.kernels.shapeonly import shape_only_kernel

        size = self.pair(m["kernel_size"][1], "kernel_size")
        out = None
        if "out_channels" in m:
            out = self.whole(m["out_channels"][1], "out_channels", minimum=1)
        elif "groups" in m:
            raise self.error("groups needs out_channels (a layer)", m["groups"][0])
        bias = m.get("bias", (None, None))[1]
        if isinstance(bias, yaml.ScalarNode) and bias.tag == TAG_BOOL:
            if self.boolean(bias, "bias"):
                opts["bias"] = True  # counted, one per output map
            else:
                opts["bias"] = None
        return shape_only_kernel(size, out_channels=out)

    def pool(self, key_node: yaml.Node, body: yaml.Node) -> PoolStage:
        if isinstance(body, yaml.ScalarNode) and body.tag == TAG_NULL:
            m: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        elif isinstance(body, yaml.ScalarNode):
            m = {"op": (key_node, body)}  # - pool: max
        else:
            m = self.mapping(body, POOL_KEYS, "pool options")
        opts: dict[str, Any] = {}
        if "op" in m:
            opts["op"] = self.word(m["op"][1], "op", PoolOp).value
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

    def combine(self, key_node: yaml.Node, body: yaml.Node) -> CombineStage:
        if isinstance(body, yaml.ScalarNode) and body.tag == TAG_NULL:
            raise self.error(
                f"combine needs an op ({', '.join(CombineOp.choices())}),"
                " e.g. '- combine: magnitude'",
                key_node,
            )
        if isinstance(body, yaml.ScalarNode):
            m = {"op": (key_node, body)}  # - combine: magnitude
        else:
            m = self.mapping(body, COMBINE_KEYS, "combine options")
        if "op" not in m:
            raise self.error("combine needs an op, e.g. '- combine: {op: max}'", body)
        stage = CombineStage(self.word(m["op"][1], "op", CombineOp).value)
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
                out[key] = self.word(value, key, Format).value
            elif key in ("range", "range_scope", "cmap", "threshold", "compression"):
                out[key] = self.picture_option(key, value)
            elif key == "quality":
                out[key] = self.whole(value, key, minimum=1)
                if out[key] > 100:
                    raise self.error(f"quality must be 1 to 100, got {out[key]}", value)
            elif key == "bit_depth":
                depth = self.whole(value, key, minimum=1)
                if depth not in (8, 16):
                    raise self.error(f"bit_depth must be 8 or 16, got {depth}", value)
                out[key] = depth
            else:
                out[key] = self.boolean(value, key)
        self.where = ""
        return out

    def picture_option(self, key: str, node: yaml.Node) -> Any:
        """``range`` (a word, ``LO,HI`` or ``pLO,pHI``), ``range_scope``, ``cmap``,
        ``threshold`` (a number or ``otsu``) or ``compression``, checked."""
        from convcli.imageio.tone import parse_range
        from convcli.imageio.write import parse_threshold

        try:
            if key == "threshold":
                if isinstance(node, yaml.ScalarNode) and node.tag in (TAG_INT, TAG_FLOAT):
                    return parse_threshold(self.number(node, key))
                return parse_threshold(self.text(node, key))
            if key == "range":
                text = self.text(node, key).strip()
                parse_range(text)
                return text.lower()
            if key == "cmap":
                return self.word(node, key, Colormap).value
            words = RangeScope if key == "range_scope" else Compression
            return self.word(node, key, words).value
        except ParameterError as exc:
            raise self.error(str(exc), node) from None


__all__ = ["PipelineFile", "load_pipeline", "plan_stages", "read_pipeline"]
