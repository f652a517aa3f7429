"""Batch throughput: ``convcli convolve DIR -k sobel-x`` with 1 and 2 worker processes.

Usage::

    python benchmarks/bench_batch.py [--images 200] [--size 512] [--repeats 3] [--workers 1 2]

Generates the input PNGs (random RGB) in a temporary folder, removed afterwards;
each timing is a whole ``convcli`` process (start-up, finding inputs, worker
start-up, the summary), the best of ``--repeats`` runs. Prints images/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for i in range(n):  # a smooth-ish picture plus noise: compresses like a photo, not like noise
        noise = rng.integers(-16, 17, (size, size, 3))
        pixels = np.clip(np.roll(base, i, axis=1) // 2 + 64 + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:04d}.png", compress_level=1)


def time_run(src: Path, out: Path, workers: int) -> float:
    cmd = [sys.executable, "-m", "convcli", "convolve", str(src), "-k", "sobel-x",
           "-o", str(out), "-q", "--force", "--workers", str(workers)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"convcli failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="convcli-bench-batch-") as tmp:
        src, out = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        t0 = time.perf_counter()
        make_inputs(src, args.images, args.size)
        print(
            f"{args.images} RGB {args.size}x{args.size} PNGs made in "
            f"{time.perf_counter() - t0:.1f} s; CPUs available: {_cpus()}"
        )
        print(f"{'workers':>7}  {'best s':>7}  {'images/s':>8}  {'speed-up':>8}")
        base = None
        for workers in args.workers:
            best = min(time_run(src, out, workers) for _ in range(args.repeats))
            rate = args.images / best
            base = base or rate
            print(f"{workers:>7}  {best:>7.2f}  {rate:>8.1f}  {rate / base:>7.2f}x")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
