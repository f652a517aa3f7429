"""2-D convolution with CNN semantics (cross-correlation unless ``flip``).

The public entry point is :func:`conv2d`. It validates the arguments, asks
:mod:`convcli.shapes` for the padding and the output size, pads with
:func:`convcli.ops.padding.pad2d`, runs one of several engines, then adds the
bias and applies the activation. Every engine computes the same numbers (to
float32 rounding); ``method="direct"`` is the plain reference the others are
tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from convcli.errors import ParameterError, ShapeError
from convcli.ops.activations import activate, parse_activation
from convcli.ops.padding import check_pad_mode, pad2d
from convcli.shapes import PaddingSpec, StageGeometry, conv_geometry


class Kernel(Protocol):
    """What :func:`conv2d` reads of a kernel object (:class:`convcli.Kernel` has it all)."""

    @property
    def weights(self) -> np.ndarray: ...
    @property
    def bias(self) -> Any: ...
    @property
    def origin(self) -> tuple[int, int] | None: ...
    @property
    def flip(self) -> bool: ...


METHODS = ("auto", "opencv", "direct", "separable", "fft", "gemm")

#: Non-separable 2-D kernels with at least this many taps go through the FFT.
FFT_MIN_TAPS = 15 * 15
#: Output rows per block in the row-tiled engines (keeps temporaries in cache).
ROW_BLOCK_ELEMENTS = 1 << 16
#: Columns of one im2col block. Small enough that the gathered block stays in
#: L2 and OpenBLAS runs each product on one thread (its own threads, stacked on
#: convcli's, measured 10-20x slower at 8192 columns on 2 cores).
GEMM_COLUMNS = 2048


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray | Kernel,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingSpec = "same",
    pad_mode: str = "reflect",
    pad_value: float = 0.0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    flip: bool = False,
    bias: float | Sequence[float] | np.ndarray | None = None,
    activation: str | None = None,
    dtype: Any = None,
    method: str = "auto",
    geometry: StageGeometry | None = None,
) -> np.ndarray:
    """Convolve a ``(C, H, W)`` (or ``(H, W)``) image with a kernel, the way a CNN layer does.

    Parameters
    ----------
    x : ndarray
        The image, channels first. A 2-D array is one channel.
    kernel : ndarray or Kernel
        ``(kh, kw)``: filters each channel on its own (depthwise), C outputs.
        ``(n, kh, kw)``: a bank; each kernel on each channel, ``n*C`` outputs,
        kernel-major (all channels of kernel 0 first).
        ``(c_out, c_in/groups, kh, kw)``: a layer; each output sums over its
        group's input channels, ``c_out`` outputs.
        A :class:`~convcli.kernels.model.Kernel` also supplies ``bias`` (when
        ``bias`` is None), ``origin`` and ``flip``.
    stride, dilation : int or (int, int)
    padding : ``"valid"``, ``"same"``, ``"full"``, P, (PH, PW) or (top, bottom, left, right)
        ``same`` gives ``ceil(in / stride)`` outputs (TensorFlow's rule; any
        stride, even kernels; the extra pixel goes bottom/right).
    pad_mode : ``zeros``, ``constant``, ``reflect``, ``symmetric``, ``replicate``, ``circular``
        How the border is filled (see :mod:`convcli.ops.padding`). ``pad_value``
        is the fill for ``constant``.
    groups : int
        As in PyTorch, for 4-D kernels only.
    flip : bool
        False (default): cross-correlation, what CNNs and PyTorch compute.
        True: true convolution (kernel rotated 180°, as ``scipy.ndimage.convolve``).
    bias : scalar, one value per output channel, or (banks) one per kernel
        Added after the weighted sum.
    activation : ``none``, ``relu``, ``leaky-relu[:slope]``, ``sigmoid``, ``tanh``, ``abs``
        Applied after the bias.
    dtype : float32 or float64, optional
        The computation and result type. Default: float64 when ``x`` is
        float64, otherwise float32.
    geometry : StageGeometry, optional
        This call's geometry, already worked out by
        :func:`convcli.shapes.conv_geometry` for this input (a pipeline plans every
        stage once and hands it over); must match ``x`` and the other options.
    method : ``auto``, ``opencv``, ``direct``, ``separable``, ``fft``, ``gemm``
        The engine. ``auto`` uses OpenCV's ``filter2D`` for 2-D kernels and banks
        when OpenCV is installed (else picks a numpy engine by kernel shape) and
        a row-tiled im2col + BLAS for 4-D layers; all agree to float rounding.

    Returns
    -------
    ndarray
        ``(C_out, H_out, W_out)``; 2-D when ``x`` was 2-D and there is one output map.

    Raises
    ------
    ParameterError
        (a ``ValueError``) for any bad argument; the message names it and its value.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> conv2d(x, np.ones((2, 2)), padding="valid", stride=2)
    array([[10., 18.],
           [42., 50.]], dtype=float32)
    >>> sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    >>> step = np.repeat([[0, 0, 1, 1]], 4, axis=0).astype(np.float32)
    >>> conv2d(step, sobel_x, padding="valid")          # rising edge → positive
    array([[4., 4.],
           [4., 4.]], dtype=float32)
    >>> conv2d(np.ones((3, 5, 5)), np.ones((2, 3, 3))).shape   # bank: 2 kernels × 3 channels
    (6, 5, 5)
    """
    weights, bias, origin, flip = _unpack_kernel(kernel, bias, flip)
    if method not in METHODS:
        raise ParameterError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    check_pad_mode(pad_mode)
    x3, was_2d = _as_chw(x)
    dt = result_dtype(x3, dtype)
    w = _check_weights(weights)
    if flip:
        w = w[..., ::-1, ::-1]
        if origin is not None:
            origin = (w.shape[-2] - 1 - origin[0], w.shape[-1] - 1 - origin[1])
    if geometry is not None and geometry.in_shape == x3.shape:
        geom = geometry
    else:
        geom = conv_geometry(
            x3.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
            groups=groups, origin=origin, bias=bias is not None,
        )  # fmt: skip
    try:
        fill = float(pad_value)
    except (TypeError, ValueError):
        raise ParameterError(f"pad value must be a number, got {pad_value!r}") from None
    name, _ = parse_activation(activation)
    w = np.ascontiguousarray(w, dtype=dt)
    out = _run_engine(np.asarray(x3, dtype=dt), w, geom, groups, method, pad_mode, fill)
    if bias is not None:
        n_kernels = w.shape[0] if w.ndim == 3 else 1
        out += _bias_vector(bias, out.shape[0], dt, per_kernel=n_kernels)[:, None, None]
    if name != "none":
        activate(out, activation, out=out)
    if was_2d and out.shape[0] == 1:
        return out[0]
    return out


def result_dtype(x: np.ndarray, dtype: Any = None) -> np.dtype:
    """float64 when asked for or when ``x`` is float64; float32 otherwise."""
    if dtype is None:
        return np.dtype(np.float64 if np.asarray(x).dtype == np.float64 else np.float32)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, got {dt}")
    return dt


# --------------------------------------------------------------------------- argument handling


def _unpack_kernel(
    kernel: Any, bias: Any, flip: bool
) -> tuple[Any, Any, tuple[int, int] | None, bool]:
    weights = getattr(kernel, "weights", None)
    if weights is None:  # a plain array
        return kernel, bias, None, bool(flip)
    if bias is None:
        bias = kernel.bias
    return weights, bias, kernel.origin, bool(flip) or bool(kernel.flip)


def _as_chw(x: Any) -> tuple[np.ndarray, bool]:
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"image must be an array of numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise ParameterError(f"image must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ShapeError(f"image must be (H, W) or (C, H, W); got shape {arr.shape}")
    if 0 in arr.shape:
        raise ShapeError(f"image is empty: shape {arr.shape}")
    if arr.ndim == 2:
        return arr[None], True
    return arr, False


def _check_weights(weights: Any) -> np.ndarray:
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"kernel must be an array of numbers: {exc}") from None
    if w.ndim not in (2, 3, 4):
        raise ShapeError(
            "kernel must be 2-D (kh, kw), 3-D (n, kh, kw) or 4-D (c_out, c_in/groups, kh, kw);"
            f" got shape {w.shape}"
        )
    if w.size == 0:
        raise ShapeError(f"kernel is empty: shape {w.shape}")
    if not np.all(np.isfinite(w)):
        bad = int(np.count_nonzero(~np.isfinite(w)))
        raise ParameterError(f"kernel holds {bad} NaN or infinite value(s)")
    return w


def _bias_vector(bias: Any, n: int, dt: np.dtype, *, per_kernel: int = 1) -> np.ndarray:
    try:
        b = np.asarray(bias, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ParameterError(
            f"bias must be a number or one number per output, got {bias!r}"
        ) from None
    if b.size == 1:
        b = np.repeat(b, n)
    elif per_kernel > 1 and b.size == per_kernel and n != per_kernel:
        b = np.repeat(b, n // per_kernel)  # one per kernel of a bank, over every channel
    if b.size != n:
        raise ParameterError(f"bias has {b.size} values but there are {n} output channels")
    if not np.all(np.isfinite(b)):
        raise ParameterError(f"bias must be finite, got {bias!r}")
    return b.astype(dt)


# --------------------------------------------------------------------------- engines


def _run_engine(
    x: np.ndarray,
    w: np.ndarray,
    geom: StageGeometry,
    groups: int,
    method: str,
    pad_mode: str,
    fill: float,
) -> np.ndarray:
    from convcli import opencv
    from convcli.ops import accel

    _, ho, wo = geom.out_shape
    if method == "opencv" and not opencv.available():
        raise ParameterError("method 'opencv' needs OpenCV (pip install opencv-python-headless)")
    if w.ndim == 4:
        if method not in ("auto", "gemm", "direct"):
            raise ParameterError(f"method {method!r} does not apply to a 4-D layer kernel")
        xp = pad2d(x, geom.padding, mode=pad_mode, value=fill)
        if method == "direct":
            return _layer_direct(xp, w, (ho, wo), geom.stride, geom.dilation, groups)
        return _layer_gemm(xp, w, (ho, wo), geom.stride, geom.dilation, groups)
    bank = w[None] if w.ndim == 2 else w
    c = x.shape[0]
    out = np.empty((bank.shape[0] * c, ho, wo), dtype=x.dtype)
    use_cv = method == "opencv" or (method == "auto" and opencv.available())
    xq = None if use_cv else pad2d(x, geom.padding, mode=pad_mode, value=fill)
    for k, wk in enumerate(bank):
        if use_cv:
            accel.depthwise(x, wk, geom, pad_mode, fill, out=out[k * c : (k + 1) * c])
        else:
            assert xq is not None
            out[k * c : (k + 1) * c] = _depthwise(
                xq, wk, (ho, wo), geom.stride, geom.dilation, method
            )
    return out


def _depthwise(
    xp: np.ndarray,
    w: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    method: str,
) -> np.ndarray:
    if method == "auto":
        method = choose_method(w)
    if method == "separable":
        factors = separable_factors(w)
        if factors is None:
            raise ParameterError("method 'separable' needs a rank-1 kernel; this one is not")
        return _separable(xp, factors[0], factors[1], out_hw, stride, dilation)
    if method == "fft":
        return _fft(xp, w, out_hw, stride, dilation)
    if method == "gemm":
        return _layer_gemm(xp, w[None, None], out_hw, stride, dilation, 1, depthwise=True)
    return _direct(xp, w, out_hw, stride, dilation)


def choose_method(w: np.ndarray) -> str:
    """The engine ``auto`` picks for one 2-D kernel.

    >>> choose_method(np.ones((3, 3))), choose_method(np.eye(3)), choose_method(np.eye(31))
    ('separable', 'direct', 'fft')
    """
    kh, kw = w.shape
    if kh * kw > 3 and separable_factors(w) is not None:
        return "separable"
    if kh * kw >= FFT_MIN_TAPS:
        return "fft"
    return "direct"


def separable_factors(w: np.ndarray, rtol: float = 1e-6) -> tuple[np.ndarray, np.ndarray] | None:
    """``(col, row)`` with ``outer(col, row) == w`` when ``w`` has rank 1, else None.

    >>> col, row = separable_factors(np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]))
    >>> np.allclose(np.outer(col, row), [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    True
    """
    w64 = np.asarray(w, dtype=np.float64)
    if w64.ndim != 2 or not np.any(w64):
        return None
    # Factor through the largest entry: exact for integer kernels such as Sobel.
    i, j = np.unravel_index(np.argmax(np.abs(w64)), w64.shape)
    col = w64[:, j].copy()
    row = w64[i, :] / w64[i, j]
    if np.max(np.abs(np.outer(col, row) - w64)) > rtol * np.max(np.abs(w64)):
        return None
    return col, row


def _row_blocks(n_rows: int, row_len: int) -> list[tuple[int, int]]:
    step = max(1, ROW_BLOCK_ELEMENTS // max(row_len, 1))
    return [(r, min(r + step, n_rows)) for r in range(0, n_rows, step)]


def _tap(
    xp: np.ndarray,
    i: int,
    j: int,
    rows: tuple[int, int],
    wo: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """The strided view of the padded input that tap (i, j) multiplies, for output rows ``rows``."""
    sy, sx = stride
    r0, r1 = rows
    y0 = r0 * sy + i * dilation[0]
    x0 = j * dilation[1]
    return xp[..., y0 : y0 + (r1 - r0 - 1) * sy + 1 : sy, x0 : x0 + (wo - 1) * sx + 1 : sx]


def _direct(
    xp: np.ndarray,
    w: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Reference engine: one multiply-add per kernel tap over the whole (row-tiled) image."""
    ho, wo = out_hw
    c = xp.shape[0]
    out = np.zeros((c, ho, wo), dtype=xp.dtype)
    taps = [(i, j, xp.dtype.type(w[i, j])) for i in range(w.shape[0]) for j in range(w.shape[1])]
    for rows in _row_blocks(ho, wo * c):
        acc = out[:, rows[0] : rows[1]]
        tmp = np.empty_like(acc)
        for i, j, wij in taps:
            if wij == 0:
                continue
            view = _tap(xp, i, j, rows, wo, stride, dilation)
            np.multiply(view, wij, out=tmp)
            acc += tmp
    return out


def _separable(
    xp: np.ndarray,
    col: np.ndarray,
    row: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Rank-1 kernel: a vertical pass then a horizontal pass (kh + kw taps, not kh * kw)."""
    ho, wo = out_hw
    wp = xp.shape[-1]
    dt = xp.dtype
    mid = _direct(xp, col.reshape(-1, 1).astype(dt), (ho, wp), (stride[0], 1), (dilation[0], 1))
    return _direct(mid, row.reshape(1, -1).astype(dt), (ho, wo), (1, stride[1]), (1, dilation[1]))


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes the FFT handles fastest)."""
    best = 1 << max(0, (n - 1).bit_length())
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def _fft(
    xp: np.ndarray,
    w: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Large kernels: correlation through the FFT (in float64, then cast back)."""
    ho, wo = out_hw
    kh, kw = w.shape
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    hp, wp = xp.shape[-2:]
    fh, fw = _fast_len(hp), _fast_len(wp)
    kern = np.zeros((eh, ew))
    kern[:: dilation[0], :: dilation[1]] = w
    kern = kern[::-1, ::-1]  # correlation = convolution with the rotated kernel
    kf = np.fft.rfft2(kern, s=(fh, fw))
    out = np.empty((xp.shape[0], ho, wo), dtype=xp.dtype)
    for ch in range(xp.shape[0]):
        full = np.fft.irfft2(np.fft.rfft2(xp[ch], s=(fh, fw)) * kf, s=(fh, fw))
        valid = full[eh - 1 : hp, ew - 1 : wp]
        out[ch] = valid[
            : (ho - 1) * stride[0] + 1 : stride[0], : (wo - 1) * stride[1] + 1 : stride[1]
        ]
    return out


def _layer_gemm(
    xp: np.ndarray,
    w: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    *,
    depthwise: bool = False,
) -> np.ndarray:
    """A 4-D layer as row-tiled im2col + matrix multiply (BLAS), per group.

    Output rows are split into bands (one task each on the thread pool); within
    a band, blocks of rows small enough for the cache are gathered into a
    ``(c_in/groups * kh * kw, rows * W_out)`` matrix and multiplied by the
    ``(c_out/groups, c_in/groups * kh * kw)`` weights. With ``depthwise`` the
    single ``(1, 1, kh, kw)`` kernel is applied to every channel on its own.
    """
    from convcli import parallel

    ho, wo = out_hw
    c_out, c_in_g, kh, kw = w.shape
    if depthwise:
        xp = xp[:, None]  # (C, 1, Hp, Wp): each channel is its own "image"
        n_img, out_c, n_groups = xp.shape[0], xp.shape[0], 1
    else:
        n_img, out_c, n_groups = 1, c_out, groups
    out = np.empty((out_c, ho, wo), dtype=xp.dtype)
    cout_g = c_out // groups
    depth = c_in_g * kh * kw
    mats = w.reshape(groups, cout_g, depth)
    block = max(1, GEMM_COLUMNS // max(1, wo * n_img))
    sy, sx = stride
    dy, dx = dilation

    def gather(src: np.ndarray, b0: int, n: int) -> np.ndarray:
        """Every tap of output rows b0..b0+n as one strided view (.., c_in, kh, kw, n, wo)."""
        base = src[..., b0 * sy :, :]
        *lead, sh, sw = base.strides
        return np.lib.stride_tricks.as_strided(
            base,
            shape=(*base.shape[:-2], kh, kw, n, wo),
            strides=(*lead, sh * dy, sw * dx, sh * sy, sw * sx),
            writeable=False,
        )

    def work(band: tuple[int, int]) -> None:
        cols = np.empty((n_img, depth, block * wo), dtype=xp.dtype)
        for b0 in range(band[0], band[1], block):
            n = min(block, band[1] - b0)
            mat = cols[..., : n * wo]
            for g in range(n_groups):
                src = xp if depthwise else xp[g * c_in_g : (g + 1) * c_in_g]
                # one copy gathers the block's im2col matrix
                np.copyto(mat.reshape(n_img, c_in_g, kh, kw, n, wo), gather(src, b0, n)
                          if depthwise else gather(src, b0, n)[None])  # fmt: skip
                if depthwise:
                    res = np.matmul(mats[0], mat)  # (n_img, 1, n*wo)
                    out[:, b0 : b0 + n] = res.reshape(n_img, n, wo)
                else:
                    dst = out[g * cout_g : (g + 1) * cout_g, b0 : b0 + n].reshape(cout_g, n * wo)
                    np.matmul(mats[g], mat[0], out=dst)

    n_bands = 2 * parallel.num_threads() if out_c * ho * wo >= parallel.MIN_PARALLEL_VALUES else 1
    parallel.run_tasks(work, parallel.bands(ho, n_bands), values=out_c * ho * wo)
    return out


def _layer_direct(
    xp: np.ndarray,
    w: np.ndarray,
    out_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Reference for 4-D layers: every output sums its group's channels, tap by tap."""
    c_out, c_in_g = w.shape[:2]
    cout_g = c_out // groups
    out = np.zeros((c_out,) + out_hw, dtype=xp.dtype)
    for o in range(c_out):
        g = o // cout_g
        src = xp[g * c_in_g : (g + 1) * c_in_g]
        for c in range(c_in_g):
            out[o] += _direct(src[c : c + 1], w[o, c], out_hw, stride, dilation)[0]
    return out
