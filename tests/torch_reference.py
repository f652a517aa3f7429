"""PyTorch as an independent reference for conv2d / pool2d.

Used twice: by ``tests/make_golden.py`` to write ``tests/data/golden_*.npz``
(stored, so the suite runs without torch), and by ``tests/test_torch_live.py``
to compare against torch live when it is importable.

Padding sizes are computed here from the SPEC's rules, independently of
``convcli.shapes``; the padding itself is applied as ``torch.nn.functional.pad``
does (numpy for ``symmetric``, which torch lacks).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

CONV_KERNELS = {
    "k3": (3, 3),
    "k4": (4, 4),
    "k1x5": (1, 5),
    "k2x3": (2, 3),
    "bank2x3": (2, 3, 3),
    "layer4x3": (4, 3, 3, 3),
    "layer4x3k2": (4, 3, 2, 2),
    "group3": (6, 1, 3, 3),
}
STRIDES: list[Any] = [1, 2, [1, 3]]
PADDINGS: list[Any] = ["valid", "same", "full", 1, [2, 1], [0, 1, 2, 3]]
PAD_MODES = ["zeros", "constant", "reflect", "symmetric", "replicate", "circular"]
DILATIONS: list[Any] = [1, 2, [2, 1]]
ACTIVATIONS = [None, "relu", "leaky-relu:0.1", "sigmoid", "tanh", "abs"]


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


def ref_padding(
    padding: Any, hw: tuple[int, int], khw: tuple[int, int], s: Any, d: Any
) -> list[int]:
    s, d = _pair(s), _pair(d)
    if padding == "valid":
        return [0, 0, 0, 0]
    if padding == "full":
        return [d[0] * (khw[0] - 1)] * 2 + [d[1] * (khw[1] - 1)] * 2
    if padding == "same":
        out = []
        for n, k, st, dl in zip(hw, khw, s, d, strict=True):
            o = -(-n // st)
            total = max((o - 1) * st + dl * (k - 1) + 1 - n, 0)
            out += [total // 2, total - total // 2]
        return out
    if isinstance(padding, int):
        return [padding] * 4
    if len(padding) == 2:
        return [padding[0], padding[0], padding[1], padding[1]]
    return list(padding)


def torch_pad(x: Any, pads: list[int], mode: str, value: float) -> Any:
    import torch
    import torch.nn.functional as F

    top, bottom, left, right = pads
    if mode == "symmetric":
        arr = np.pad(x.numpy(), [(0, 0), (0, 0), (top, bottom), (left, right)], mode="symmetric")
        return torch.from_numpy(arr)
    tmode = {"zeros": "constant", "constant": "constant"}.get(mode, mode)
    kw = {"value": value if mode == "constant" else 0.0} if tmode == "constant" else {}
    return F.pad(x, (left, right, top, bottom), mode=tmode, **kw)


def torch_conv(x: np.ndarray, w: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(x.astype(np.float64))[None]
    wt = torch.from_numpy(w.astype(np.float64))
    if p.get("flip"):
        wt = torch.flip(wt, dims=(-2, -1))
    c = x.shape[0]
    pads = ref_padding(p["padding"], x.shape[1:], w.shape[-2:], p["stride"], p["dilation"])
    xt = torch_pad(xt, pads, p["pad_mode"], p.get("pad_value", 0.0))
    kwargs = {"stride": _pair(p["stride"]), "dilation": _pair(p["dilation"])}
    if w.ndim == 4:
        y = F.conv2d(xt, wt, groups=p.get("groups", 1), **kwargs)
    else:
        bank = wt[None] if w.ndim == 2 else wt
        y = torch.cat(
            [F.conv2d(xt, k[None, None].repeat(c, 1, 1, 1), groups=c, **kwargs) for k in bank],
            dim=1,
        )
    if p.get("bias") is not None:
        b = torch.tensor(np.broadcast_to(np.asarray(p["bias"], float), (y.shape[1],)).copy())
        y = y + b[None, :, None, None]
    act = p.get("activation")
    if act == "relu":
        y = F.relu(y)
    elif act and act.startswith("leaky-relu"):
        y = F.leaky_relu(y, float(act.split(":")[1]) if ":" in act else 0.01)
    elif act == "sigmoid":
        y = torch.sigmoid(y)
    elif act == "tanh":
        y = torch.tanh(y)
    elif act == "abs":
        y = torch.abs(y)
    return y[0].numpy()


def torch_pool(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(x.astype(np.float64))[None]
    kw = {
        "kernel_size": _pair(p["size"]),
        "stride": _pair(p["stride"] if p["stride"] is not None else p["size"]),
        "padding": _pair(p["padding"]),
        "ceil_mode": p["ceil_mode"],
    }
    if p["op"] == "max":
        y = F.max_pool2d(xt, **kw)
    elif p["op"] == "min":
        y = -F.max_pool2d(-xt, **kw)
    else:
        y = F.avg_pool2d(xt, count_include_pad=p["count_include_pad"], **kw)
    return y[0].numpy()


def conv_cases(seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` parameter sets: every kernel × stride × padding once, other axes drawn at random."""
    rng = np.random.default_rng(seed)
    base = list(itertools.product(CONV_KERNELS, STRIDES, PADDINGS))
    order = rng.permutation(len(base))
    cases = []
    for i in range(n):
        kname, stride, padding = base[order[i % len(base)]]
        cases.append(
            {
                "kernel": kname,
                "stride": stride,
                "padding": padding,
                "pad_mode": PAD_MODES[rng.integers(len(PAD_MODES))],
                "pad_value": 0.5,
                "dilation": DILATIONS[rng.integers(len(DILATIONS))],
                "groups": 3 if kname == "group3" else 1,
                "flip": bool(rng.integers(2)),
                "bias": None if rng.integers(2) else "per-channel",
                "activation": ACTIVATIONS[rng.integers(len(ACTIVATIONS))],
                "shape": [3, int(rng.integers(7, 12)), int(rng.integers(7, 12))],
            }
        )
    return cases


def pool_cases() -> list[dict[str, Any]]:
    cases = []
    for op, size, stride, padding, ceil_mode, cip in itertools.product(
        ["max", "avg", "min"],
        [2, 3, [2, 3]],
        [None, 1, 2, [1, 2]],
        [0, 1],
        [False, True],
        [True, False],
    ):
        if op != "avg" and not cip:
            continue
        cases.append(
            {"op": op, "size": size, "stride": stride, "padding": padding, "ceil_mode": ceil_mode,
             "count_include_pad": cip, "shape": [2, 7, 9]}
        )  # fmt: skip
    return cases


def materialise(case: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Random input (and kernel, bias) for a case, as float32."""
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    if "kernel" not in case:
        return (x,)
    w = rng.standard_normal(CONV_KERNELS[case["kernel"]]).astype(np.float32)
    return x, w


def to_json(case: dict[str, Any]) -> str:
    return json.dumps(case, sort_keys=True)
