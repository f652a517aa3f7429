"""Regenerate the golden arrays in tests/data/ with PyTorch (CPU).

    pip install torch==2.13.0
    python tests/make_golden.py

Writes tests/data/golden_conv.npz and tests/data/golden_pool.npz: for each
case the float32 input, kernel, bias and torch's float64 result, plus the
parameters as JSON. The suite reads them without torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference as ref  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def main() -> None:
    import torch

    rng = np.random.default_rng(20261128)
    arrays: dict[str, np.ndarray] = {}
    params = []
    for i, case in enumerate(ref.conv_cases(seed=1, n=len(ref.CONV_KERNELS) * 18)):
        x, w = ref.materialise(case, rng)
        if case["bias"] == "per-channel":
            n_out = ref_out_channels(w, x.shape[0])
            case["bias"] = np.round(rng.standard_normal(n_out), 3).tolist()
        try:
            y = ref.torch_conv(x, w, case)
        except RuntimeError as exc:  # torch refuses (e.g. reflect pad wider than the input)
            print(f"skip conv case {i}: {exc}".splitlines()[0])
            continue
        arrays[f"c{i}_x"], arrays[f"c{i}_w"], arrays[f"c{i}_y"] = x, w, y
        params.append({"id": i, **case})
    np.savez_compressed(DATA / "golden_conv.npz", params=json.dumps(params), **arrays)
    print(f"conv: {len(params)} cases")

    arrays, params = {}, []
    for i, case in enumerate(ref.pool_cases()):
        (x,) = ref.materialise(case, rng)
        try:
            y = ref.torch_pool(x, case)
        except RuntimeError as exc:
            print(f"skip pool case {i}: {exc}".splitlines()[0])
            continue
        arrays[f"p{i}_x"], arrays[f"p{i}_y"] = x, y
        params.append({"id": i, **case})
    np.savez_compressed(DATA / "golden_pool.npz", params=json.dumps(params), **arrays)
    print(f"pool: {len(params)} cases; torch {torch.__version__}")


def ref_out_channels(w: np.ndarray, c: int) -> int:
    return {2: c, 3: w.shape[0] * c, 4: w.shape[0]}[w.ndim]


if __name__ == "__main__":
    main()
