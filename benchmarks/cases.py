"""The benchmark cases: convcli and its anchors on the same arrays and files.

Each ``case_*`` function returns :class:`~benchmarks.harness.Case` objects whose
contenders are closures over inputs already in memory or on disk, so only the
work itself is timed (plus, for command lines, process start-up, which is part
of what a user waits for).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import inputs
from benchmarks.harness import (
    Case,
    Contender,
    Proc,
    Skip,
    Target,
    checked,
    convcli_command,
    run_proc,
)

GiB = 2**30


@dataclass
class Ctx:
    tmp: Path
    quick: bool
    cache: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


# ---------------------------------------------------------------- helpers


def _absent(name: str, why: str) -> Contender:
    return Contender(name, lambda: None, skipped=why)


def _module(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name} not installed ({exc})") from exc


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Skip(f"{name} not on PATH (apt-get install {package})")
    return path


def _convcli_lib(name: str) -> Callable[..., Any]:
    import convcli  # the working tree: run.py puts the repo first on sys.path

    return getattr(convcli, name)  # lazy export: ImportError while the module is unwritten


def _np(out: Any) -> np.ndarray:
    a = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    return a


def compare_arrays(out: Any, ref: Any) -> tuple[float, str]:
    """Max abs difference, relative to max(1, max |ref|)."""
    a, b = _np(out), _np(ref)
    if a.shape != b.shape:
        return float("inf"), f"shape {a.shape} != {b.shape}"
    diff = float(np.max(np.abs(a.astype(np.float64) - b)))
    scale = max(1.0, float(np.max(np.abs(b))))
    return diff / scale, f"max|d|={diff:.1e}"


def sobel_fit(src: Path) -> Callable[[Any, Any], tuple[float, str]]:
    """Check an 8-bit Sobel-x PNG against the exact float response of ``src``.

    The tools map the signed response to 8 bits differently (vips and ImageMagick:
    x/8 + 128 from their masks; convcli: 0 at mid-grey, the 99.5th percentile of
    ``|x|`` at black/white, the rest clipped), so fit ``out = a * response + b``
    over the interior (borders differ by design) and the pixels no tool saturated
    (levels 1..254), and report the worst residual in 8-bit levels. Rounding alone
    leaves up to about one level.
    """
    cache: list[np.ndarray] = []

    def compare(out: Any, _ref: Any) -> tuple[float, str]:
        from PIL import Image

        if not cache:
            ndi = _module("scipy.ndimage")
            x = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
            k = inputs.SOBEL_X.astype(np.float64)
            resp = np.stack([ndi.correlate(x[..., i], k) for i in range(3)], axis=-1)
            cache.append(resp[2:-2, 2:-2].ravel())
        s = cache[0]
        y = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)[2:-2, 2:-2].ravel()
        if y.size != s.size:
            return float("inf"), f"size {y.size} != {s.size}"
        inside = (y > 0) & (y < 255)
        a, b = np.polyfit(s[inside], y[inside], 1)
        worst = float(np.max(np.abs(y[inside] - (a * s[inside] + b))))
        return worst / 255, f"8-bit fit: max resid {worst:.2f} levels"

    return compare


def _lazy(make: Callable[[], Callable[[], Any]]) -> Callable[[], Any]:
    """Build the timed closure on first call, so a missing library becomes a Skip."""
    box: list[Callable[[], Any]] = []

    def call() -> Any:
        if not box:
            box.append(make())
        return box[0]()

    return call


# ---------------------------------------------------------------- 1. depthwise


def _depthwise(ctx: Ctx, label: str, k: np.ndarray) -> Case:
    size = k.shape[0]
    x = ctx.get("x3", lambda: inputs.array((3, 2048, 2048)))
    p = size // 2

    def convcli_() -> Callable[[], Any]:
        conv2d = _convcli_lib("conv2d")
        return lambda: conv2d(x, k, padding="same", pad_mode="reflect")

    def opencv() -> Callable[[], Any]:
        cv2 = _module("cv2")

        def run() -> np.ndarray:
            out = np.empty_like(x)
            for i in range(x.shape[0]):
                cv2.filter2D(x[i], -1, k, dst=out[i], borderType=cv2.BORDER_REFLECT_101)
            return out

        return run

    def opencv_hwc() -> Callable[[], Any]:
        cv2 = _module("cv2")
        hwc = ctx.get("x3hwc", lambda: np.ascontiguousarray(x.transpose(1, 2, 0)))
        return lambda: cv2.filter2D(hwc, -1, k, borderType=cv2.BORDER_REFLECT_101)

    def torch_() -> Callable[[], Any]:
        torch = _module("torch")
        F = torch.nn.functional
        xt = torch.from_numpy(x)[None]
        wt = torch.from_numpy(k)[None, None].repeat(x.shape[0], 1, 1, 1)

        def run() -> Any:
            with torch.inference_mode():
                return F.conv2d(F.pad(xt, (p, p, p, p), mode="reflect"), wt, groups=x.shape[0])

        return run

    def scipy_() -> Callable[[], Any]:
        ndi = _module("scipy.ndimage")
        return lambda: ndi.correlate(x, k[None], mode="mirror")

    contenders = [
        Contender("convcli", _lazy(convcli_), convcli=True),
        Contender("opencv", _lazy(opencv)),
        Contender(
            "opencv-hwc",
            _lazy(opencv_hwc),
            convert=lambda y: y.transpose(2, 0, 1),
            note="HWC copy made untimed; not the target anchor",
        ),
        Contender("torch", _lazy(torch_)),
        Contender("scipy", _lazy(scipy_)),
    ]
    if ctx.quick and size >= 31:
        contenders[3] = _absent("torch", "skipped on --quick (31x31 can take ~45 s a call)")
        contenders[4] = _absent("scipy", "skipped on --quick (31x31 takes ~6 s a call)")
    return Case(
        name=f"depthwise-{size}x{size}-{label}",
        title=f"depthwise {size}x{size} {label}, f32 3x2048x2048, same/reflect",
        contenders=contenders,
        target=Target(ratio=1.5, anchors=("opencv",), text="<= 1.5x opencv"),
        reference="opencv",
        compare=compare_arrays,
    )


# ---------------------------------------------------------------- 2. CNN layer


def case_layer(ctx: Ctx) -> Case:
    x = ctx.get("x3", lambda: inputs.array((3, 2048, 2048)))
    w = (np.random.default_rng(2).standard_normal((16, 3, 3, 3)) / 27).astype(np.float32)

    def convcli_() -> Callable[[], Any]:
        conv2d = _convcli_lib("conv2d")
        return lambda: conv2d(x, w)  # defaults: padding="same", pad_mode="reflect"

    def torch_() -> Callable[[], Any]:
        torch = _module("torch")
        F = torch.nn.functional
        xt, wt = torch.from_numpy(x)[None], torch.from_numpy(w)

        def run() -> Any:
            with torch.inference_mode():
                return F.conv2d(F.pad(xt, (1, 1, 1, 1), mode="reflect"), wt)

        return run

    return Case(
        name="layer-16x3x3x3",
        title="conv layer 16x3x3x3 on f32 3x2048x2048, same/reflect",
        contenders=[
            Contender("convcli", _lazy(convcli_), convcli=True),
            Contender("torch", _lazy(torch_)),
        ],
        target=Target(ratio=0.7, anchors=("torch",), text="<= 0.7x torch"),
        reference="torch",
        compare=compare_arrays,
    )


# ---------------------------------------------------------------- 3. pooling


def case_pool(ctx: Ctx, op: str, size: int, stride: int) -> Case:
    x = ctx.get("x16", lambda: inputs.array((16, 1024, 1024), seed=3))

    def convcli_() -> Callable[[], Any]:
        pool2d = _convcli_lib("pool2d")
        return lambda: pool2d(x, op=op, size=size, stride=stride)

    def torch_() -> Callable[[], Any]:
        torch = _module("torch")
        fn = getattr(torch.nn.functional, f"{op}_pool2d")
        xt = torch.from_numpy(x)

        def run() -> Any:
            with torch.inference_mode():
                return fn(xt, size, stride)

        return run

    return Case(
        name=f"pool-{op}-{size}s{stride}",
        title=f"{op} pool {size}/{stride} on f32 16x1024x1024",
        contenders=[
            Contender("convcli", _lazy(convcli_), convcli=True),
            Contender("torch", _lazy(torch_)),
        ],
        target=Target(ratio=0.6, anchors=("torch",), text="<= 0.6x torch"),
        reference="torch",
        compare=compare_arrays,
    )


# ---------------------------------------------------------------- 4./5. command lines

# vips and ImageMagick map the signed Sobel response to 8 bits as x/8 + 128 (nothing clips);
# convcli's default --range auto does min-max. Both are affine in the response, so the
# check is a correlation over the interior, not a pixel diff.
VIPS_PRECISION = "float"  # vips's default for conv; the same arithmetic convcli does


def _vips_mask(ctx: Ctx) -> Path:
    return ctx.get(
        "sobel.mat",
        lambda: inputs.write_vips_mask(ctx.tmp / "sobel.mat", inputs.SOBEL_X, 8, 128),
    )


def _im_args() -> list[str]:
    return [
        "-define", "convolve:scale=0.125", "-bias", "50%",
        "-morphology", "Correlate", inputs.im_kernel(inputs.SOBEL_X),
    ]  # fmt: skip


def case_e2e(ctx: Ctx) -> Case:
    src = ctx.get("in2048", lambda: inputs.write_png(ctx.tmp / "e2e" / "in.png", 2048, 2048))
    out = ctx.tmp / "e2e-out"
    out.mkdir(exist_ok=True)
    cmd, env = convcli_command()

    def convcli_() -> Any:
        dst = out / "convcli.png"
        argv = [*cmd, "convolve", str(src), "-k", "sobel-x", "-o", str(dst), "--force", "-q"]
        return checked(run_proc(argv, env=env), "convcli convolve"), dst

    def vips() -> Any:
        exe, dst = _tool("vips", "libvips-tools"), out / "vips.png"
        argv = [
            exe,
            "conv",
            str(src),
            str(dst),
            str(_vips_mask(ctx)),
            "--precision",
            VIPS_PRECISION,
        ]
        return checked(run_proc(argv), "vips conv"), dst

    def magick() -> Any:
        exe, dst = _tool("mogrify", "imagemagick"), out / "im"
        dst.mkdir(exist_ok=True)
        argv = [exe, "-path", str(dst), *_im_args(), str(src)]
        return checked(run_proc(argv), "mogrify"), dst / src.name

    return Case(
        name="e2e-sobel-png",
        title="2048x2048 RGB PNG -> Sobel-x -> PNG, one process (wall)",
        contenders=[
            Contender("convcli", convcli_, convcli=True),
            Contender("vips", vips, note=f"vips conv --precision {VIPS_PRECISION}"),
            Contender("imagemagick", magick, note="mogrify -morphology Correlate"),
        ],
        target=Target(ratio=1.0, anchors=("vips",), text="<= 1.0x vips"),
        compare=sobel_fit(src),
        tolerance=2 / 255,
        slow=float("inf"),
    )


def case_batch(ctx: Ctx, n: int) -> Case:
    src = ctx.tmp / f"batch{n}"

    def make() -> Path:
        for i in range(n):
            inputs.write_png(src / f"img{i:03d}.png", 512, 512, seed=100 + i)
        return src

    ctx.get(f"batch{n}", make)
    first = sorted(src.iterdir())[0]
    outs = {name: ctx.tmp / f"batch-out-{name}" for name in ("convcli", "vips", "im")}
    for d in outs.values():
        d.mkdir(exist_ok=True)
    cmd, env = convcli_command()

    def convcli_() -> Any:
        argv = [*cmd, "convolve", str(src), "-k", "sobel-x", "-o", str(outs["convcli"])]
        argv += ["--workers", "2", "-q", "--force"]
        proc = checked(run_proc(argv, env=env), "convcli convolve (batch)")
        found = sorted(outs["convcli"].rglob(f"{first.stem}*.png"))
        return proc, (found[0] if found else None)

    def vips() -> Any:
        exe = _tool("vips", "libvips-tools")
        dst, mask = shlex.quote(str(outs["vips"])), shlex.quote(str(_vips_mask(ctx)))
        line = (
            f"ls | xargs -P2 -I{{}} {shlex.quote(exe)} conv {{}} {dst}/{{}} {mask}"
            f" --precision {VIPS_PRECISION}"
        )
        proc = checked(run_proc(line, cwd=src, shell=True), "xargs vips conv")
        return proc, outs["vips"] / first.name

    def magick() -> Any:
        exe = _tool("mogrify", "imagemagick")
        args = " ".join(shlex.quote(a) for a in [exe, "-path", str(outs["im"]), *_im_args()])
        proc = checked(run_proc(f"ls | xargs -P2 -n1 {args}", cwd=src, shell=True), "xargs mogrify")
        return proc, outs["im"] / first.name

    return Case(
        name=f"batch-{n}-png",
        title=f"{n} RGB 512x512 PNGs -> Sobel-x -> PNG, 2 workers (wall)",
        contenders=[
            Contender("convcli", convcli_, convcli=True),
            Contender("vips", vips, note="ls | xargs -P2 -I{} vips conv"),
            Contender("imagemagick", magick, note="ls | xargs -P2 -n1 mogrify"),
        ],
        target=Target(ratio=0.35, anchors=("vips",), text="<= 0.35x vips"),
        compare=sobel_fit(first),
        tolerance=2 / 255,
        slow=float("inf"),
        repeats=2 if ctx.quick else 3,
    )


def case_startup(ctx: Ctx) -> Case:
    import sys

    cmd, env = convcli_command()
    base = [sys.executable, "-c", "import click, rich, numpy, PIL.Image"]
    return Case(
        name="startup-help",
        title="`convcli --help` vs python importing click, rich, numpy, PIL.Image",
        contenders=[
            Contender(
                "convcli",
                lambda: checked(run_proc([*cmd, "--help"], env=env), "convcli --help"),
                convcli=True,
            ),
            Contender("py-imports", lambda: checked(run_proc(base), "python -c import")),
        ],
        target=Target(ratio=1.3, anchors=("py-imports",), text="<= 1.3x imports"),
        repeats=7 if ctx.quick else 20,
    )


def case_rss(ctx: Ctx) -> Case:
    src = ctx.get(
        "in8192",
        lambda: inputs.write_png(
            ctx.tmp / "big" / "big.png", 8192, 8192, compress_level=1, tile=2048
        ),
    )
    out = ctx.tmp / "big-out"
    out.mkdir(exist_ok=True)
    cmd, env = convcli_command()
    g = inputs.gaussian(7)

    def convcli_() -> Proc:
        argv = [*cmd, "convolve", str(src), "-k", "gaussian:7", "-o", str(out / "convcli.png")]
        proc = run_proc([*argv, "--force", "-q"], env=env, rss=True)
        return checked(proc, "convcli convolve (8192)")

    def vips() -> Proc:
        exe = _tool("vips", "libvips-tools")
        mask = inputs.write_vips_mask(ctx.tmp / "gauss7.mat", g, 1, 0)
        argv = [exe, "conv", str(src), str(out / "vips.png"), str(mask), "--precision", "float"]
        return checked(run_proc(argv, rss=True), "vips conv (8192)")

    return Case(
        name="rss-8192",
        title="peak RSS, 8192x8192 RGB PNG -> gaussian:7 -> PNG",
        contenders=[
            Contender("convcli", convcli_, convcli=True),
            Contender("vips", vips, note="vips conv, streams; for scale"),
        ],
        target=Target(limit=0.5 * GiB, text="<= 0.5 GiB"),
        metric="rss",
    )


def registry(ctx: Ctx) -> list[tuple[str, Callable[[], Case]]]:
    """Every case by name, built only when run (so --only skips making its inputs)."""
    cases: list[tuple[str, Callable[[], Case]]] = []
    for size in (3, 7, 31):
        for label, make in (("gauss", inputs.gaussian), ("random", inputs.random_kernel)):
            cases.append(
                (
                    f"depthwise-{size}x{size}-{label}",
                    lambda label=label, make=make, size=size: _depthwise(ctx, label, make(size)),
                )
            )
    cases.append(("layer-16x3x3x3", lambda: case_layer(ctx)))
    for op in ("max", "avg"):
        for size, stride in ((2, 2), (3, 2)):
            cases.append(
                (
                    f"pool-{op}-{size}s{stride}",
                    lambda op=op, size=size, stride=stride: case_pool(ctx, op, size, stride),
                )
            )
    n = 40 if ctx.quick else 200
    cases.append(("e2e-sobel-png", lambda: case_e2e(ctx)))
    cases.append((f"batch-{n}-png", lambda: case_batch(ctx, n)))
    cases.append(("startup-help", lambda: case_startup(ctx)))
    cases.append(("rss-8192", lambda: case_rss(ctx)))
    return cases
