"""Timing machinery: contenders, interleaved rounds, subprocess runs with peak RSS.

Nothing here knows about convolution; ``cases.py`` builds the contenders.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Skip(Exception):
    """A contender cannot run on this machine (anchor absent, convcli not ready)."""


@dataclass
class Contender:
    """One way of doing a case's work. ``fn`` returns the output to check (or None)."""

    name: str
    fn: Callable[[], Any]
    convcli: bool = False
    note: str = ""
    convert: Callable[[Any], Any] | None = None  # output -> the reference's form, for the check
    # filled in by the runner
    times: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # peak RSS in bytes, subprocess contenders only
    skipped: str = ""
    check: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


@dataclass
class Target:
    """``convcli / best of anchors <= ratio``, or for metric="rss" ``convcli <= limit bytes``."""

    ratio: float | None = None
    anchors: tuple[str, ...] = ()
    limit: float | None = None
    text: str = ""


@dataclass
class Case:
    name: str
    title: str
    contenders: list[Contender]
    target: Target
    reference: str | None = None  # contender whose output the others are checked against
    compare: Callable[[Any, Any], tuple[float, str]] | None = None  # -> (error, description)
    tolerance: float = 1e-4  # error allowed for convcli against the reference
    metric: str = "time"  # or "rss"
    slow: float | None = None  # override the run-wide "slow contender" threshold (seconds)
    notes: list[str] = field(default_factory=list)
    repeats: int | None = None  # override the run-wide repeat count
    # filled in by the runner
    ratio: float | None = None
    ratio_anchor: str = ""
    status: str = ""


# ---------------------------------------------------------------- subprocesses


@dataclass
class Proc:
    wall: float
    maxrss: int  # bytes
    returncode: int
    stderr: str


def run_proc(
    argv: Sequence[str] | str,
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    shell: bool = False,
    rss: bool = False,
) -> Proc:
    """Run a command, return its wall time, and with ``rss=True`` its peak RSS (else 0)."""
    rss_file = None
    if rss:
        fd, rss_file = tempfile.mkstemp(prefix="convcli-bench-rss-")
        os.close(fd)
        helper = [sys.executable, "-S", str(Path(__file__).with_name("_rss.py")), rss_file]
        argv = [*helper, *(["sh", "-c", argv] if isinstance(argv, str) else argv)]
        shell = False
    t0 = time.perf_counter()
    p = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        shell=shell,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert p.stderr is not None
    err = p.stderr.read()
    p.wait()
    wall = time.perf_counter() - t0
    p.stderr.close()
    maxrss = 0
    if rss_file is not None:
        text = Path(rss_file).read_text().strip()
        os.unlink(rss_file)
        maxrss = int(text) if text else 0
    return Proc(wall, maxrss, p.returncode, err.decode(errors="replace"))


def checked(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:]) or "(no stderr)"
        raise Skip(f"{what} exited {proc.returncode}: {tail[:200]}")
    return proc


def convcli_command() -> tuple[list[str], dict[str, str]]:
    """The convcli CLI to time: the ``convcli`` script of this venv if installed, else -m."""
    env = dict(os.environ)
    script = Path(sys.executable).parent / "convcli"
    found = str(script) if script.exists() else shutil.which("convcli")
    if found:
        return [found], env
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "convcli"], env


# ---------------------------------------------------------------- the runner


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_case(case: Case, *, repeats: int, slow: float, slow_repeats: int) -> None:
    """Warm up every contender, check outputs, then time them in interleaved rounds.

    Round r starts with contender r mod n, so no one always runs first (or right
    after the heaviest one). A contender whose every call so far took longer than
    ``slow`` seconds sits out the rounds after the first ``slow_repeats``.
    """
    outputs: dict[str, Any] = {}
    warm: dict[str, float] = {}
    for c in case.contenders:
        if c.skipped:
            continue
        try:
            t0 = time.perf_counter()
            out = c.fn()
            warm[c.name] = time.perf_counter() - t0
            if isinstance(out, Proc):
                c.rss.append(out.maxrss)
                out = None
            elif isinstance(out, tuple) and out and isinstance(out[0], Proc):
                c.rss.append(out[0].maxrss)
                out = out[1]
            outputs[c.name] = c.convert(out) if c.convert and out is not None else out
        except Skip as exc:
            c.skipped = str(exc)
        except Exception as exc:  # convcli is being written: any failure skips it, not the run
            c.skipped = f"{type(exc).__name__}: {str(exc)[:200]}"
        if c.skipped:
            log(f"    {c.name}: skipped ({c.skipped})")
    _check(case, outputs)
    outputs.clear()

    live = [c for c in case.contenders if not c.skipped]
    n = case.repeats if case.repeats is not None else repeats
    if case.metric == "rss":
        n = 0  # the warm-up run is the measurement
        for c in live:
            c.times.append(warm[c.name])
    for r in range(n):
        order = live[r % len(live) :] + live[: r % len(live)] if live else []
        for c in order:
            fastest = min([warm[c.name], *c.times])  # a first call may pay one-off set-up
            if fastest > (case.slow if case.slow is not None else slow) and r >= slow_repeats:
                continue
            if c.skipped:
                continue
            t0 = time.perf_counter()
            try:
                out = c.fn()
            except Exception as exc:  # failed after a good warm-up: keep what was timed
                c.note = f"failed in round {r + 1}: {type(exc).__name__}: {str(exc)[:160]}"
                c.skipped = c.note if not c.times else ""
                live = [x for x in live if x is not c]
                log(f"    {c.name}: {c.note}")
                continue
            c.times.append(time.perf_counter() - t0)
            if isinstance(out, Proc):
                c.rss.append(out.maxrss)
            elif isinstance(out, tuple) and out and isinstance(out[0], Proc):
                c.rss.append(out[0].maxrss)
            del out
    for c in live:
        if not c.times:  # ran only as warm-up (a metric=rss case)
            c.times.append(warm[c.name])
        wall = f" in {fmt_seconds(c.median)}" if case.metric == "rss" else ""
        log(f"    {c.name:<14} {fmt_value(c, case.metric)}{wall}  n={len(c.times)}")
    _judge(case)


def _check(case: Case, outputs: dict[str, Any]) -> None:
    if case.compare is None:
        return
    if case.reference is None:  # checked against a computed answer, not a contender
        for c in case.contenders:
            if not c.skipped and outputs.get(c.name) is not None:
                _check_one(case, c, outputs[c.name], None, "exact float answer")
        return
    ref = outputs.get(case.reference)
    if ref is None:
        for c in case.contenders:
            if c.name != case.reference and not c.skipped:
                c.check = f"unchecked ({case.reference} absent)"
        return
    for c in case.contenders:
        if c.skipped or c.name == case.reference or outputs.get(c.name) is None:
            continue
        _check_one(case, c, outputs[c.name], ref, case.reference)
    case_ref = next(c for c in case.contenders if c.name == case.reference)
    case_ref.check = "reference"


def _check_one(case: Case, c: Contender, out: Any, ref: Any, ref_name: str) -> None:
    assert case.compare is not None
    try:
        err, desc = case.compare(out, ref)
    except Exception as exc:
        c.check = f"MISMATCH ({type(exc).__name__}: {str(exc)[:120]})"
        return
    bad = err > (case.tolerance if c.convcli else max(case.tolerance, 1e-3))
    c.check = f"{'MISMATCH' if bad else 'ok'} {desc} vs {ref_name}"


def _judge(case: Case) -> None:
    by = {c.name: c for c in case.contenders}
    mine = next((c for c in case.contenders if c.convcli), None)
    t = case.target
    if case.metric == "rss":
        if mine is None or not mine.rss:
            case.status = "SKIP"
            return
        case.status = "PASS" if t.limit is not None and max(mine.rss) <= t.limit else "MISS"
        return
    anchors = [by[a] for a in t.anchors if a in by and by[a].times]
    if not anchors:
        case.status = "SKIP (no anchor)"
        return
    best = min(anchors, key=lambda c: c.median or 0.0)
    case.ratio_anchor = best.name
    if mine is None or not mine.times or best.median is None or mine.median is None:
        case.status = "SKIP (convcli)"
        return
    case.ratio = mine.median / best.median
    case.status = "PASS" if t.ratio is not None and case.ratio <= t.ratio else "MISS"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_bytes(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def fmt_value(c: Contender, metric: str) -> str:
    if c.skipped:
        return "skipped"
    if metric == "rss":
        return fmt_bytes(max(c.rss)) if c.rss else "-"
    return fmt_seconds(c.median)
