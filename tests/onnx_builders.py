"""Small ONNX models built with ``onnx.helper`` and random weights, and an onnxruntime oracle.

Used by tests/test_weights.py and tests/test_onnx_model.py; nothing is downloaded.
Every model has one input ``x`` of shape ``1×C×H×W`` with symbolic H and W, so
onnxruntime runs it on any image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

onnx = __import__("pytest").importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 17


@dataclass
class GraphBuilder:
    """Appends nodes to a chain starting at input ``x``; ``last`` is the chain's tensor."""

    channels: int = 3
    seed: int = 0
    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    last: str = "x"
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def const(self, name: str, value: np.ndarray) -> str:
        arr = np.asarray(value, dtype=np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        self.weights[name] = arr
        return name

    def node(self, op: str, name: str, *extra_inputs: str, **attrs: Any) -> str:
        out = f"{name}_out"
        self.nodes.append(
            helper.make_node(op, [self.last, *extra_inputs], [out], name=name, **attrs)
        )
        self.last = out
        return out

    def conv(
        self, name: str, c_out: int, k: int | tuple[int, int], *, c_in: int, group: int = 1,
        bias: bool = True, **attrs: Any,
    ) -> str:  # fmt: skip
        kh, kw = (k, k) if isinstance(k, int) else k
        w = self.const(f"{name}.weight", self.rng.normal(0, 0.3, (c_out, c_in // group, kh, kw)))
        ins = [w]
        if bias:
            ins.append(self.const(f"{name}.bias", self.rng.normal(0, 0.2, c_out)))
        return self.node("Conv", name, *ins, group=group, **attrs)

    def batchnorm(self, name: str, c: int, **attrs: Any) -> str:
        r = self.rng
        ins = [
            self.const(f"{name}.scale", r.uniform(0.5, 1.5, c)),
            self.const(f"{name}.bias", r.normal(0, 0.2, c)),
            self.const(f"{name}.mean", r.normal(0, 0.3, c)),
            self.const(f"{name}.var", r.uniform(0.2, 2.0, c)),
        ]
        return self.node("BatchNormalization", name, *ins, **attrs)

    def model(self, *, outputs: tuple[str, ...] = (), opset: int = OPSET) -> Any:
        """The model; its outputs are the chain's last tensor plus ``outputs``."""
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, self.channels, "H", "W"])
        outs = [
            helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in (self.last, *outputs)
        ]
        graph = helper.make_graph(self.nodes, "g", [x], outs, initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m

    def save(self, path: Path, **kw: Any) -> Path:
        onnx.save(self.model(**kw), str(path))
        return path


def full_chain(seed: int = 0) -> GraphBuilder:
    """Every supported op, then Flatten + Gemm (unsupported: the walk stops at Flatten).

    conv1 8×3×5×5 stride 2, pads (ONNX t,l,b,r) 1,2,2,1, bias → BatchNorm → Relu →
    MaxPool 3×3 stride 2 pads 1 → conv2 8×4×4×4 groups 2, SAME_UPPER, stride 2 →
    LeakyRelu 0.2 → conv3 depthwise 8×1×3×3, dilation 2, pads 2, no bias → BatchNorm
    → Add (1,8,1,1) → Tanh → Add (1,8,1,1) (a stage of its own) → AveragePool 3×3 stride 2
    pads 1 ceil_mode (count_include_pad 0) → conv4 4×8×3×3 SAME_LOWER stride 2 →
    Sigmoid → GlobalAveragePool → Flatten → Gemm.
    """
    g = GraphBuilder(channels=3, seed=seed)
    g.conv("conv1", 8, 5, c_in=3, strides=[2, 2], pads=[1, 2, 2, 1])
    g.batchnorm("bn1", 8, epsilon=1e-3)
    g.node("Relu", "relu1")
    g.node("MaxPool", "pool1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    g.conv("conv2", 8, 4, c_in=8, group=2, strides=[2, 2], auto_pad="SAME_UPPER")
    g.node("LeakyRelu", "lrelu2", alpha=0.2)
    g.conv("conv3", 8, 3, c_in=8, group=8, bias=False, dilations=[2, 2], pads=[2, 2, 2, 2])
    g.batchnorm("bn3", 8)
    g.node("Add", "add3", g.const("add3.c", g.rng.normal(0, 0.2, (1, 8, 1, 1))))
    g.node("Tanh", "tanh3")
    g.node("Add", "add4", g.const("add4.c", g.rng.normal(0, 0.2, (1, 8, 1, 1))))
    g.node(
        "AveragePool", "pool2", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1
    )
    g.conv("conv4", 4, 3, c_in=8, strides=[2, 2], auto_pad="SAME_LOWER")
    g.node("Sigmoid", "sig4")
    g.node("GlobalAveragePool", "gap")
    g.node("Flatten", "flat")
    w = g.const("fc.weight", g.rng.normal(0, 0.3, (4, 3)))
    g.nodes.append(helper.make_node("Gemm", [g.last, w], ["logits"], name="fc"))
    g.last = "logits"
    return g


def run_ort(model: Any, x: np.ndarray, output: str | None = None) -> np.ndarray:
    """onnxruntime's value of ``output`` (default: the first graph output) for input ``x``.

    ``x`` is ``(C, H, W)``; the batch axis is added and removed here. An
    intermediate tensor is made a graph output first.
    """
    ort = __import__("pytest").importorskip("onnxruntime")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = [o.name for o in m.graph.output]
    if output is not None and output not in names:
        m.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    # the reference kernels, not the fused/NCHWc rewrites (which refuse e.g. dilation with SAME)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: np.asarray(x, np.float32)[None]}
    (y,) = sess.run([output or names[0]], feed)
    return np.asarray(y)[0]
