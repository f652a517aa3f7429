"""YAML kernel files: a loader whose errors name the file and line, and a linter.

The file format (README, "YAML kernel files") is one kernel::

    name: my-edge            # defaults to the file stem
    description: Horizontal edges, Sobel-like
    weights:                 # rows of numbers; or [c_out][c_in][kh][kw] (a CNN layer)
      - [-1, 0, 1]
      - [-2, 0, 2]
      - [-1, 0, 1]
    normalize: none          # none | sum | l1
    scale: 1.0               # multiplied in after normalizing
    bias: 0.0                # scalar, or a list (one per output channel / bank member)
    origin: center           # or [row, col] of the anchor tap
    flip: false              # false = cross-correlation (no flip), as in CNNs
    stride: 1                # optional layer defaults: stride, padding,
    padding: same            # dilation, activation (command-line options win)

or a bank: ``kernels:`` a list of mappings, each with ``weights`` (2-D, all the
same size) and optionally ``name`` (the member's label), ``description``,
``normalize``, ``scale`` and ``bias``. Top-level ``normalize`` and ``scale`` are
the members' defaults; ``origin``, ``flip`` and the layer defaults are top-level
only.

Normalising divides by the sum (``sum``) or the sum of absolute values
(``l1``): a 2-D kernel or bank member as a whole, a 4-D layer per output
channel. The stored weights are final: normalisation and scale are applied, the
flip is not (``Kernel.flip`` tells ``conv2d`` to do it).

Line numbers come from :func:`yaml.compose`, which keeps each node's position.

Examples
--------
>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "blur.yaml").write_text("weights: [[1, 2, 1]]\\nnormalize: sum\\n")
>>> load_kernel_file(d / "blur.yaml").weights.tolist()
[[0.25, 0.5, 0.25]]
>>> _ = (d / "bad.yaml").write_text("weights:\\n  - [1, 2, 3]\\n  - [4, 5]\\n")
>>> load_kernel_file(d / "bad.yaml")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
convcli.errors.KernelError: .../bad.yaml:3: weights row 2 has 2 numbers, row 1 has 3
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from convcli.errors import KernelError, ParameterError
from convcli.kernels.model import Kernel, kernel_rank, separable_factors, symmetry, weights_sum
from convcli.vocab import Normalize, did_you_mean
from convcli.yamlnodes import TAG_INT, NodeReader, construct, line_of

TOP_KEYS = (
    "name",
    "description",
    "weights",
    "kernels",
    "normalize",
    "scale",
    "bias",
    "origin",
    "flip",
    "stride",
    "padding",
    "dilation",
    "activation",
)
MEMBER_KEYS = ("name", "description", "weights", "normalize", "scale", "bias")
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One lint result: ``severity`` is ``"error"``, ``"warning"`` or ``"info"``.

    ``str(finding)`` is the line ``convcli kernels validate`` prints.

    >>> str(Finding("warning", "unknown key 'weigth'", file="k.yaml", line=3))
    "k.yaml:3: warning: unknown key 'weigth'"
    """

    severity: str
    message: str
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.severity}: {self.message}"


def _construct(node: yaml.Node) -> Any:
    """The Python value of a node (:func:`convcli.yamlnodes.construct`, as a KernelError)."""
    return construct(node, KernelError)


#: The most numbers a weights entry may hold (aliases can repeat a list
#: exponentially: a "billion laughs" file must fail fast, not fill the memory).
MAX_WEIGHTS = 1 << 22


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(n) for n in shape)


class _Reader(NodeReader):
    """Reads one file, collecting warnings and raising the first error."""

    def __init__(self, path: Path):
        self.path = path
        self.file = str(path)
        self.findings: list[Finding] = []
        self.lines: dict[str, int | None] = {}

    def error(self, message: str, node: yaml.Node | None = None) -> KernelError:
        return KernelError(message, file=self.file, line=line_of(node))

    def construct(self, node: yaml.Node) -> Any:
        return _construct(node)

    def note(self, severity: str, message: str, line: int | None) -> None:
        self.findings.append(Finding(severity, message, self.file, line))

    # ----------------------------------------------------------------- structure

    def mapping(
        self, node: yaml.Node, known: tuple[str, ...], where: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys of a mapping node; unknown and duplicate keys become warnings."""
        if not isinstance(node, yaml.MappingNode):
            got = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise self.error(f"{where} must be a mapping (key: value lines), got {got}", node)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key not in known:
                shown = key if key is not None else "(a list or mapping)"
                hint = did_you_mean(shown, known)
                self.note("warning", f"unknown key {shown!r}{hint}; ignored", line_of(key_node))
                continue
            if key in out:
                self.note(
                    "warning",
                    f"duplicate key {key!r} (first on line {line_of(out[key][0])}); the last wins",
                    line_of(key_node),
                )
            out[key] = (key_node, value_node)
        return out

    def missing_weights(self, node: yaml.MappingNode, keys: tuple[str, ...], where: str) -> None:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                close = difflib.get_close_matches(str(key_node.value), keys, n=1, cutoff=0.6)
                if close and str(key_node.value) not in keys:
                    raise self.error(
                        f"{where} has no 'weights' (is {key_node.value!r} a typo for "
                        f"{close[0]!r}?)",
                        key_node,
                    )
        need = "'weights' (or 'kernels' for a bank)" if "kernels" in keys else "'weights'"
        raise self.error(f"{where} has no {need}", node)

    # ----------------------------------------------------------------- weights

    def weights(self, node: yaml.Node, label: str = "weights") -> np.ndarray:
        """A nested list of numbers → array; ragged, non-number and non-finite entries fail."""
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            raise self.error(f"{label} is empty", node)
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(
                f"{label} must be a list of rows, e.g. [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]", node
            )
        values, _shape = self._nested(node, (), label)
        w = np.array(values, dtype=np.float64)
        if w.ndim == 1:
            raise self.error(
                f"{label} is a flat list of {w.size} numbers (1-D); a kernel needs rows: "
                f"write it as [[{', '.join(f'{v:g}' for v in w[:5])}{', ...' * (w.size > 5)}]]",
                node,
            )
        if w.ndim not in (2, 4):
            raise self.error(
                f"{label} is {w.ndim}-D ({_shape_text(w.shape)}); use 2-D rows [kh][kw] "
                "or a 4-D layer [c_out][c_in][kh][kw] (for a bank, use 'kernels:')",
                node,
            )
        return w

    def _nested(
        self, node: yaml.Node, path: tuple[int, ...], label: str
    ) -> tuple[Any, tuple[int, ...]]:
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise self.error(f"{_where(label, path)} is empty", node)
            if not path and _count(node, {}, set()) > MAX_WEIGHTS:
                raise self.error(f"{label} holds more than {MAX_WEIGHTS} numbers", node)
            parts = [self._nested(child, (*path, i), label) for i, child in enumerate(node.value)]
            first = parts[0][1]
            for i, (_, shape) in enumerate(parts[1:], start=1):
                if shape != first:
                    raise self.error(_ragged(label, path, i, shape, first), node.value[i])
            return [p[0] for p in parts], (len(parts), *first)
        return self.number(node, _where(label, path)), ()


def _count(node: yaml.Node, memo: dict[int, int], busy: set[int]) -> int:
    """How many numbers a list node expands to, counting each shared (aliased) node once."""
    if not isinstance(node, yaml.SequenceNode):
        return 1
    key = id(node)
    if key in busy:
        raise RecursionError  # the list contains itself
    if key not in memo:
        busy.add(key)
        memo[key] = sum(_count(child, memo, busy) for child in node.value)
        busy.discard(key)
    return memo[key]


def _where(label: str, path: tuple[int, ...]) -> str:
    """``weights row 2, column 3`` / ``weights[0][1] row 1, column 2`` (1-based rows)."""
    if len(path) == 0:
        return label
    if len(path) == 1:
        return f"{label} row {path[0] + 1}"
    prefix = label + "".join(f"[{k}]" for k in path[:-2])
    return f"{prefix} row {path[-2] + 1}, column {path[-1] + 1}"


def _ragged(
    label: str, path: tuple[int, ...], i: int, shape: tuple[int, ...], first: tuple[int, ...]
) -> str:
    """Message for child ``i`` of the list at ``path`` not matching child 0."""
    here = label + "".join(f"[{k}]" for k in path)
    if len(shape) == 1 and len(first) == 1:
        return f"{here} row {i + 1} has {shape[0]} numbers, row 1 has {first[0]}"
    if not shape or not first:  # a number where a list is, or the other way round
        a, b = ("a number", "a list") if not shape else ("a list", "a number")
        if len(shape) == 1 or len(first) == 1:
            return f"{here} row {i + 1} is {a}, row 1 is {b}"
        return f"{here}[{i}] is {a}, {here}[0] is {b}"
    return f"{here}[{i}] is {_shape_text(shape)}, {here}[0] is {_shape_text(first)}"


# --------------------------------------------------------------------------- kernel assembly


def _normalized(
    reader: _Reader, w: np.ndarray, how: str, node: yaml.Node | None, label: str
) -> np.ndarray:
    if how == "none":
        return w
    groups = w.reshape(w.shape[0], -1) if w.ndim == 4 else w.reshape(1, -1)
    out = []
    for o, g in enumerate(groups):
        total = float(g.sum()) if how == "sum" else float(np.abs(g).sum())
        where = f" of output channel {o}" if w.ndim == 4 else ""
        if how == "sum" and weights_sum(g) == 0.0:
            raise reader.error(
                f"normalize: sum, but the weights{where} of {label} sum to 0 (an edge or "
                "derivative kernel?); use normalize: l1 or none",
                node,
            )
        if how == "l1" and total == 0.0:
            raise reader.error(f"normalize: l1, but every weight{where} of {label} is 0", node)
        out.append(g / total)
    return np.stack(out).reshape(w.shape)


def _origin(reader: _Reader, node: yaml.Node, kh: int, kw: int) -> tuple[int, int] | None:
    if isinstance(node, yaml.ScalarNode):
        if str(node.value).strip().lower() in ("center", "centre", "", "~", "null"):
            return None
        raise reader.error(f"origin must be 'center' or [row, col], got {node.value!r}", node)
    if not isinstance(node, yaml.SequenceNode) or len(node.value) != 2:
        raise reader.error("origin must be 'center' or [row, col] (two whole numbers)", node)
    rc = []
    for n, (axis, size) in zip(node.value, (("row", kh), ("col", kw)), strict=True):
        if not (isinstance(n, yaml.ScalarNode) and n.tag == TAG_INT):
            raise reader.error(f"origin {axis} must be a whole number, got {n.value!r}", n)
        v = int(_construct(n))
        if not 0 <= v < size:
            raise reader.error(
                f"origin {axis} {v} is outside the {kh}×{kw} kernel (0 to {size - 1})", n
            )
        rc.append(v)
    return rc[0], rc[1]


def _layer_defaults(reader: _Reader, m: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, Any]:
    from convcli.shapes import as_pair, parse_padding

    out: dict[str, Any] = {}
    for key in ("stride", "dilation", "padding"):
        if key not in m:
            continue
        node = m[key][1]
        value = _construct(node)
        if isinstance(value, list):
            value = tuple(value)
        try:
            if key == "padding":
                parse_padding(value)
            else:
                as_pair(value, key)
        except (ParameterError, TypeError, ValueError) as exc:
            raise reader.error(str(exc), node) from None
        out[key] = value.strip().lower() if isinstance(value, str) else value
    if "activation" in m:
        out["activation"] = reader.activation(m["activation"][1])
    return out


def _read(reader: _Reader) -> Kernel:
    try:
        return _read_file(reader)
    except KernelError as exc:
        if exc.file is None:  # raised where only the node was known
            raise KernelError(exc.message, file=reader.file, line=exc.line) from None
        raise
    except RecursionError:
        raise reader.error(
            "nested too deeply (or a list that contains itself through an alias)"
        ) from None


def _read_file(reader: _Reader) -> Kernel:
    path = reader.path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KernelError("no such file", file=reader.file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KernelError(f"cannot read the file: {exc}", file=reader.file) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        line = mark.line + 1 if mark is not None else None
        raise KernelError(f"invalid YAML: {problem}", file=reader.file, line=line) from None
    except yaml.YAMLError as exc:  # e.g. a control character: keep the message on one line
        problem = getattr(exc, "problem", None) or str(exc)
        problem = " ".join(problem.split("\n")[0].split())
        raise KernelError(f"invalid YAML: {problem}", file=reader.file) from None
    if root is None:
        raise reader.error("the file is empty; expected a mapping with 'weights:' or 'kernels:'")
    m = reader.mapping(root, TOP_KEYS, "the top level of a kernel file")
    reader.lines = {key: line_of(k) for key, (k, _) in m.items()}
    get = {key: v for key, (_, v) in m.items()}

    name = reader.text(get["name"], "name").strip() if "name" in get else path.stem
    name = name or path.stem
    description = reader.text(get["description"], "description") if "description" in get else ""
    normalize = "none"
    if "normalize" in get:
        normalize = reader.word(get["normalize"], "normalize", Normalize).value
    scale = reader.number(get["scale"], "scale") if "scale" in get else 1.0
    if scale == 0:
        reader.note("warning", "scale is 0, so every weight becomes 0", reader.lines["scale"])
    bias = reader.bias(get["bias"]) if "bias" in get else None
    flip = False
    if "flip" in get:
        flip_value = _construct(get["flip"])
        if not isinstance(flip_value, bool):
            shown = get["flip"].value
            raise reader.error(f"flip must be true or false, got {shown!r}", get["flip"])
        flip = flip_value
    defaults = _layer_defaults(reader, m)

    labels: tuple[str, ...] = ()
    if "weights" in get and "kernels" in get:
        raise reader.error(
            "give either 'weights' (one kernel) or 'kernels' (a bank), not both", m["kernels"][0]
        )
    if "kernels" in get:
        weights, labels, bias = _bank(
            reader, get["kernels"], normalize, scale, bias, get.get("bias")
        )
    elif "weights" in get:
        w = reader.weights(get["weights"])
        w = _normalized(reader, w, normalize, get.get("normalize"), name) * scale
        weights = w
        if isinstance(bias, tuple) and w.ndim == 4 and len(bias) != w.shape[0]:
            raise reader.error(
                f"bias has {len(bias)} values but the layer has {w.shape[0]} output channels",
                get["bias"],
            )
    else:
        reader.missing_weights(root, TOP_KEYS, "the kernel file")  # always raises
        raise AssertionError  # pragma: no cover

    kh, kw = weights.shape[-2:]
    origin = _origin(reader, get["origin"], kh, kw) if "origin" in get else None
    return Kernel(
        name=name,
        weights=weights + 0.0,
        description=description,
        normalize=normalize,
        scale=scale,
        bias=bias,
        origin=origin,
        flip=flip,
        labels=labels,
        stride=defaults.get("stride"),
        padding=defaults.get("padding"),
        dilation=defaults.get("dilation"),
        activation=defaults.get("activation"),
        source=reader.file,
        extra={
            "warnings": tuple(str(f) for f in reader.findings if f.severity == "warning"),
            "lines": dict(reader.lines),
        },
    )


def _bank(
    reader: _Reader,
    node: yaml.Node,
    normalize: str,
    scale: float,
    bias: float | tuple[float, ...] | None,
    bias_node: yaml.Node | None,
) -> tuple[np.ndarray, tuple[str, ...], float | tuple[float, ...] | None]:
    if not isinstance(node, yaml.SequenceNode):
        raise reader.error("kernels must be a list of kernels (each with 'weights')", node)
    if not node.value:
        raise reader.error("kernels is an empty list", node)
    members: list[np.ndarray] = []
    labels: list[str] = []
    biases: list[float] = []
    any_member_bias = False
    for i, member in enumerate(node.value):
        where = f"kernels[{i}]"
        mm = reader.mapping(member, MEMBER_KEYS, where)
        get = {key: v for key, (_, v) in mm.items()}
        if "weights" not in get:
            reader.missing_weights(member, MEMBER_KEYS, where)
        label = reader.text(get["name"], f"{where} name").strip() if "name" in get else ""
        label = label or f"{reader.path.stem}-{i + 1}"
        w = reader.weights(get["weights"], f"{where} weights")
        if w.ndim != 2:
            raise reader.error(f"{where} weights must be 2-D rows in a bank", get["weights"])
        how = (
            reader.word(get["normalize"], "normalize", Normalize).value
            if "normalize" in get
            else (normalize)
        )
        norm_node = get.get("normalize") or get["weights"]
        s = reader.number(get["scale"], f"{where} scale") if "scale" in get else scale
        w = _normalized(reader, w, how, norm_node, label) * s
        if members and w.shape != members[0].shape:
            raise reader.error(
                f"{where} is {_shape_text(w.shape)} but kernels[0] is "
                f"{_shape_text(members[0].shape)}; all members of a bank must be the same size",
                get["weights"],
            )
        reader.lines[f"kernels[{i}]"] = line_of(get["weights"])
        if label in labels:
            reader.note("warning", f"{where} repeats the name {label!r}", line_of(member))
        else:
            _note_file_name(reader, where, label, labels, line_of(member))
        if "bias" in get:
            any_member_bias = True
            biases.append(reader.number(get["bias"], f"{where} bias"))
        else:
            biases.append(bias if isinstance(bias, float) else 0.0)
        members.append(w)
        labels.append(label)
    if isinstance(bias, tuple):
        if any_member_bias:
            raise reader.error(
                "bias is given both at the top (a list) and on members; use one", bias_node
            )
        if len(bias) != len(members):
            raise reader.error(
                f"bias has {len(bias)} values but the bank has {len(members)} kernels", bias_node
            )
    elif any_member_bias:
        bias = tuple(biases)
    return np.stack(members), tuple(labels), bias


def _note_file_name(
    reader: _Reader, where: str, label: str, labels: list[str], line: int | None
) -> None:
    """Warn when a member's name changes in file names, or then equals another member's."""
    from convcli.imageio.write import safe_name

    cleaned = safe_name(label)
    if cleaned == label:
        return
    twin = next((other for other in labels if safe_name(other) == cleaned), None)
    if twin is not None:
        reader.note(
            "warning",
            f"{where} name {label!r} gives the same file name as {twin!r} ({cleaned!r});"
            " a run writing one file per member stops before reading any image",
            line,
        )
    else:
        reader.note("warning", f"{where} name {label!r} is written as {cleaned!r} in file names",
                    line)  # fmt: skip


# --------------------------------------------------------------------------- public API


def read_kernel_file(path: str | Path) -> tuple[Kernel, list[Finding]]:
    """Load a YAML kernel file; return the kernel and the warnings found on the way.

    Raises :class:`~convcli.errors.KernelError` (with ``file`` and ``line``) for
    anything that stops the file from being a kernel.
    """
    reader = _Reader(Path(path))
    kernel = _read(reader)
    return kernel, reader.findings


def load_kernel_file(path: str | Path) -> Kernel:
    """Load a YAML kernel file (a single kernel, a bank, or a 4-D layer).

    Warnings (unknown keys, ...) do not stop loading; they are kept in
    ``kernel.extra["warnings"]`` as ``file:line: warning: message`` lines.
    """
    return read_kernel_file(path)[0]


def describe_weights(w: np.ndarray) -> str:
    """One line about a 2-D kernel: size, sum, separability and symmetry.

    >>> describe_weights(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]))
    '3×3, sum 0, separable (rank 1): [1, 2, 1]ᵀ × [-1, 0, 1]; symmetric (up-down)'
    """
    parts = [f"{_shape_text(w.shape)}, sum {weights_sum(w):.6g}"]
    factors = separable_factors(w)
    if factors is not None:
        sep = "separable (rank 1)"
        if max(w.shape) <= 7:
            col, row = factors
            sep += f": {_vector(col)}ᵀ × {_vector(row)}"
        parts.append(sep)
    else:
        rank = kernel_rank(w)
        parts.append(f"rank {rank}, not separable" if rank > 1 else "all zero")
    sym = symmetry(w)
    text = ", ".join(parts)
    if sym != "none":
        text += f"; symmetric ({sym})" if sym != "point" else "; symmetric under a 180° turn"
    return text


def _vector(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in v + 0.0) + "]"


def lint_kernel_file(path: str | Path) -> list[Finding]:
    """Check a YAML kernel file; return findings (errors, warnings and info), never raise.

    Errors: anything :func:`load_kernel_file` rejects. Warnings: unknown or
    duplicate keys, an even-sized kernel with ``padding: same`` (the extra padding
    goes bottom/right, so the output shifts by half a pixel), all-zero weights.
    Info: size, sum, whether each 2-D kernel is separable (rank 1) and symmetric.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "k.yaml"
    >>> _ = f.write_text("weigths: [[1]]\\n")
    >>> for finding in lint_kernel_file(f):
    ...     print(finding.severity, finding.line, finding.message)
    warning 1 unknown key 'weigths' (did you mean 'weights'?); ignored
    error 1 the kernel file has no 'weights' (is 'weigths' a typo for 'weights'?)
    """
    reader = _Reader(Path(path))
    try:
        kernel = _read(reader)
    except KernelError as exc:
        return [*reader.findings, Finding("error", exc.message, reader.file, exc.line)]
    findings = list(reader.findings)
    lines = kernel.extra.get("lines", {})
    kh, kw = kernel.shape[-2:]
    if kernel.padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
        findings.append(
            Finding(
                "warning",
                f"even-sized kernel ({kh}×{kw}) with padding: same; the extra row/column of "
                "padding goes bottom/right, so the output is shifted half a pixel",
                reader.file,
                lines.get("padding"),
            )
        )
    w = kernel.weights
    line = lines.get("weights", lines.get("kernels"))
    if not np.any(w):
        findings.append(Finding("warning", "every weight is 0", reader.file, line))
    if kernel.kind == "layer":
        slices = [m for _, m in kernel.members()]
        n_sep = sum(kernel_rank(s) == 1 for s in slices)
        findings.append(
            Finding(
                "info",
                f"{kernel.name}: layer {w.shape[0]} out × {w.shape[1]} in × {kh}×{kw}; "
                f"{n_sep} of {len(slices)} slices separable",
                reader.file,
                line,
            )
        )
    else:
        for i, (label, member) in enumerate(kernel.members()):
            at = lines.get(f"kernels[{i}]", line) if kernel.kind == "bank" else line
            findings.append(
                Finding("info", f"{label}: {describe_weights(member)}", reader.file, at)
            )
    return findings
