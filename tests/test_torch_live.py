"""conv2d / pool2d against PyTorch live, on parameter sets the golden files do not hold.

Skipped when torch is not importable (it is never a runtime dependency).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch_reference as ref
from test_golden import assert_close, conv_kwargs

from convcli import conv2d, pool2d

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LIVE_CASES = ref.conv_cases(seed=7, n=120)


@pytest.mark.parametrize("case", LIVE_CASES, ids=lambda c: f"{c['kernel']}-{c['pad_mode']}")
def test_conv2d_live(case: dict) -> None:
    rng = np.random.default_rng(zlib.crc32(ref.to_json(case).encode()))
    x, w = ref.materialise(case, rng)
    if case["bias"] == "per-channel":
        n_out = {2: x.shape[0], 3: w.shape[0] * x.shape[0], 4: w.shape[0]}[w.ndim]
        case = {**case, "bias": rng.standard_normal(n_out).tolist()}
    try:
        expected = ref.torch_conv(x, w, case)
    except RuntimeError:
        pytest.skip("torch rejects this combination")
    assert_close(conv2d(x, w, **conv_kwargs(case)), expected)


@pytest.mark.parametrize("shape", [(1, 5, 5), (3, 16, 13), (2, 31, 8)])
def test_pool2d_live(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    for case in ref.pool_cases():
        case = {**case, "shape": list(shape)}
        try:
            expected = ref.torch_pool(x, case)
        except RuntimeError:
            continue
        got = pool2d(
            x, case["op"], size=case["size"], stride=case["stride"], padding=case["padding"],
            ceil_mode=case["ceil_mode"], count_include_pad=case["count_include_pad"],
        )  # fmt: skip
        assert_close(got, expected)
