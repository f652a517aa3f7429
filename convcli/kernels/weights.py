"""Kernels from trained networks: tensors in ``.npy``, ``.npz``, ``.safetensors``, ``.onnx`` files.

What may follow ``-k``:

============================  ==============================================================
``weights.npy``               the whole array
``weights.npz:NAME``          one array of the archive (``weights.npz`` alone: its only array)
``model.safetensors:NAME``    one tensor (alone: its only tensor)
``model.onnx``                the first ``Conv`` node, in graph order
``model.onnx:NAME``           a ``Conv`` node (by node or output name), or an initializer /
                              ``Constant`` tensor
============================  ==============================================================

A 2-D tensor is one kernel, 3-D a bank, 4-D a CNN layer ``(c_out, c_in/groups, kh,
kw)`` (PyTorch's and ONNX's layout; used as is: cross-correlation, no flip). The
bias beside the weights becomes the kernel's bias: a ``NAME`` ending in ``weight``
takes ``...bias`` from the same file (``conv1.weight`` -> ``conv1.bias``); an ONNX
Conv node its third input. An initializer that is the weight input of a Conv node
is read as that node.

An ONNX Conv node's attributes become the kernel's layer defaults, as a YAML
kernel's ``stride``/``padding``/``dilation`` do: ``strides``, ``pads`` (ONNX order
top, left, bottom, right, turned into convcli's top, bottom, left, right),
``auto_pad`` (``SAME_UPPER`` -> ``same``, ``SAME_LOWER`` -> ``same-lower``, ``VALID`` ->
``valid``), ``dilations``, ``group`` (:attr:`Kernel.groups`) and zero padding
(:attr:`Kernel.pad_mode`). Command-line options override them.

``onnx`` and ``safetensors`` are optional (``pip install 'convcli[models]'``) and
imported only when such a file is read. Every problem is one
:class:`~convcli.errors.KernelError` naming the file.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> np.savez(d / "w.npz", **{"conv1.weight": np.ones((2, 3, 3, 3)), "conv1.bias": [0.5, -1]})
>>> k = load_weights_kernel(f"{d}/w.npz:conv1.weight")
>>> k.kind, k.shape, k.bias
('layer', (2, 3, 3, 3), (0.5, -1.0))
>>> load_weights_kernel(f"{d}/w.npz:conv1.weigth")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
convcli.errors.KernelError: .../w.npz: no array 'conv1.weigth' (did you mean 'conv1.weight'?)...
"""

from __future__ import annotations

import difflib
import importlib
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import KernelError
from convcli.kernels.model import Kernel

WEIGHT_SUFFIXES = (".npy", ".npz", ".safetensors", ".onnx")
MODELS_EXTRA = "pip install 'convcli[models]'"
#: Oldest ONNX opset whose Conv / pooling / BatchNormalization semantics convcli reads.
MIN_ONNX_OPSET = 7
_MAX_LISTED = 8


def is_weights_spec(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a weights file (its path part ends in a weights suffix).

    >>> is_weights_spec("model.onnx:conv1"), is_weights_spec("w.npy"), is_weights_spec("sobel")
    (True, True, False)
    """
    return split_weights_spec(spec) is not None


def split_weights_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None] | None:
    """``(file, name)`` of ``FILE[:NAME]`` when the file part ends in a weights suffix.

    The name may itself hold ``:`` (``model.onnx:dense/kernel:0``); when several
    splits are possible, an existing file wins, else the shortest path.

    >>> split_weights_spec("m.safetensors:conv1.weight")
    (PosixPath('m.safetensors'), 'conv1.weight')
    >>> split_weights_spec("w.npy"), split_weights_spec("gaussian:5")
    ((PosixPath('w.npy'), None), None)
    """
    text = os.fspath(spec)
    candidates: list[tuple[str, str | None]] = [
        (text[:i], text[i + 1 :])
        for i, ch in enumerate(text)
        if ch == ":" and text[:i].lower().endswith(WEIGHT_SUFFIXES)
    ]
    if text.lower().endswith(WEIGHT_SUFFIXES):
        candidates.append((text, None))
    if not candidates:
        return None
    for path, name in candidates:
        if Path(path).is_file():
            return Path(path), name
    path, name = candidates[0]
    return Path(path), name


def load_weights_kernel(spec: str | os.PathLike[str]) -> Kernel:
    """Read ``FILE[:NAME]`` (see the module docstring) as a :class:`Kernel`.

    Raises
    ------
    KernelError
        ``file: problem``: no such file, not such a file, a name that does not exist
        (with close names), a tensor of the wrong rank or with NaN/inf, an ONNX node
        with attributes convcli cannot honour, or the optional package missing.
    """
    split = split_weights_spec(spec)
    if split is None:
        raise KernelError(
            f"{os.fspath(spec)}: not a weights file (.npy, .npz, .safetensors or .onnx)"
        )
    path, name = split
    file = str(path)
    if not path.is_file():
        raise KernelError("no such file" if not path.exists() else "not a file", file=file)
    if name is not None and not name.strip():
        raise KernelError(
            "nothing after ':'; give a tensor or node name, or drop the ':'", file=file
        )
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _npy(path, name)
    if suffix == ".npz":
        return _npz(path, name)
    if suffix == ".safetensors":
        return _safetensors(path, name)
    return _onnx(path, name)


# --------------------------------------------------------------------------- numpy files


def _npy(path: Path, name: str | None) -> Kernel:
    file = str(path)
    if name is not None:
        raise KernelError(
            f"a .npy file holds one array; use -k {file} (without ':{name}')", file=file
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise KernelError(f"not a .npy file ({_one_line(exc)})", file=file) from None
    if not isinstance(arr, np.ndarray):  # a zip archive named .npy
        arr.close()
        raise KernelError("not a .npy file (it is an .npz archive; rename it)", file=file)
    return tensor_kernel(arr, name=path.stem, file=file, what=f"array of {path.name}")


def _npz(path: Path, name: str | None) -> Kernel:
    file = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise KernelError(f"not an .npz archive ({_one_line(exc)})", file=file) from None
    if isinstance(archive, np.ndarray):
        raise KernelError("not an .npz archive (it is a .npy array; rename it)", file=file)
    with archive:
        names = list(archive.files)
        key = _pick(names, name, file, "array")
        arr = _npz_array(archive, key, file)
        bias_key = bias_name(key)
        bias = _npz_array(archive, bias_key, file) if bias_key in names else None
    return tensor_kernel(
        arr, name=key, file=file, bias=bias, bias_from=bias_key if bias is not None else None,
        what=f"array {key!r} of {path.name}",
    )  # fmt: skip


def _npz_array(archive: Any, key: str | None, file: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise KernelError(f"cannot read array {key!r} ({_one_line(exc)})", file=file) from None


# --------------------------------------------------------------------------- safetensors


def _safetensors(path: Path, name: str | None) -> Kernel:
    file = str(path)
    st = require("safetensors", file)
    try:  # teaches numpy bfloat16 and float8 (onnx depends on it), so such tensors can be read
        importlib.import_module("ml_dtypes")
    except ImportError:
        pass
    try:
        with st.safe_open(file, framework="numpy") as f:
            names = list(f.keys())
            key = _pick(names, name, file, "tensor")
            arr = _st_tensor(f, key, file)
            bias_key = bias_name(key)
            bias = _st_tensor(f, bias_key, file) if bias_key in names else None
    except st.SafetensorError as exc:
        raise KernelError(f"not a safetensors file ({_one_line(exc)})", file=file) from None
    except OSError as exc:
        raise KernelError(f"cannot read the file ({_one_line(exc)})", file=file) from None
    return tensor_kernel(
        arr, name=key, file=file, bias=bias, bias_from=bias_key if bias is not None else None,
        what=f"tensor {key!r} of {path.name}",
    )  # fmt: skip


def _st_tensor(f: Any, key: str | None, file: str) -> np.ndarray:
    try:
        return np.asarray(f.get_tensor(key))
    except (TypeError, ValueError) as exc:  # e.g. bfloat16, which numpy cannot hold
        dtype = ""
        try:
            dtype = f" ({f.get_slice(key).get_dtype()})"
        except Exception:  # noqa: BLE001 - only for the message
            pass
        raise KernelError(
            f"cannot read tensor {key!r}{dtype} as numpy ({_one_line(exc)}); save it as float32",
            file=file,
        ) from None


# --------------------------------------------------------------------------- ONNX


class Unsupported(Exception):
    """An ONNX node or attribute convcli cannot reproduce exactly; ``str()`` says why."""


@dataclass(frozen=True)
class ConvAttributes:
    """An ONNX Conv node's attributes in convcli's terms."""

    stride: tuple[int, int]
    padding: str | tuple[int, int, int, int]  # a word, or (top, bottom, left, right)
    dilation: tuple[int, int]
    groups: int


_AUTO_PAD = {"SAME_UPPER": "same", "SAME_LOWER": "same-lower", "VALID": "valid"}


class OnnxModel:
    """A loaded ONNX model with the look-ups convcli needs (tensors, producers, consumers).

    Build one with :func:`load_onnx`. ``tensor(name)`` is the value of an
    initializer or a ``Constant`` node's output, else None.
    """

    def __init__(self, model: Any, file: str):
        self.model = model
        self.file = file
        self.graph = model.graph
        self.nodes: list[Any] = list(self.graph.node)
        self._initializers = {t.name: t for t in self.graph.initializer}
        self._constants = {
            n.output[0]: n for n in self.nodes if n.op_type == "Constant" and n.output
        }
        self._arrays: dict[str, np.ndarray] = {}
        self.producers = {out: n for n in self.nodes for out in n.output if out}
        self.consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for inp in n.input:
                if inp:
                    self.consumers.setdefault(inp, []).append(n)
        outputs = {o.name for o in self.graph.output}
        self.graph_outputs = outputs

    @property
    def opset(self) -> int:
        """The default (``ai.onnx``) domain's opset version."""
        for o in self.model.opset_import:
            if o.domain in ("", "ai.onnx"):
                return int(o.version)
        return 0

    def inputs(self) -> list[Any]:
        """Graph inputs that are not initializers (what a caller must feed)."""
        return [i for i in self.graph.input if i.name not in self._initializers]

    def is_constant(self, name: str) -> bool:
        return name in self._initializers or name in self._constants

    def tensor(self, name: str) -> np.ndarray | None:
        """The stored value of tensor ``name`` (initializer or Constant), else None."""
        if name in self._arrays:
            return self._arrays[name]
        from onnx import numpy_helper

        if name in self._initializers:
            proto = self._initializers[name]
        elif name in self._constants:
            node = self._constants[name]
            attrs = {a.name: a for a in node.attribute}
            if "value" not in attrs:
                return None  # value_float(s)/int(s): not tensors of weights
            proto = attrs["value"].t
        else:
            return None
        try:
            arr = np.asarray(numpy_helper.to_array(proto))
        except Exception as exc:  # noqa: BLE001 - onnx raises many kinds for bad tensors
            message = f"cannot read tensor {name!r} ({_one_line(exc)})"
            raise KernelError(message, file=self.file) from None
        self._arrays[name] = arr
        return arr

    def tensor_names(self) -> list[str]:
        return list(self._initializers) + list(self._constants)

    def node_label(self, node: Any) -> str:
        """A node's name, or (unnamed nodes) ``OpType -> output``."""
        return node.name or f"{node.op_type} -> {node.output[0] if node.output else '?'}"

    def short_name(self, node: Any) -> str:
        """A node's name for stage and kernel names: PyTorch's ``/conv1/Conv`` -> ``conv1``.

        Leading ``/`` and a last ``/OpType`` part are dropped; an unnamed node is
        called by its output.
        """
        if not node.name:
            return node.output[0] if node.output else node.op_type
        name = node.name.strip("/")
        if name.endswith("/" + node.op_type):
            name = name[: -len(node.op_type) - 1]
        return name or node.op_type

    def conv_nodes(self) -> list[Any]:
        return [n for n in self.nodes if n.op_type == "Conv" and n.domain in ("", "ai.onnx")]

    def conv_kernel(self, node: Any) -> Kernel:
        """A Conv node's weights, bias and attributes as a :class:`Kernel`.

        Raises :class:`Unsupported` (with the reason) for weights that are not stored
        in the file, non-2-D convolutions and unknown attributes.
        """
        if len(node.input) < 2 or not node.input[1]:
            raise Unsupported("has no weight input")
        w = self.tensor(node.input[1])
        if w is None:
            raise Unsupported(f"its weights {node.input[1]!r} {self._computed(node.input[1])}")
        if w.ndim != 4:
            raise Unsupported(
                f"is a {w.ndim - 2}-D convolution (weights {_shape(w.shape)}); convcli runs 2-D"
                " convolutions (4-D weights)"
            )
        attrs = conv_attributes(node, w.shape)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            b = self.tensor(node.input[2])
            if b is None:
                raise Unsupported(f"its bias {node.input[2]!r} {self._computed(node.input[2])}")
            bias = b
        label = node.name or node.output[0]
        what = f"Conv node {label!r} of {Path(self.file).name}"
        return tensor_kernel(
            w, name=self.short_name(node), file=self.file, bias=bias,
            bias_from=node.input[2] if bias is not None else None, what=what,
            stride=attrs.stride, padding=attrs.padding, dilation=attrs.dilation,
            groups=attrs.groups, pad_mode="zeros", extra={"onnx_node": label},
        )  # fmt: skip

    def _computed(self, name: str) -> str:
        producer = self.producers.get(name)
        if producer is not None:
            return (
                f"are computed by node {self.node_label(producer)!r} ({producer.op_type}),"
                " not stored in the file"
            )
        return "are a graph input, not stored in the file"


def load_onnx(path: str | os.PathLike[str]) -> OnnxModel:
    """Load an ONNX model (with external data beside it) or raise a one-line KernelError."""
    file = os.fspath(path)
    onnx = require("onnx", file)
    try:
        model = onnx.load(file)
    except Exception as exc:  # noqa: BLE001 - protobuf, I/O and external-data errors alike
        raise KernelError(f"not an ONNX model ({_one_line(exc)})", file=file) from None
    if not model.graph.node and not model.graph.initializer:
        raise KernelError("not an ONNX model (it has no graph)", file=file)
    m = OnnxModel(model, file)
    if m.opset and m.opset < MIN_ONNX_OPSET:
        raise KernelError(
            f"ONNX opset {m.opset} is not supported (convcli reads opset {MIN_ONNX_OPSET} and"
            " newer; upgrade it with onnx.version_converter)",
            file=file,
        )
    return m


def conv_attributes(node: Any, w_shape: Sequence[int]) -> ConvAttributes:
    """An ONNX Conv node's attributes as stride, padding, dilation and groups.

    Raises :class:`Unsupported` for attributes convcli does not know or values it
    cannot reproduce.
    """
    a = attributes(node)
    unknown = sorted(set(a) - {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
    if unknown:
        raise Unsupported(f"has attribute {unknown[0]!r}, which convcli does not support")
    kh, kw = int(w_shape[2]), int(w_shape[3])
    if "kernel_shape" in a and [int(v) for v in a["kernel_shape"]] != [kh, kw]:
        raise Unsupported(
            f"kernel_shape {_shape(a['kernel_shape'])} does not match its weights {_shape(w_shape)}"
        )
    stride = _pair_attr(a, "strides", minimum=1)
    dilation = _pair_attr(a, "dilations", minimum=1)
    groups = int(a.get("group", 1))
    if groups < 1 or w_shape[0] % groups:
        raise Unsupported(f"group {groups} does not divide its {w_shape[0]} output channels")
    return ConvAttributes(stride, pool_padding(a), dilation, groups)


def pool_padding(a: dict[str, Any]) -> str | tuple[int, int, int, int]:
    """``auto_pad`` / ``pads`` of a Conv or pooling node as a convcli padding."""
    auto = a.get("auto_pad", "NOTSET")
    if auto != "NOTSET":
        if auto not in _AUTO_PAD:
            raise Unsupported(
                f"auto_pad {auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
            )
        return _AUTO_PAD[auto]
    pads = [int(v) for v in a.get("pads", (0, 0, 0, 0))]
    if len(pads) != 4 or min(pads) < 0:
        raise Unsupported(f"pads {list(pads)} are not 4 numbers >= 0 (top, left, bottom, right)")
    top, left, bottom, right = pads
    return top, bottom, left, right


def attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as plain Python values (strings decoded)."""
    from onnx import helper

    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[attr.name] = value
    return out


def _pair_attr(a: dict[str, Any], key: str, *, minimum: int) -> tuple[int, int]:
    values = [int(v) for v in a.get(key, (1, 1))]
    if len(values) != 2 or min(values) < minimum:
        raise Unsupported(f"{key} {values} are not 2 numbers >= {minimum}")
    return values[0], values[1]


def _onnx(path: Path, name: str | None) -> Kernel:
    model = load_onnx(path)
    file = str(path)
    convs = model.conv_nodes()
    if name is None:
        if not convs:
            raise KernelError("has no Conv node; name an initializer with FILE:NAME", file=file)
        return _conv_or_error(model, convs[0])
    for node in model.nodes:
        if node.name == name or (not node.name and name in node.output and node.op_type == "Conv"):
            if node.op_type != "Conv":
                raise KernelError(
                    f"node {name!r} is a {node.op_type}, not a Conv{_listing('Conv nodes', convs)}",
                    file=file,
                )
            return _conv_or_error(model, node)
    arr = model.tensor(name)
    if arr is None:
        conv_names = [model.node_label(n) for n in convs]
        choices = conv_names + [n.output[0] for n in convs] + model.tensor_names()
        raise KernelError(
            f"no Conv node or initializer {name!r}{close_names(name, choices)}"
            f"{_listing('Conv nodes', convs)}",
            file=file,
        )
    users = [n for n in model.consumers.get(name, []) if n.op_type == "Conv"]
    if len(users) == 1 and list(users[0].input[1:2]) == [name]:
        return _conv_or_error(model, users[0])  # the weights of one Conv: read as that node
    bias_key = bias_name(name)
    bias = model.tensor(bias_key) if bias_key is not None else None
    return tensor_kernel(
        arr, name=name, file=file, bias=bias, bias_from=bias_key if bias is not None else None,
        what=f"initializer {name!r} of {path.name}",
    )  # fmt: skip


def _conv_or_error(model: OnnxModel, node: Any) -> Kernel:
    try:
        return model.conv_kernel(node)
    except Unsupported as exc:
        raise KernelError(f"Conv node {model.node_label(node)!r} {exc}", file=model.file) from None


def _listing(what: str, nodes: Sequence[Any]) -> str:
    names = [n.name or n.output[0] for n in nodes]
    if not names:
        return f"; it has no {what}"
    return f"; its {what}: {_names(names)}"


# --------------------------------------------------------------------------- shared


def require(module: str, file: str) -> Any:
    """Import an optional package, or raise a KernelError naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        suffix = Path(file).suffix.lower() or file
        raise KernelError(
            f"reading {suffix} files needs the '{module}' package: {MODELS_EXTRA}", file=file
        ) from None


def bias_name(name: str | None) -> str | None:
    """The bias stored beside a weight: ``conv1.weight`` -> ``conv1.bias``, else None.

    >>> bias_name("features.0.weight"), bias_name("w")
    ('features.0.bias', None)
    """
    if name is None or not name.endswith("weight"):
        return None
    return name[: -len("weight")] + "bias"


def tensor_kernel(
    arr: np.ndarray,
    *,
    name: str,
    file: str,
    what: str,
    bias: np.ndarray | None = None,
    bias_from: str | None = None,
    extra: dict[str, Any] | None = None,
    **defaults: Any,
) -> Kernel:
    """Check a tensor (and its bias) and wrap it as a :class:`Kernel` read from ``file``."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf" and arr.dtype.name.startswith(("bfloat16", "float8")):
        arr = arr.astype(np.float32)  # ml_dtypes' low-precision floats
    if arr.dtype.kind not in "biuf":
        raise KernelError(f"{what} holds {arr.dtype} values, not real numbers", file=file)
    if arr.ndim not in (2, 3, 4):
        raise KernelError(
            f"{what} is {arr.ndim}-D (shape {_shape(arr.shape)}); a kernel is 2-D (kh, kw),"
            " 3-D (n, kh, kw) or 4-D (c_out, c_in/groups, kh, kw)",
            file=file,
        )
    if 0 in arr.shape:
        raise KernelError(f"{what} is empty (shape {_shape(arr.shape)})", file=file)
    weights = np.asarray(arr, dtype=np.float64) + 0.0
    if not np.all(np.isfinite(weights)):
        raise KernelError(f"{what} holds NaN or infinite values", file=file)
    bias_value: float | tuple[float, ...] | None = None
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64).reshape(-1)
        n_out = arr.shape[0] if arr.ndim in (3, 4) else 1
        if b.size not in (1, n_out) or not np.all(np.isfinite(b)):
            raise KernelError(
                f"bias {bias_from!r} has {b.size} values; {what} has {n_out} output"
                f" channel{'s' if n_out != 1 else ''} (give --bias to override)",
                file=file,
            )
        bias_value = float(b[0]) if arr.ndim == 2 else tuple(float(v) for v in b)
    shape = "×".join(str(n) for n in arr.shape)
    description = f"{what}: {shape} {arr.dtype}"
    if bias_from is not None:
        description += f", bias from {bias_from!r}"
    return Kernel(
        name=name,
        weights=weights,
        description=description,
        bias=bias_value,
        source=file,
        extra={"file": file, "tensor": name, **(extra or {})},
        **defaults,
    )


def _pick(names: Sequence[str], name: str | None, file: str, what: str) -> str:
    """The entry ``name`` of a file's ``names`` (the only one when ``name`` is None)."""
    if name is None:
        if len(names) == 1:
            return names[0]
        listed = _names(names)
        raise KernelError(
            f"holds {len(names)} {what}s; name one with {file}:NAME ({listed or 'none'})"
            if names
            else f"holds no {what}",
            file=file,
        )
    if name in names:
        return name
    raise KernelError(
        f"no {what} {name!r}{close_names(name, names)}; it holds {len(names)}: {_names(names)}",
        file=file,
    )


def _names(names: Sequence[str]) -> str:
    """The first few names, comma-separated, with ``...`` when there are more."""
    more = ", ..." if len(names) > _MAX_LISTED else ""
    return ", ".join(list(names)[:_MAX_LISTED]) + more


def close_names(word: str, choices: Sequence[str]) -> str:
    """``" (did you mean 'a' or 'b'?)"`` for up to three names about as close as the best.

    >>> close_names("conv9", ["conv1", "conv2", "bn1"]), close_names("x", ["conv1"])
    (" (did you mean 'conv1' or 'conv2'?)", '')
    """
    unique = list(dict.fromkeys(choices))
    ratio = {c: difflib.SequenceMatcher(None, word, c).ratio() for c in unique}
    ranked = sorted((c for c in unique if ratio[c] >= 0.6), key=lambda c: -ratio[c])  # stable
    if not ranked:
        return ""
    close = [c for c in ranked[:3] if ratio[c] >= ratio[ranked[0]] - 0.05]  # about as close
    quoted = [repr(c) for c in close]
    head = ", ".join(quoted[:-1]) + " or " if len(quoted) > 1 else ""
    return f" (did you mean {head}{quoted[-1]}?)"


def _shape(shape: Sequence[int]) -> str:
    return "×".join(str(int(n)) for n in shape) if len(shape) else "scalar"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "") if text else type(exc).__name__
