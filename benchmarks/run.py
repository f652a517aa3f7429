"""Time convcli against its anchors (OpenCV, PyTorch, SciPy, vips, ImageMagick) in one run.

Usage::

    python -m benchmarks [--quick] [--only PATTERN] [--json FILE]
    python benchmarks/run.py ...

Contenders of a case run interleaved (round-robin, the starting contender rotating),
so machine noise hits all alike; the table shows medians and convcli / anchor ratios.
Only the standard library is imported at module level: ``main`` clears the OpenBLAS
overrides before numpy is loaded (see README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Set on some machines to pin an old OpenBLAS code path; a current numpy picks its own.
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_env() -> dict[str, str]:
    """Drop the OpenBLAS overrides from this process (and so its children). Benchmarks only."""
    return {v: os.environ.pop(v) for v in BLAS_OVERRIDES if v in os.environ}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time convcli and the installed anchors on the same inputs, interleaved.",
    )
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller batch (~3 min)")
    p.add_argument("--only", metavar="PATTERN", help="run cases whose name matches (regex)")
    p.add_argument("--json", metavar="FILE", type=Path, help="save results as JSON")
    p.add_argument("--list", action="store_true", help="list case names and exit")
    p.add_argument(
        "--repeats",
        type=int,
        help="timed rounds per case (default 7, quick 3; batch 3/2, start-up 20/7)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary input folder")
    return p.parse_args(argv)


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "absent"
    return out.strip().splitlines()[0] if out.strip() else "absent"


def machine(removed: dict[str, str]) -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas_overrides_removed": removed,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split()[1]
        info["memory"] = f"{int(mem) / 2**20:.0f} GiB"
    except OSError:
        pass
    for mod in ("cv2", "torch", "scipy"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "absent"
    info["vips"] = _version(["vips", "--version"])
    info["imagemagick"] = _version(["mogrify", "-version"])
    try:
        import convcli

        info["convcli"] = convcli.__version__
    except Exception as exc:  # being written concurrently
        info["convcli"] = f"unimportable ({type(exc).__name__})"
    return info


def table(cases: list[Any], info: dict[str, Any]) -> str:
    from benchmarks.harness import fmt_bytes, fmt_seconds, fmt_value

    lines = [
        f"convcli benchmarks  {info['date']}  {info['cpu']}, {info['cores']} cores, "
        f"python {info['python']}, numpy {info['numpy']}, torch {info.get('torch')}, "
        f"opencv {info.get('cv2')}, scipy {info.get('scipy')}",
        f"vips: {info['vips']}   imagemagick: {info['imagemagick']}",
        "",
        f"{'case':<22} {'contender':<12} {'median':>10} {'n':>3} {'convcli/x':>9}  check / note",
        "-" * 100,
    ]
    for case in cases:
        mine = next((c for c in case.contenders if c.convcli), None)
        for i, c in enumerate(case.contenders):
            ratio = ""
            if case.metric == "time" and not c.convcli and c.median and mine and mine.median:
                ratio = f"{mine.median / c.median:.2f}x"
            wall = f"wall {fmt_seconds(c.median)}" if case.metric == "rss" and c.times else ""
            note = (
                f"skipped: {c.skipped}"
                if c.skipped
                else "  ".join(x for x in (c.check, wall, c.note) if x)
            )
            lines.append(
                f"{case.name if i == 0 else '':<22} {c.name:<12} {fmt_value(c, case.metric):>10} "
                f"{len(c.times) if c.times else '':>3} {ratio:>9}  {note}"
            )
        t = case.target
        if case.metric == "rss":
            got = fmt_bytes(max(mine.rss)) if mine and mine.rss else "-"
            lines.append(f"{'':<22} target peak RSS {t.text}: {got}  {case.status}")
        else:
            got = f"{case.ratio:.2f}x vs {case.ratio_anchor}" if case.ratio is not None else "-"
            lines.append(f"{'':<22} target convcli {t.text}: {got}  {case.status}")
        lines.append("")
    counts: dict[str, int] = {}
    for case in cases:
        key = case.status.split()[0] if case.status else "SKIP"
        counts[key] = counts.get(key, 0) + 1
    lines.append("targets: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    mism = [
        f"{case.name}/{c.name}" for case in cases for c in case.contenders if "MISMATCH" in c.check
    ]
    if mism:
        lines.append("MISMATCH in: " + ", ".join(mism))
    return "\n".join(lines)


def to_json(cases: list[Any], info: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": info,
        "cases": [
            {
                "name": case.name,
                "title": case.title,
                "metric": case.metric,
                "target": {
                    "text": case.target.text,
                    "ratio": case.target.ratio,
                    "anchors": list(case.target.anchors),
                    "limit_bytes": case.target.limit,
                },
                "ratio": case.ratio,
                "ratio_anchor": case.ratio_anchor,
                "status": case.status,
                "contenders": [
                    {
                        "name": c.name,
                        "median_s": c.median,
                        "times_s": c.times,
                        "peak_rss_bytes": max(c.rss) if c.rss else None,
                        "skipped": c.skipped or None,
                        "check": c.check or None,
                        "note": c.note or None,
                    }
                    for c in case.contenders
                ],
            }
            for case in cases
        ],
    }


def main(argv: list[str] | None = None) -> int:
    removed = clean_env()  # must precede the first numpy import
    if str(REPO) not in sys.path[:1]:
        sys.path.insert(0, str(REPO))  # the working tree's convcli and benchmarks
    args = parse_args(argv)

    from benchmarks import cases as cases_mod
    from benchmarks.harness import log, run_case

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="convcli-bench-") as tmp:
        ctx = cases_mod.Ctx(Path(tmp), quick=args.quick)
        todo = cases_mod.registry(ctx)
        if args.only:
            pattern = re.compile(args.only, re.IGNORECASE)
            todo = [(n, b) for n, b in todo if pattern.search(n)]
        if args.list:
            print("\n".join(n for n, _ in todo))
            return 0
        info = machine(removed)
        if removed:
            log(f"unset for this run: {', '.join(f'{k}={v}' for k, v in removed.items())}")
        repeats = args.repeats or (3 if args.quick else 7)
        done = []
        for name, build in todo:
            log(f"[{time.perf_counter() - started:6.1f}s] {name}")
            case = build()
            if args.repeats:  # an explicit count beats the case's own
                case.repeats = args.repeats
            run_case(case, repeats=repeats, slow=2.0, slow_repeats=1 if args.quick else 2)
            done.append(case)
        if args.keep:
            keep = Path(tempfile.mkdtemp(prefix="convcli-bench-kept-"))
            os.rename(tmp, keep / "inputs")
            os.mkdir(tmp)
            log(f"inputs kept in {keep / 'inputs'}")
    info["elapsed_s"] = round(time.perf_counter() - started, 1)
    info["quick"] = args.quick
    print(table(done, info))
    print(f"elapsed {info['elapsed_s']} s")
    if args.json:
        args.json.write_text(json.dumps(to_json(done, info), indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
