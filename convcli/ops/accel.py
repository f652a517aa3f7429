"""OpenCV-backed engine for 2-D (depthwise) kernels — the fast path ``auto`` picks.

OpenCV's ``filter2D`` is a cross-correlation with an anchor; by placing the
anchor at ``(left, top)`` padding it computes exactly convcli's definition, and
for border modes OpenCV knows it reads the border itself (no padded copy).
Strided outputs are sampled from the stride-1 result. Everything else (an
anchor outside the kernel, ``circular``, a constant other than 0, padding
wider than the image) is padded by :func:`convcli.ops.padding.pad2d` first.

If OpenCV cannot be imported, :func:`available` is False and ``auto`` uses the
numpy engines; the numbers are the same to float32 rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convcli import parallel
from convcli.opencv import cv2_module
from convcli.ops.padding import PAD_MODE_NAMES, pad2d
from convcli.shapes import StageGeometry


def _border(cv2: Any, mode: str) -> int | None:
    name = PAD_MODE_NAMES[mode]["opencv"]
    if mode == "circular":  # filter2D does not support BORDER_WRAP
        return None
    return int(getattr(cv2, str(name)))


def depthwise(
    x: np.ndarray,
    w: np.ndarray,
    geom: StageGeometry,
    pad_mode: str,
    pad_value: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Correlate every channel of the *unpadded* ``(C, H, W)`` input with the 2-D ``w``.

    Writes into ``out`` (``(C, H_out, W_out)``, C-contiguous per channel) when given.
    """
    cv2 = cv2_module()
    c, h, wd = x.shape
    _, ho, wo = geom.out_shape
    sy, sx = geom.stride
    dy, dx = geom.dilation
    top, bottom, left, right = geom.padding
    kern = w
    if dy > 1 or dx > 1:
        kern = np.zeros(((w.shape[0] - 1) * dy + 1, (w.shape[1] - 1) * dx + 1), dtype=w.dtype)
        kern[::dy, ::dx] = w
    eh, ew = kern.shape
    border = _border(cv2, pad_mode)
    direct = (
        border is not None
        and (pad_mode != "constant" or pad_value == 0.0)
        and top < eh and left < ew  # anchor inside the kernel
        and (ho - 1) * sy < h and (wo - 1) * sx < wd  # every output starts inside the image
        and max(top, bottom) < h and max(left, right) < wd  # one reflection is enough
    )  # fmt: skip
    if direct:
        src, anchor = x, (left, top)
    else:
        src = pad2d(x, geom.padding, mode=pad_mode, value=pad_value)
        anchor, border = (0, 0), int(cv2.BORDER_CONSTANT)
    kern = np.ascontiguousarray(kern, dtype=x.dtype)
    if out is None:
        out = np.empty((c, ho, wo), dtype=x.dtype)
    if sy == 1 and sx == 1 and src.shape[1:] == (ho, wo) and c >= parallel.num_threads():
        # one task per channel, written straight into the result
        def whole(ch: int) -> None:
            cv2.filter2D(src[ch], -1, kern, dst=out[ch], anchor=anchor, borderType=border)

        parallel.run_tasks(whole, range(c), values=c * ho * wo)
        return out
    # Otherwise every channel is cut into row bands of output rows. A band reads
    # its input rows plus a halo of the kernel's height, so OpenCV's border only
    # touches rows that are real image borders or are thrown away.
    n_bands = 1 if ho * wo < parallel.MIN_PARALLEL_VALUES else 2 * parallel.num_threads()
    tasks = [(ch, r0, r1) for ch in range(c) for r0, r1 in parallel.bands(ho, n_bands)]
    hp = src.shape[1]

    def work(task: tuple[int, int, int]) -> None:
        ch, r0, r1 = task
        start = r0 * sy  # first row (in src coordinates + top) the band's windows start at
        stop = (r1 - 1) * sy + 1  # one past the last start row
        lo = max(0, start - anchor[1] - (eh - 1))
        hi = min(hp, stop - anchor[1] + (eh - 1) + 1)
        plane = src[ch, lo:hi]
        full = cv2.filter2D(plane, -1, kern, anchor=anchor, borderType=border)
        out[ch, r0:r1] = full[start - lo : stop - lo : sy, : (wo - 1) * sx + 1 : sx]

    parallel.run_tasks(work, tasks, values=c * ho * wo)
    return out
