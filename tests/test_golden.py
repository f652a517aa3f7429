"""conv2d / pool2d against golden arrays made with PyTorch 2.13 (see tests/make_golden.py).

Regenerate with ``python tests/make_golden.py`` (needs ``pip install torch==2.13.0``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convcli import conv2d, pool2d

DATA = Path(__file__).parent / "data"


def _load(name: str) -> tuple[dict, list[dict]]:
    with np.load(DATA / name) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "params"}
        params = json.loads(str(npz["params"]))
    return arrays, params


CONV_ARRAYS, CONV_CASES = _load("golden_conv.npz")
POOL_ARRAYS, POOL_CASES = _load("golden_pool.npz")


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    """1e-5 relative, with the tolerance scaled to the result's magnitude (sums cancel)."""
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def conv_kwargs(case: dict) -> dict:
    return {
        "stride": case["stride"],
        "padding": case["padding"],
        "pad_mode": case["pad_mode"],
        "pad_value": case["pad_value"],
        "dilation": case["dilation"],
        "groups": case["groups"],
        "flip": case["flip"],
        "bias": case["bias"],
        "activation": case["activation"],
    }


def _conv_params():
    for case in CONV_CASES:
        methods = (
            ["auto", "direct", "gemm"]
            if case["kernel"].startswith(("layer", "group"))
            else ["auto", "direct", "fft", "gemm"]
        )
        for method in methods:
            yield pytest.param(case, method, id=f"{case['id']}-{case['kernel']}-{method}")


@pytest.mark.parametrize(("case", "method"), list(_conv_params()))
def test_conv2d_matches_torch(case: dict, method: str) -> None:
    i = case["id"]
    x, w, expected = CONV_ARRAYS[f"c{i}_x"], CONV_ARRAYS[f"c{i}_w"], CONV_ARRAYS[f"c{i}_y"]
    y = conv2d(x, w, method=method, **conv_kwargs(case))
    assert y.dtype == np.float32
    assert_close(y, expected)


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c['id']}-{c['op']}")
def test_pool2d_matches_torch(case: dict) -> None:
    i = case["id"]
    x, expected = POOL_ARRAYS[f"p{i}_x"], POOL_ARRAYS[f"p{i}_y"]
    y = pool2d(
        x,
        case["op"],
        size=case["size"],
        stride=case["stride"],
        padding=case["padding"],
        ceil_mode=case["ceil_mode"],
        count_include_pad=case["count_include_pad"],
    )
    assert_close(y, expected)


def test_golden_grid_covers_every_parameter() -> None:
    """The stored grid really spans the parameter space it claims to."""
    seen = {k: {json.dumps(c[k]) for c in CONV_CASES} for k in CONV_CASES[0] if k != "id"}
    assert len(seen["kernel"]) == 8
    assert len(seen["stride"]) == 3 and len(seen["padding"]) == 6
    assert len(seen["pad_mode"]) == 6 and len(seen["dilation"]) == 3
    assert len(seen["activation"]) == 6 and seen["flip"] == {"true", "false"}
    pool_seen = {(c["op"], c["ceil_mode"], c["count_include_pad"]) for c in POOL_CASES}
    assert ("avg", True, False) in pool_seen and ("max", True, True) in pool_seen
