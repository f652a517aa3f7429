"""Deterministic inputs, generated into a temporary folder (never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)


def array(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) float32 noise: the worst case for caches, no shortcuts."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def gaussian(k: int) -> np.ndarray:
    """Normalised k×k Gaussian with OpenCV's default sigma for that size (separable)."""
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    r = np.arange(k, dtype=np.float64) - (k - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g).astype(np.float32)


def random_kernel(k: int, seed: int = 1) -> np.ndarray:
    """A full-rank (non-separable) k×k kernel, scaled so sum |w| = 1 (outputs stay O(1))."""
    w = np.random.default_rng(seed).standard_normal((k, k))
    return (w / np.abs(w).sum()).astype(np.float32)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with gradients, stripes and grain, so PNG codecs work as on photos."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    phase = rng.uniform(0, 6.28, 3).astype(np.float32)
    img = np.empty((h, w, 3), dtype=np.float32)
    img[..., 0] = 120 * (x + y) + 40 * np.sin(40 * x + phase[0])
    img[..., 1] = 128 + 90 * np.sin(25 * y + 9 * x + phase[1])
    img[..., 2] = 200 * x * y + 50 * np.cos(60 * (x - y) + phase[2])
    img += rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_png(
    path: Path, h: int, w: int, seed: int = 0, compress_level: int = 6, tile: int = 0
) -> Path:
    """Write ``photo(h, w)`` as PNG; ``tile`` repeats a smaller photo (fast for huge files)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        if tile:
            img = np.tile(photo(tile, tile, seed), (-(-h // tile), -(-w // tile), 1))[:h, :w]
        else:
            img = photo(h, w, seed)
        Image.fromarray(img).save(path, compress_level=compress_level)
    return path


def write_vips_mask(path: Path, kernel: np.ndarray, scale: float, offset: float) -> Path:
    """A vips matrix file: ``width height scale offset``, then rows; out = sum/scale + offset."""
    kh, kw = kernel.shape
    rows = [f"{kw} {kh} {scale:g} {offset:g}"]
    rows += [" ".join(f"{v:g}" for v in row) for row in kernel]
    path.write_text("\n".join(rows) + "\n")
    return path


def im_kernel(kernel: np.ndarray) -> str:
    """The kernel in ImageMagick's ``-morphology`` syntax, e.g. ``3x3: -1,0,1 -2,0,2 -1,0,1``."""
    kh, kw = kernel.shape
    rows = " ".join(",".join(f"{v:g}" for v in row) for row in kernel)
    return f"{kw}x{kh}: {rows}"
