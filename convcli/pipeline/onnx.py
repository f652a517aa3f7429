"""An ONNX model's leading chain of supported nodes as a :class:`~convcli.pipeline.Pipeline`.

:func:`pipeline_from_onnx` follows the graph from its image input, node by node,
and turns what convcli computes exactly into stages:

==============================================  ==============================================
ONNX node                                       stage
==============================================  ==============================================
``Conv``                                        a :class:`ConvStage` (a 4-D layer; stride,
                                                pads, ``auto_pad``, dilations, group; zero
                                                padding)
``BatchNormalization`` after a Conv             folded into the conv's weights and bias
``Add`` of a constant (one value, or one per    folded into the conv's bias
channel) after a Conv
``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``  the conv's activation
``MaxPool``, ``AveragePool``                    a :class:`PoolStage` (ONNX's defaults: stride
                                                1, ``count_include_pad=0``; ``ceil_mode``)
``GlobalAveragePool``, ``GlobalMaxPool``        a global pool stage
``Identity``, ``Dropout`` (inference)           nothing
==============================================  ==============================================

A BatchNormalization, Add or activation with no conv to fold into (after a pool,
after an activation, or on the input itself) becomes a per-channel stage of its
own: a 1×1 depthwise conv holding the scale, shift and activation, which computes
exactly the same values.

The walk stops before the first node it cannot reproduce exactly (another op, an
unsupported attribute, a branch such as a residual connection, weights computed
at run time) and says which node and why (:class:`Stop`); ``until`` stops after
a named node. The prefix runs on images of any size (it is fully convolutional).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import KernelError
from convcli.kernels.model import Kernel
from convcli.kernels.weights import (
    OnnxModel,
    Unsupported,
    attributes,
    close_names,
    load_onnx,
    pool_padding,
)
from convcli.pipeline.engine import ConvStage, Pipeline, PoolStage, Result, Stage

#: Ops :func:`pipeline_from_onnx` turns into stages (for messages and docs).
SUPPORTED_OPS = (
    "Conv", "BatchNormalization", "Add", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "MaxPool",
    "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Identity", "Dropout",
)  # fmt: skip
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyRelu": "leaky-relu"}


@dataclass(frozen=True)
class Stop:
    """Where and why the walk stopped before the end of the graph."""

    node: str  # the node's name (or ``OpType -> output`` for unnamed nodes)
    op_type: str
    reason: str

    def text(self) -> str:
        return f"stopped before node {self.node!r} ({self.op_type}): {self.reason}"


@dataclass(frozen=True)
class StageSource:
    """The ONNX nodes behind one stage, and the tensor its output equals."""

    nodes: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class ModelPipeline:
    """What :func:`pipeline_from_onnx` made of a model.

    ``pipeline`` runs like any other; ``sources`` has one entry per stage;
    ``stop`` is None when the walk reached the end of the graph or ``until``;
    ``output`` names the ONNX tensor the pipeline's result equals.
    """

    pipeline: Pipeline
    file: str
    input_name: str
    input_shape: tuple[int | None, ...]  # the graph input's N, C, H, W (None: symbolic)
    sources: tuple[StageSource, ...]
    stop: Stop | None
    until: str | None
    nodes_used: int
    nodes_total: int

    @property
    def output(self) -> str:
        return self.sources[-1].output

    def plan(self, in_shape: tuple[int, int, int], channels: str = "") -> Result:
        """:func:`convcli.pipeline.yamlfile.plan_stages`: shape errors name the stage."""
        from convcli.pipeline.yamlfile import plan_stages

        return plan_stages(self.pipeline, in_shape, channels)

    def summary(self) -> str:
        """One line: how much of the model the pipeline covers, and where it stopped."""
        name = Path(self.file).name
        n = len(self.pipeline.stages)
        head = (
            f"{name}: {self.nodes_used} of {self.nodes_total} nodes as {n}"
            f" stage{'s' if n != 1 else ''}"
        )
        if self.until is not None:
            return f"{head}; stopped after node {self.until!r} (until); output {self.output!r}"
        if self.stop is None:
            return f"{head}; the whole graph (output {self.output!r})"
        return f"{head}; {self.stop.text()}; output {self.output!r}"


def pipeline_from_onnx(
    path: str | os.PathLike[str],
    *,
    until: str | None = None,
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    name: str | None = None,
) -> ModelPipeline:
    """Turn the leading chain of supported nodes of an ONNX model into a pipeline.

    Parameters
    ----------
    path
        The ``.onnx`` file (external data beside it is loaded too).
    until
        Stop after this node (its name, or its output's name).
    normalize
        ``(mean, std)`` per channel for :attr:`Pipeline.normalize` (what the model
        expects of a 0–1 image; see :func:`convcli.pipeline.parse_normalize`).
    name
        The pipeline's name (output files); default: the file's stem.

    Returns
    -------
    ModelPipeline
        Its ``pipeline`` is grey (``gray=True``) when the model's input has one channel.

    Raises
    ------
    KernelError
        Not an ONNX model, no single 4-D image input, no supported first node, or an
        ``until`` node that is not in the supported prefix (exit 2).

    Examples
    --------
    >>> import tempfile, onnx
    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    >>> nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
    ...          helper.make_node("Relu", ["c"], ["r"], name="relu"),
    ...          helper.make_node("Flatten", ["r"], ["f"], name="flat")]
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])
    >>> f = helper.make_tensor_value_info("f", TensorProto.FLOAT, None)
    >>> path = tempfile.mkdtemp() + "/tiny.onnx"
    >>> onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [f], [w])), path)
    >>> mp = pipeline_from_onnx(path)
    >>> [s.name for s in mp.pipeline.stages], mp.output, mp.stop.node
    (['conv+relu'], 'r', 'flat')
    """
    file = os.fspath(path)
    model = load_onnx(file)
    inputs = model.inputs()
    if len(inputs) != 1:
        raise KernelError(
            f"has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); convcli feeds one"
            " image",
            file=file,
        )
    inp = inputs[0]
    shape = _input_shape(inp, file)
    walker = _Walker(model, channels=shape[1])
    walker.walk(inp.name, until)
    if until is not None and not walker.reached:
        raise KernelError(_until_message(model, walker, until), file=file)
    if not walker.stages:
        stop = walker.stop
        assert stop is not None
        raise KernelError(
            f"nothing to run: its first node {stop.node!r} ({stop.op_type}) cannot be run:"
            f" {stop.reason}",
            file=file,
        )
    sources = tuple(StageSource(tuple(n), out) for n, out in walker.sources)
    mp = ModelPipeline(
        pipeline=Pipeline(tuple(walker.stages), name=name or Path(file).stem),
        file=file,
        input_name=inp.name,
        input_shape=shape,
        sources=sources,
        stop=walker.stop,
        until=until if walker.reached else None,
        nodes_used=walker.used,
        nodes_total=len([n for n in model.nodes if n.op_type != "Constant"]),
    )
    pipeline = dataclasses.replace(
        mp.pipeline, gray=shape[1] == 1, normalize=normalize, notes=(mp.summary(),)
    )
    pipeline.validate()
    return dataclasses.replace(mp, pipeline=pipeline)


def _input_shape(inp: Any, file: str) -> tuple[int | None, ...]:
    from onnx import TensorProto

    t = inp.type.tensor_type
    if t.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        raise KernelError(
            f"input {inp.name!r} is not a float tensor; convcli feeds images as floats", file=file
        )
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    if t.HasField("shape") and len(dims) != 4:
        raise KernelError(
            f"input {inp.name!r} is {len(dims)}-D; convcli feeds images as N×C×H×W", file=file
        )
    return dims if dims else (None, None, None, None)


def _until_message(model: OnnxModel, walker: _Walker, until: str) -> str:
    names = [n.name for n in model.nodes if n.name] + [o for n in model.nodes for o in n.output]
    if until not in names:
        return f"no node {until!r}{close_names(until, names)}"
    where = walker.stop.text() if walker.stop is not None else "the chain ends first"
    return f"node {until!r} is past the part convcli can run ({where})"


class _Walker:
    """Follows the chain from the input, building stages; records where and why it stops."""

    def __init__(self, model: OnnxModel, *, channels: int | None):
        self.model = model
        self.channels = channels
        self.stages: list[Stage] = []
        self.sources: list[tuple[list[str], str]] = []
        self.open = False  # the last stage is a conv that BN / Add / an activation may fold into
        self.stop: Stop | None = None
        self.reached = False
        self.used = 0

    def walk(self, tensor: str, until: str | None) -> None:
        model = self.model
        while True:
            users = model.consumers.get(tensor, [])
            if not users:
                return  # the end of the graph
            node = users[0]
            label = model.node_label(node)
            if len(users) > 1:
                others = ", ".join(f"{model.node_label(u)!r} ({u.op_type})" for u in users[1:])
                self.stop = Stop(
                    label, node.op_type,
                    f"its input {tensor!r} also feeds {others}: a branch (convcli runs a chain)",
                )  # fmt: skip
                return
            try:
                pushed = self.step(node, tensor)
            except Unsupported as exc:
                self.stop = Stop(label, node.op_type, str(exc))
                return
            self.used += 1
            tensor = node.output[0]
            if pushed is None and self.sources:  # folded into the last stage
                nodes, _ = self.sources[-1]
                self.sources[-1] = ([*nodes, label], tensor)
            if until is not None and until in (node.name, node.output[0]):
                self.reached = True
                return

    # ------------------------------------------------------------------ one node

    def step(self, node: Any, tensor: str) -> str | None:
        """Add ``node`` to the stages; None when it was folded into the last stage."""
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise Unsupported(f"op {node.domain}.{op} is not an ONNX standard op")
        self._only_first_output_used(node)
        if op in ("Identity", "Dropout"):
            self._data_input(node, tensor)
            if op == "Dropout":
                self._inference_dropout(node)
            return None
        if op == "Conv":
            self._data_input(node, tensor)
            kernel = self.model.conv_kernel(node)
            return self._push(ConvStage(kernel), node, open_=True, channels=kernel.weights.shape[0])
        if op == "BatchNormalization":
            self._data_input(node, tensor)
            scale, shift = self._batchnorm(node)
            return self._affine(node, scale, shift)
        if op == "Add":
            other = self._other_input(node, tensor)
            return self._affine(node, None, self._per_channel(other, node))
        if op in _ACTIVATIONS:
            self._data_input(node, tensor)
            return self._activation(node)
        if op in ("MaxPool", "AveragePool"):
            self._data_input(node, tensor)
            return self._push(self._pool(node), node, open_=False)
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            self._data_input(node, tensor)
            kind = "global-avg" if op == "GlobalAveragePool" else "global-max"
            return self._push(PoolStage(kind), node, open_=False)
        ops = ", ".join(o for o in SUPPORTED_OPS if o not in ("Identity", "Dropout"))
        raise Unsupported(f"not one of the ops convcli runs ({ops})")

    def _push(self, stage: Stage, node: Any, *, open_: bool, channels: int | None = None) -> str:
        self.stages.append(stage)
        self.sources.append(([self.model.node_label(node)], node.output[0]))
        self.open = open_
        if channels is not None:
            self.channels = channels
        return node.output[0]

    def _data_input(self, node: Any, tensor: str) -> None:
        if not node.input or node.input[0] != tensor:
            raise Unsupported(f"reads the chain's tensor {tensor!r} as a parameter, not as data")
        for extra in node.input[1:]:
            if extra and not self.model.is_constant(extra):
                if node.op_type == "Dropout":
                    continue  # ratio / training_mode: checked in _inference_dropout
                producer = self.model.producers.get(extra)
                what = (
                    f"computed by {self.model.node_label(producer)!r} ({producer.op_type})"
                    if producer is not None
                    else "a graph input"
                )
                raise Unsupported(f"its input {extra!r} is {what}, not a stored constant")

    def _only_first_output_used(self, node: Any) -> None:
        for out in list(node.output)[1:]:
            if out and (out in self.model.consumers or out in self.model.graph_outputs):
                raise Unsupported(
                    f"its extra output {out!r} is used (convcli computes only the first)"
                )

    def _inference_dropout(self, node: Any) -> None:
        if len(node.input) > 2 and node.input[2]:
            mode = self.model.tensor(node.input[2])
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                raise Unsupported("it may run in training mode (random)")

    def _other_input(self, node: Any, tensor: str) -> str:
        ins = [i for i in node.input]
        if len(ins) != 2 or tensor not in ins:
            raise Unsupported("is not an Add of the chain's tensor and a constant")
        other = ins[1] if ins[0] == tensor else ins[0]
        if other == tensor:
            raise Unsupported("adds the tensor to itself")
        if not self.model.is_constant(other):
            producer = self.model.producers.get(other)
            what = f"{self.model.node_label(producer)!r}" if producer is not None else "an input"
            raise Unsupported(f"adds two computed tensors (the other comes from {what})")
        return other

    def _per_channel(self, name: str, node: Any) -> np.ndarray:
        value = self.model.tensor(name)
        assert value is not None
        v = np.asarray(value, dtype=np.float64)
        if v.size == 1:
            return v.reshape(1)
        shape = v.shape
        if v.ndim >= 3 and shape[-1] == 1 and shape[-2] == 1 and all(d == 1 for d in shape[:-3]):
            return v.reshape(-1)
        raise Unsupported(
            f"adds a constant of shape {'×'.join(map(str, shape))}, not one value per channel"
            " (C×1×1)"
        )

    def _batchnorm(self, node: Any) -> tuple[np.ndarray, np.ndarray]:
        a = attributes(node)
        if a.get("training_mode", 0):
            raise Unsupported("runs in training mode")
        if not a.get("spatial", 1):
            raise Unsupported("spatial=0 (per-pixel statistics) is not supported")
        unknown = sorted(set(a) - {"epsilon", "momentum", "training_mode", "spatial"})
        if unknown:
            raise Unsupported(f"has attribute {unknown[0]!r}, which convcli does not support")
        if len(node.input) != 5:
            raise Unsupported("does not have the 5 inputs X, scale, B, mean, var")
        gamma, beta, mean, var = (
            np.asarray(self.model.tensor(i), dtype=np.float64).reshape(-1) for i in node.input[1:]
        )
        eps = float(a.get("epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        return scale, beta - mean * scale

    def _affine(self, node: Any, scale: np.ndarray | None, shift: np.ndarray) -> str | None:
        """``x * scale + shift`` per channel: folded into an open conv, else a 1×1 stage."""
        last = self.stages[-1] if self.stages else None
        if self.open and isinstance(last, ConvStage) and last.activation is None:
            k = last.kernel
            n = k.weights.shape[0]
            for v in (scale, shift):
                if v is not None and v.size not in (1, n):
                    raise Unsupported(f"has {v.size} values per channel; the conv has {n} channels")
            w = k.weights.copy()
            bias = np.zeros(n) if k.bias is None else np.broadcast_to(np.asarray(k.bias), (n,))
            if scale is not None:
                w = w * scale.reshape(-1, 1, 1, 1) if scale.size == n else w * float(scale[0])
                bias = bias * scale
            bias = bias + shift
            label = self.model.node_label(node)
            folded = dataclasses.replace(
                k, name=f"{k.name}+{self.model.short_name(node)}", weights=w,
                bias=tuple(float(b) for b in bias),
                description=f"{k.description}; {node.op_type} {label!r} folded in",
            )  # fmt: skip
            self.stages[-1] = dataclasses.replace(last, kernel=folded)
            return None
        c = self._channels_for(node, scale, shift)
        s = np.ones(c) if scale is None else np.broadcast_to(scale, (c,))
        return self._push(
            ConvStage(self._channelwise(node, s, np.broadcast_to(shift, (c,)))),
            node, open_=True, channels=c,
        )  # fmt: skip

    def _activation(self, node: Any) -> str | None:
        op = node.op_type
        name = _ACTIVATIONS[op]
        a = attributes(node)
        unknown = sorted(set(a) - ({"alpha"} if op == "LeakyRelu" else set()))
        if unknown:
            raise Unsupported(f"has attribute {unknown[0]!r}, which convcli does not support")
        if op == "LeakyRelu":
            name = "leaky-relu:" + str(np.float32(a.get("alpha", 0.01)))  # float32's shortest
        last = self.stages[-1] if self.stages else None
        if self.open and isinstance(last, ConvStage) and last.activation is None:
            k = last.kernel
            short = self.model.short_name(node)
            self.stages[-1] = dataclasses.replace(
                last, activation=name, kernel=dataclasses.replace(k, name=f"{k.name}+{short}")
            )
            self.open = False
            return None
        c = self._channels_for(node, None, np.zeros(1))
        stage = ConvStage(self._channelwise(node, np.ones(c), np.zeros(c)), activation=name)
        return self._push(stage, node, open_=False, channels=c)

    def _channels_for(self, node: Any, scale: np.ndarray | None, shift: np.ndarray) -> int:
        sizes = {v.size for v in (scale, shift) if v is not None and v.size > 1}
        c = self.channels
        if c is None:
            if len(sizes) == 1:
                return sizes.pop()
            raise Unsupported("the number of channels here is unknown (symbolic input shape)")
        if sizes and sizes != {c}:
            raise Unsupported(f"has {sizes.pop()} values per channel; the tensor has {c} channels")
        return c

    def _channelwise(self, node: Any, scale: np.ndarray, shift: np.ndarray) -> Kernel:
        label = self.model.node_label(node)
        c = scale.size
        return Kernel(
            name=self.model.short_name(node),
            weights=np.asarray(scale, dtype=np.float64).reshape(c, 1, 1, 1).copy(),
            description=f"{node.op_type} {label!r} as a per-channel 1×1 depthwise conv",
            bias=tuple(float(b) for b in shift),
            padding="valid",
            groups=c,
            pad_mode="zeros",
            source=self.model.file,
            extra={"onnx_node": label},
        )

    def _pool(self, node: Any) -> PoolStage:
        op = node.op_type
        a = attributes(node)
        allowed = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"}
        allowed |= {"storage_order"} if op == "MaxPool" else {"count_include_pad"}
        unknown = sorted(set(a) - allowed)
        if unknown:
            raise Unsupported(f"has attribute {unknown[0]!r}, which convcli does not support")
        ks = [int(v) for v in a.get("kernel_shape", ())]
        if len(ks) != 2:
            raise Unsupported(f"kernel_shape {ks} is not 2-D (convcli pools 2-D maps)")
        if any(int(d) != 1 for d in a.get("dilations", (1, 1))):
            raise Unsupported(f"dilations {list(a['dilations'])} (convcli pools without dilation)")
        strides = [int(v) for v in a.get("strides", (1, 1))]
        if len(strides) != 2 or min(strides) < 1:
            raise Unsupported(f"strides {strides} are not 2 numbers >= 1")
        padding = pool_padding(a)
        if isinstance(padding, tuple):
            top, bottom, left, right = padding
            if max(top, bottom) > ks[0] // 2 or max(left, right) > ks[1] // 2:
                raise Unsupported(
                    f"pads {top},{left},{bottom},{right} exceed half the {ks[0]}×{ks[1]} window"
                    " (convcli's pools, as PyTorch's, allow at most half)"
                )
        return PoolStage(
            "max" if op == "MaxPool" else "avg",
            size=(ks[0], ks[1]),
            stride=(strides[0], strides[1]),
            padding=padding,
            ceil_mode=bool(a.get("ceil_mode", 0)),
            count_include_pad=op == "MaxPool" or bool(a.get("count_include_pad", 0)),
        )
