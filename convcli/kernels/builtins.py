"""Built-in kernels, by name, with parameters after colons (``gaussian:7:1.5``).

Conventions, for every kernel here:

* Kernels are applied as **cross-correlation** (no flip), the way CNNs and
  PyTorch apply them. A derivative kernel therefore responds *positively* where
  intensity increases in its direction: ``sobel-x`` is ``[[-1, 0, 1], [-2, 0, 2],
  [-1, 0, 1]]`` and is positive where the image gets brighter from left to
  right; ``sobel-y`` is positive where it gets brighter from top to bottom
  (rows grow downwards, as in the image array).
* Blurs (``box``, ``gaussian``, ``motion``) sum to 1, so flat regions keep their
  value; derivative and edge kernels (``sobel-*``, ``laplacian``, ``log``,
  ``dog``, ``outline``, ``kirsch``, ``gabor``) sum to 0, so flat regions give 0;
  ``sharpen``, ``unsharp``, ``emboss`` and ``identity`` sum to 1.
* Angles are in degrees, counter-clockwise from "pointing right", with "up"
  meaning towards the top of the picture.
* Weights are float64 and final (nothing left to normalise or scale).

Examples
--------
>>> k = builtin_kernel("sobel-x")
>>> k.weights.astype(int).tolist()
[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
>>> g = builtin_kernel("gaussian:7:1.5")
>>> g.shape, round(float(g.weights.sum()), 12)
((7, 7), 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convcli.errors import KernelError
from convcli.kernels.model import Kernel
from convcli.vocab import did_you_mean

# --------------------------------------------------------------------------- spec parsing


def parse_kernel_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """Split ``"name:p1:p2"`` into the lower-cased name and its raw parameter strings.

    Empty parameters are kept (``"gaussian::2"`` means "default size, sigma 2").

    >>> parse_kernel_spec("Gaussian:7:1.5")
    ('gaussian', ('7', '1.5'))
    >>> parse_kernel_spec("sobel-x")
    ('sobel-x', ())
    """
    name, *params = spec.strip().split(":")
    return name.strip().lower(), tuple(p.strip() for p in params)


@dataclass(frozen=True)
class Param:
    """One positional parameter of a built-in: its name, type and a check."""

    name: str
    kind: type  # int or float
    check: Callable[[float], str | None] = lambda v: None  # returns a complaint or None


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def _odd_positive(v: float) -> str | None:
    if v < 1:
        return "must be a positive odd integer"
    return None if int(v) % 2 == 1 else "must be odd (the kernel needs a centre tap)"


def _at_least_1(v: float) -> str | None:
    return None if v >= 1 else "must be >= 1"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _four_or_eight(v: float) -> str | None:
    return None if v in (4, 8) else "must be 4 or 8 (neighbours)"


def _any(v: float) -> str | None:
    return None


#: Largest side of a built-in kernel (a 4097×4097 Gaussian is a sigma of ~680 px):
#: beyond it a typo such as ``box:100000`` would try to allocate tens of GiB.
MAX_KERNEL_SIZE = 4097


def _parse_params(name: str, raw: tuple[str, ...], params: tuple[Param, ...]) -> list[float | None]:
    """Turn raw strings into numbers (None where a parameter was left out or empty)."""
    if len(raw) > len(params):
        if not params:
            raise KernelError(f"{name} takes no parameters, got {':'.join(raw)!r}")
        names = ", ".join(p.name for p in params)
        raise KernelError(
            f"{name} takes at most {len(params)} parameter{'s' * (len(params) > 1)} "
            f"({names}), got {len(raw)}: {name}:{':'.join(raw)}"
        )
    values: list[float | None] = [None] * len(params)
    for i, text in enumerate(raw):
        p = params[i]
        if text == "":
            continue
        try:
            value: float = int(text) if p.kind is int else float(text)
        except ValueError:
            kind = "a whole number" if p.kind is int else "a number"
            raise KernelError(f"{name}: {p.name} must be {kind}, got {text!r}") from None
        if not math.isfinite(value):
            raise KernelError(f"{name}: {p.name} must be finite, got {text!r}")
        problem = p.check(value)
        if not problem and p.kind is int and value > MAX_KERNEL_SIZE:
            problem = f"must be at most {MAX_KERNEL_SIZE}"
        if problem:
            raise KernelError(f"{name}: {p.name} {problem}, got {text}")
        values[i] = value
    return values


# --------------------------------------------------------------------------- constructors


def gaussian_sigma_for_size(k: int) -> float:
    """OpenCV's default sigma for a k-tap Gaussian: ``0.3 * ((k - 1) / 2 - 1) + 0.8``.

    >>> gaussian_sigma_for_size(5)
    1.1
    """
    return round(0.3 * ((k - 1) * 0.5 - 1) + 0.8, 10)


def gaussian_size_for_sigma(sigma: float) -> int:
    """Smallest odd size covering ±3 sigma: ``2 * ceil(3 * sigma) + 1``.

    >>> gaussian_size_for_sigma(1.0)
    7
    """
    if 6 * sigma + 1 > MAX_KERNEL_SIZE:
        raise KernelError(
            f"sigma {sigma:g} needs a kernel wider than {MAX_KERNEL_SIZE} taps;"
            " use a smaller sigma (or shrink the image first)"
        )
    return 2 * math.ceil(3 * sigma) + 1


def gaussian_1d(k: int, sigma: float) -> np.ndarray:
    """A k-tap Gaussian sampled at integer offsets from the centre, summing to 1.

    >>> gaussian_1d(3, 1.0).round(4).tolist()
    [0.2741, 0.4519, 0.2741]
    """
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_2d(k: int, sigma: float) -> np.ndarray:
    """Separable k×k Gaussian (outer product of :func:`gaussian_1d`), summing to 1."""
    g = gaussian_1d(k, sigma)
    return np.outer(g, g)


def _grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the centre: ``x`` grows rightwards, ``y`` grows *upwards*."""
    r = (k - 1) / 2
    rows, cols = np.mgrid[0:k, 0:k].astype(np.float64)
    return cols - r, r - rows


def log_2d(k: int, sigma: float) -> np.ndarray:
    """Laplacian of Gaussian, negative at the centre (like ``laplacian``), summing to 0."""
    x, y = _grid(k)
    r2 = x**2 + y**2
    w = (r2 - 2 * sigma**2) / sigma**4 * np.exp(-r2 / (2 * sigma**2))
    w = w - w.mean()  # the sampled, truncated LoG does not sum to 0 exactly
    return w / np.abs(w).sum() * 2  # positive taps sum to 1, negative to -1


def motion_2d(length: int, angle: float) -> np.ndarray:
    """A line of ``length`` taps through the centre at ``angle`` degrees, summing to 1.

    Each tap weighs ``max(0, 1 - distance to the line segment)``, so a horizontal
    or vertical line is exactly ``length`` equal taps and diagonals are anti-aliased.
    """
    x, y = _grid(length)
    t = math.radians(angle)
    dx, dy = math.cos(t), math.sin(t)
    half = (length - 1) / 2
    along = np.clip(x * dx + y * dy, -half, half)
    dist = np.hypot(x - along * dx, y - along * dy)
    w = np.clip(1.0 - dist, 0.0, None)
    w[np.abs(w) < 1e-12] = 0.0
    return w / w.sum()


def gabor_2d(k: int, theta: float, sigma: float, lam: float) -> np.ndarray:
    """Real (cosine) Gabor: a Gaussian envelope times stripes of wavelength ``lam`` pixels.

    ``theta`` (degrees) is the direction the stripes vary in: 0 gives vertical
    stripes, which respond to vertical lines and edges. The envelope-weighted mean
    is removed, so the kernel sums to 0 (no response to flat regions); it is then
    scaled so that its positive taps sum to 1.
    """
    x, y = _grid(k)
    t = math.radians(theta)
    u = x * math.cos(t) + y * math.sin(t)
    env = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    wave = np.cos(2 * math.pi * u / lam)
    w = env * (wave - (env * wave).sum() / env.sum())
    return w / np.abs(w).sum() * 2


def kirsch_bank() -> tuple[np.ndarray, tuple[str, ...]]:
    """Kirsch's 8 compass kernels: ``n, ne, e, se, s, sw, w, nw``.

    ``kirsch-n`` weighs the top row 5 and the rest of the ring -3, so it is
    positive where the top (north) side is brighter; each next member turns the
    outer ring one step (45°) clockwise.
    """
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]  # clockwise from NW
    base = [5, 5, 5, -3, -3, -3, -3, -3]  # as the ring, starting at the north-west corner
    names = ("n", "ne", "e", "se", "s", "sw", "w", "nw")
    out = np.zeros((8, 3, 3))
    for m in range(8):
        for pos, (r, c) in enumerate(ring):
            out[m, r, c] = base[(pos - m) % 8]
    return out, tuple(f"kirsch-{n}" for n in names)


SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=np.float64)
PREWITT_X = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64)
ROBERTS_X = np.array([[-1, 0], [0, 1]], dtype=np.float64)  # brighter towards bottom-right
ROBERTS_Y = np.array([[0, -1], [1, 0]], dtype=np.float64)  # brighter towards bottom-left
LAPLACIAN_4 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
LAPLACIAN_8 = np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=np.float64)
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
OUTLINE = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)
IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Builtin:
    """A built-in kernel: how to make it and how to describe it."""

    name: str
    params: tuple[Param, ...]
    make: Callable[[list[float | None]], tuple[np.ndarray, str, tuple[str, ...]]]
    summary: str  # one line for `convcli kernels list`

    @property
    def signature(self) -> str:
        """``gaussian[:k[:sigma]]``."""
        tail = "".join(f"[:{p.name}" for p in self.params) + "]" * len(self.params)
        return self.name + tail


def _const(name: str, w: np.ndarray, text: str) -> Builtin:
    """A built-in without parameters."""
    return Builtin(name, (), lambda v: (w.copy(), text, ()), text)


def _box(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    k = int(v[0] or 3)
    return np.full((k, k), 1.0 / (k * k)), f"box blur {k}×{k}, mean of the window", ()


def _gaussian(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    k, sigma = v
    if k is None:
        k = 5 if sigma is None else gaussian_size_for_sigma(sigma)
    if sigma is None:
        sigma = gaussian_sigma_for_size(int(k))
    return gaussian_2d(int(k), sigma), f"Gaussian blur {int(k)}×{int(k)}, sigma {sigma:g}", ()


def _unsharp(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    k, sigma, amount = v
    if k is None:
        k = 5 if sigma is None else gaussian_size_for_sigma(sigma)
    if sigma is None:
        sigma = gaussian_sigma_for_size(int(k))
    amount = 1.0 if amount is None else amount
    k = int(k)
    ident = np.zeros((k, k))
    ident[k // 2, k // 2] = 1.0
    w = (1 + amount) * ident - amount * gaussian_2d(k, sigma)
    return w, f"unsharp mask {k}×{k}, sigma {sigma:g}, amount {amount:g}", ()


def _laplacian(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    n = int(v[0] or 4)
    w = LAPLACIAN_4 if n == 4 else LAPLACIAN_8
    return w.copy(), f"Laplacian, {n}-neighbour (negative centre)", ()


def _log(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    k, sigma = v
    if k is None:
        k = 9 if sigma is None else gaussian_size_for_sigma(sigma)
    if sigma is None:
        sigma = (int(k) - 1) / 6
    return log_2d(int(k), sigma), f"Laplacian of Gaussian {int(k)}×{int(k)}, sigma {sigma:g}", ()


def _dog(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    s1, s2 = v
    s1 = 1.0 if s1 is None else s1
    s2 = 1.6 * s1 if s2 is None else s2
    if s2 <= s1:
        raise KernelError(f"dog: s2 must be larger than s1, got s1={s1:g}, s2={s2:g}")
    k = gaussian_size_for_sigma(s2)
    w = gaussian_2d(k, s1) - gaussian_2d(k, s2)
    text = f"difference of Gaussians {k}×{k}, sigma {s1:g} - {s2:g} (positive centre)"
    return w, text, ()


def _motion(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    length = int(v[0] or 9)
    angle = 0.0 if v[1] is None else v[1]
    return motion_2d(length, angle), f"motion blur, {length} px at {angle:g}°", ()


def _gabor(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    k = int(v[0] or 15)
    theta = 0.0 if v[1] is None else v[1]
    sigma = k / 6 if v[2] is None else v[2]
    lam = k / 3 if v[3] is None else v[3]
    text = f"Gabor {k}×{k}, theta {theta:g}°, sigma {sigma:g}, wavelength {lam:g}"
    return gabor_2d(k, theta, sigma, lam), text, ()


def _bank(*names: str) -> Callable[[list[float | None]], tuple]:
    def make(v: list[float | None]) -> tuple[np.ndarray, str, tuple[str, ...]]:
        if names == ("kirsch",):
            w, labels = kirsch_bank()
            return w, "Kirsch compass bank (n, ne, e, se, s, sw, w, nw)", labels
        members = [builtin_kernel(n).weights for n in names]
        return np.stack(members), f"bank: {', '.join(names)}", names

    return make


_K = Param("k", int, _odd_positive)
_SIGMA = Param("sigma", float, _positive)

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        _const("identity", IDENTITY, "identity (output = input)"),
        Builtin("box", (Param("k", int, _at_least_1),), _box, "mean of a k×k window (3)"),
        Builtin("gaussian", (_K, _SIGMA), _gaussian, "Gaussian blur (5, OpenCV sigma rule)"),
        _const("sharpen", SHARPEN, "sharpen (5 centre, -1 cross)"),
        Builtin(
            "unsharp",
            (_K, _SIGMA, Param("amount", float, _non_negative)),
            _unsharp,
            "sharpen by subtracting a blur (5, 1.1, 1)",
        ),
        Builtin(
            "laplacian",
            (Param("n", int, _four_or_eight),),
            _laplacian,
            "2nd derivative, 4 or 8 neighbours (4)",
        ),
        Builtin("log", (_K, _SIGMA), _log, "Laplacian of Gaussian (9, (k-1)/6)"),
        Builtin(
            "dog",
            (Param("s1", float, _positive), Param("s2", float, _positive)),
            _dog,
            "difference of Gaussians (1, 1.6·s1)",
        ),
        _const("sobel-x", SOBEL_X, "Sobel x: + where brighter rightwards"),
        _const("sobel-y", SOBEL_X.T.copy(), "Sobel y: + where brighter below"),
        _const("scharr-x", SCHARR_X, "Scharr x: + where brighter rightwards"),
        _const("scharr-y", SCHARR_X.T.copy(), "Scharr y: + where brighter below"),
        _const("prewitt-x", PREWITT_X, "Prewitt x: + where brighter rightwards"),
        _const("prewitt-y", PREWITT_X.T.copy(), "Prewitt y: + where brighter below"),
        _const("roberts-x", ROBERTS_X, "Roberts: + where brighter to bottom-right"),
        _const("roberts-y", ROBERTS_Y, "Roberts: + where brighter to bottom-left"),
        _const("emboss", EMBOSS, "emboss (light from the top-left)"),
        _const("outline", OUTLINE, "outline (8 centre, -1 ring)"),
        Builtin(
            "motion",
            (Param("length", int, _odd_positive), Param("angle", float, _any)),
            _motion,
            "line blur at angle° (9, 0 = horizontal)",
        ),
        Builtin(
            "gabor",
            (_K, Param("theta", float, _any), _SIGMA, Param("lambda", float, _positive)),
            _gabor,
            "stripes in a Gaussian (15, 0°, k/6, k/3)",
        ),
        Builtin("sobel", (), _bank("sobel-x", "sobel-y"), "bank: sobel-x, sobel-y"),
        Builtin(
            "edges",
            (),
            _bank("sobel-x", "sobel-y", "scharr-x", "scharr-y", "laplacian"),
            "bank: sobel-x/y, scharr-x/y, laplacian",
        ),
        Builtin("kirsch", (), _bank("kirsch"), "bank: 8 compass directions"),
    ]
}


def builtin_names() -> list[str]:
    """Names of every built-in kernel, in the order ``convcli kernels list`` shows them.

    >>> "gaussian" in builtin_names() and "kirsch" in builtin_names()
    True
    """
    return list(BUILTINS)


def is_builtin(spec: str) -> bool:
    """True when the name part of ``spec`` (before any colon) is a built-in.

    >>> is_builtin("gaussian:7"), is_builtin("my-edge")
    (True, False)
    """
    return parse_kernel_spec(spec)[0] in BUILTINS


def builtin_kernel(spec: str) -> Kernel:
    """Make the built-in kernel ``spec`` (a name, optionally with ``:params``).

    Raises :class:`~convcli.errors.KernelError` for an unknown name (with a
    did-you-mean) or a bad parameter. The kernel's ``name`` is the spec as given
    (lower-cased), its ``description`` says which parameters were used.

    Examples
    --------
    >>> builtin_kernel("box:3").weights.sum().round(12)
    np.float64(1.0)
    >>> builtin_kernel("sobel").labels
    ('sobel-x', 'sobel-y')
    >>> builtin_kernel("gaussian:4")
    Traceback (most recent call last):
    ...
    convcli.errors.KernelError: gaussian: k must be odd (the kernel needs a centre tap), got 4
    """
    name, raw = parse_kernel_spec(spec)
    b = BUILTINS.get(name)
    if b is None:
        raise KernelError(
            f"unknown kernel {name!r}{did_you_mean(name, builtin_names())}; "
            "see `convcli kernels list`"
        )
    values = _parse_params(name, raw, b.params)
    full = ":".join([name, *raw]) if raw else name
    try:
        with np.errstate(all="ignore"):
            weights, description, labels = b.make(values)
    except (OverflowError, ZeroDivisionError) as exc:
        raise KernelError(f"{full}: a parameter is out of range ({exc})") from None
    except KernelError as exc:
        if exc.message.startswith(f"{name}:"):
            raise
        raise KernelError(f"{name}: {exc.message}") from None
    weights = np.asarray(weights, dtype=np.float64) + 0.0
    if not np.isfinite(weights).all():
        raise KernelError(
            f"{full}: these parameters give weights that are not finite numbers"
            " (a sigma or wavelength too small or too large?)"
        )
    return Kernel(
        name=full,
        weights=weights,
        description=description,
        labels=labels,
        source="built-in",
        extra={"params": {p.name: v for p, v in zip(b.params, values, strict=True)}},
    )
