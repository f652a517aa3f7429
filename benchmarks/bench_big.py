"""Large images: wall time and peak memory against ``vips conv`` (the cases of issue 14).

Usage::

    python -m benchmarks.bench_big [--only REGEX] [--before DIR] [--repeats N] [--json FILE]

Cases (inputs are generated once into ``--tmp``, default ``$TMPDIR/convcli-bench-big``):

- ``rss-8192``: 8192² RGB PNG → ``gaussian:7`` → PNG; target peak RSS ≤ 0.5 GiB.
- ``png-16384``: 16384² RGB PNG (268 MP) → ``gaussian:7`` → PNG with ``--max-pixels none``;
  targets wall ≤ 1.0× ``vips conv`` with the same 7×7 float mask, peak RSS ≤ 1.5 GiB.
- ``tiff-32768``: 32768² RGB tiled TIFF (3 GiB, uncompressed 256² tiles) → tiled TIFF,
  ``--bit-depth 8``; targets wall ≤ 1.0× vips, peak RSS ≤ 1 GiB. vips writes a tiled
  deflate TIFF of 8-bit samples (``--precision integer`` with the mask scaled to
  integers: a float mask would make it write 12 GiB of float samples).
- ``e2e-2048``: one 2048² RGB PNG → ``gaussian:7`` → PNG; target wall ≤ 0.8× vips
  (median of ``--repeats`` interleaved runs).

Each command runs in its own process, started by ``_rss.py`` (peak RSS by ``os.wait4``).
``--before DIR`` adds a contender running the convcli package found in ``DIR``
(e.g. ``git archive main convcli | tar -x -C DIR``), to measure before and after in
one run. Without ``vips`` (``apt-get install libvips-tools``) its contenders are
skipped and the ratios left blank.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def _gauss_mask(path: Path, *, integer: bool) -> Path:
    from benchmarks import inputs

    g = inputs.gaussian(7).astype(float)
    if integer:
        w = (g * 4096).round()
        rows = [f"7 7 {w.sum():g} 0"] + [" ".join(f"{v:g}" for v in r) for r in w]
        path.write_text("\n".join(rows) + "\n")
        return path
    return inputs.write_vips_mask(path, g, 1, 0)


def _png_input(tmp: Path, size: int) -> Path:
    from benchmarks import inputs

    path = tmp / f"in{size}.png"
    if not path.exists():
        print(f"making {path} ...", file=sys.stderr, flush=True)
        inputs.write_png(path, size, size, compress_level=1, tile=min(size, 2048))
    return path


def _tiff_input(tmp: Path, size: int) -> Path:
    """An RGB tiled TIFF (uncompressed 256² tiles, BigTIFF) repeating a 2048² photo."""
    import numpy as np
    import tifffile

    from benchmarks import inputs

    path = tmp / f"in{size}.tif"
    if path.exists():
        return path
    print(f"making {path} ...", file=sys.stderr, flush=True)
    photo = inputs.photo(2048, 2048)

    def tiles() -> Any:
        for y in range(0, size, 256):
            for x in range(0, size, 256):
                yield photo[y % 2048 : y % 2048 + 256, x % 2048 : x % 2048 + 256]

    part = path.with_suffix(".part")
    with tifffile.TiffWriter(part, bigtiff=True) as tw:
        tw.write(
            tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(256, 256),
            photometric="rgb", metadata=None,
        )  # fmt: skip
    part.rename(path)
    return path


def measure(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stderr tail) of one command, started by _rss.py.

    ``cwd`` should not be the repository: ``python -m convcli`` would import the
    package found there ahead of ``PYTHONPATH`` (the "before" tree).
    """
    with tempfile.NamedTemporaryFile(suffix=".rss") as f:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "_rss.py"), f.name, *argv],
            capture_output=True, text=True, env=env, cwd=cwd,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        rss = int(Path(f.name).read_text() or 0)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return wall, rss, proc.stderr.strip()[-200:]


def _convcli(before: Path | None) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if before is not None:
        env["PYTHONPATH"] = str(before)
    _compile(before / "convcli" if before is not None else None)
    return [sys.executable, "-m", "convcli"], env


def _knows(tree: Path, option: str) -> bool:
    """Whether the convcli package in ``tree`` declares ``option``."""
    return any(
        f'"{option}"' in p.read_text(encoding="utf-8") for p in (tree / "convcli").rglob("*.py")
    )


def _compile(package: Path | None) -> None:
    """Byte-compile the package measured, as ``pip install`` does: with
    ``PYTHONDONTWRITEBYTECODE`` set (or a source tree never run), every start would
    otherwise compile it from source, about 0.1 s that no installed copy pays."""
    import compileall

    if package is None:
        import convcli

        package = Path(convcli.__file__).parent
    compileall.compile_dir(str(package), quiet=1)


def cases(tmp: Path) -> dict[str, dict[str, Any]]:
    """name -> {input, convcli args, vips args, targets}, built lazily."""
    return {
        "rss-8192": {
            "title": "8192² RGB PNG -> gaussian:7 -> PNG",
            "input": lambda: _png_input(tmp, 8192),
            "convcli": lambda src, dst: ["convolve", str(src), "-k", "gaussian:7", "-o",
                                         str(dst / "convcli.png"), "--force", "-q"],
            "vips": lambda src, dst: ["conv", str(src), str(dst / "vips.png"),
                                      str(_gauss_mask(tmp / "g7.mat", integer=False)),
                                      "--precision", "float"],
            "rss": 0.5 * GiB,
        },
        "png-16384": {
            "title": "16384² RGB PNG -> gaussian:7 -> PNG, --max-pixels none",
            "input": lambda: _png_input(tmp, 16384),
            "convcli": lambda src, dst: ["convolve", str(src), "-k", "gaussian:7", "-o",
                                         str(dst / "convcli.png"), "--force", "-q",
                                         "--max-pixels", "none"],
            "vips": lambda src, dst: ["conv", str(src), str(dst / "vips.png"),
                                      str(_gauss_mask(tmp / "g7.mat", integer=False)),
                                      "--precision", "float"],
            "ratio": 1.0, "rss": 1.5 * GiB,
        },
        "tiff-32768": {
            "title": "32768² RGB tiled TIFF (3 GiB) -> gaussian:7 -> tiled TIFF, 8-bit",
            "input": lambda: _tiff_input(tmp, 32768),
            "convcli": lambda src, dst: ["convolve", str(src), "-k", "gaussian:7", "-o",
                                         str(dst / "convcli.tif"), "--bit-depth", "8",
                                         "--force", "-q", "--max-pixels", "none"],
            "vips": lambda src, dst: ["conv", str(src),
                                      str(dst / "vips.tif") + "[tile,bigtiff,compression=deflate]",
                                      str(_gauss_mask(tmp / "g7i.mat", integer=True)),
                                      "--precision", "integer"],
            "ratio": 1.0, "rss": 1 * GiB,
        },
        "e2e-2048": {
            "title": "one 2048² RGB PNG -> gaussian:7 -> PNG, end to end",
            "input": lambda: _png_input(tmp, 2048),
            "convcli": lambda src, dst: ["convolve", str(src), "-k", "gaussian:7", "-o",
                                         str(dst / "convcli.png"), "--force", "-q"],
            "vips": lambda src, dst: ["conv", str(src), str(dst / "vips.png"),
                                      str(_gauss_mask(tmp / "g7.mat", integer=False)),
                                      "--precision", "float"],
            "ratio": 0.8,
        },
    }  # fmt: skip


def run_case(name: str, case: dict[str, Any], tmp: Path, args: argparse.Namespace) -> dict:
    src = case["input"]()
    dst = tmp / f"out-{name}"
    dst.mkdir(exist_ok=True)
    contenders: list[tuple[str, list[str], dict[str, str] | None]] = []
    if args.before is not None:
        cmd, env = _convcli(args.before)
        old = case["convcli"](src, dst)
        if "--max-pixels" in old and not _knows(args.before, "--max-pixels"):
            # a tree from before tiled runs: it refuses what is over the limit
            i = old.index("--max-pixels")
            old = old[:i] + old[i + 2 :]
        contenders.append(("convcli-before", [*cmd, *old], env))
    cmd, env = _convcli(None)
    contenders.append(("convcli", [*cmd, *case["convcli"](src, dst)], env))
    vips = shutil.which("vips")
    if vips:
        contenders.append(("vips", [vips, *case["vips"](src, dst)], None))
    if args.contenders:
        wanted = set(args.contenders.split(","))
        contenders = [c for c in contenders if c[0] in wanted]
    repeats = args.repeats if name == "e2e-2048" else 1
    results: dict[str, dict[str, Any]] = {
        c[0]: {"wall": [], "rss": [], "error": ""} for c in contenders
    }
    for r in range(repeats):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for label, argv, env in order:
            if results[label]["error"]:
                continue
            try:
                wall, rss, _ = measure(argv, env, cwd=tmp)
            except RuntimeError as exc:
                results[label]["error"] = str(exc)
                continue
            results[label]["wall"].append(wall)
            results[label]["rss"].append(rss)
            print(f"  {name} {label}: {wall:.2f} s, {rss / 2**20:.0f} MiB", file=sys.stderr)
    return {"name": name, "title": case["title"], "results": results,
            "ratio": case.get("ratio"), "rss": case.get("rss"), "vips": bool(vips)}  # fmt: skip


def _row(res: dict) -> list[str]:
    lines = []
    vips = res["results"].get("vips", {})
    v_wall = statistics.median(vips["wall"]) if vips.get("wall") else None
    for label, r in res["results"].items():
        if r["error"]:
            lines.append(f"| {res['name']} | {label} | failed: {r['error'][:80]} | | | |")
            continue
        wall = statistics.median(r["wall"])
        rss = max(r["rss"])
        ratio = f"{wall / v_wall:.2f}×" if v_wall and label != "vips" else ""
        verdict = []
        if label == "convcli" and res["ratio"] and v_wall:
            verdict.append("PASS" if wall <= res["ratio"] * v_wall else "MISS")
        if label == "convcli" and res["rss"]:
            verdict.append("PASS" if rss <= res["rss"] else "MISS")
        n = len(r["wall"])
        lines.append(
            f"| {res['name']} | {label} | {wall:.2f} s{f' (n={n})' if n > 1 else ''} |"
            f" {rss / 2**20:.0f} MiB | {ratio} | {' '.join(verdict)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_big", description=__doc__)
    p.add_argument("--only", help="cases whose name matches this regex")
    p.add_argument("--before", type=Path, help="a folder holding the convcli package to compare")
    p.add_argument("--repeats", type=int, default=5, help="rounds of the 2048² case (default 5)")
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()) / "convcli-bench-big")
    p.add_argument("--json", type=Path, help="save the results as JSON")
    p.add_argument(
        "--contenders", help="run only these, comma-separated (convcli-before, convcli, vips)"
    )
    args = p.parse_args(argv)
    args.tmp.mkdir(parents=True, exist_ok=True)
    if not shutil.which("vips"):
        print("vips not found (apt-get install libvips-tools): its contenders are skipped",
              file=sys.stderr)  # fmt: skip
    sys.path.insert(0, str(REPO))
    table = [
        "| case | contender | wall | peak RSS | / vips | target |",
        "|---|---|---|---|---|---|",
    ]
    out = []
    for name, case in cases(args.tmp).items():
        if args.only and not re.search(args.only, name):
            continue
        res = run_case(name, case, args.tmp, args)
        out.append(res)
        table += _row(res)
    print("\n".join(table))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
