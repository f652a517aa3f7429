"""Nothing lost, ever: the data-loss and fault paths, each through the real command line.

Every test runs ``python -m convcli`` (and, for Dask, ``dask scheduler`` /
``dask worker`` processes on 127.0.0.1) in a temporary folder and checks the
exit code, the one line on stderr and the files; what must not change is
compared byte for byte. The numbered sections follow issue 16.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from corpus import leftovers, snapshot
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": "", "PYTHONPATH": str(REPO)}
POSIX = os.name == "posix"
LINUX = sys.platform.startswith("linux")
TOO_LONG = re.escape("is longer than file systems allow (255 bytes)")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **ENV, **extra}


def _umask() -> None:
    os.umask(0o022)


def convcli(*args: Any, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess (umask 022), text output."""
    return subprocess.run(
        [sys.executable, "-m", "convcli", *(str(a) for a in args)], cwd=cwd, env=_env(),
        capture_output=True, text=True, timeout=timeout, preexec_fn=_umask if POSIX else None,
    )  # fmt: skip


def start(*args: Any, cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    """The real command line, running in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "convcli", *(str(a) for a in args)], cwd=cwd, env=_env(),
        text=True, **popen,
    )  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), stderr
    return lines


def one_error(stderr: str, pattern: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert re.match("error: " + pattern, lines[0]), (pattern, lines[0])
    return lines[0]


def png(path: Path, value: int | None = None, size: int = 16, seed: int = 0) -> Path:
    """An RGB PNG: every pixel ``value``, or random pixels from ``seed``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if value is None:
        pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    else:
        pixels = np.full((size, size, 3), value, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["input"]: r for r in map(json.loads, path.read_text().splitlines())}


def pixel(path: Path) -> int:
    with Image.open(path) as im:
        return int(np.asarray(im)[0, 0, 0])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- 1. the manifest


def test_a_manifest_never_replaces_a_photo_an_output_or_an_input(tmp_path: Path) -> None:
    for i in range(3):
        png(tmp_path / "photos" / f"img{i:04d}.png", seed=i)
    photos = snapshot(tmp_path / "photos")
    # `--manifest photos/*.png`: the shell made the first photo the manifest's name
    for extra in ((), ("--force",)):
        proc = convcli("convolve", "-k", "box", "-o", "out", *extra, "--manifest",
                       "photos/img0000.png", "photos/img0001.png", "photos/img0002.png",
                       cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 2
        one_error(proc.stderr, re.escape("--manifest photos/img0000.png: names an image"))
        assert snapshot(tmp_path / "photos") == photos and not (tmp_path / "out").exists()
    done = convcli("convolve", "photos", "-k", "box", "-o", "out", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    outputs = snapshot(tmp_path / "out")
    proc = convcli("convolve", "photos", "-k", "box", "-o", "again", "--force",
                   "--manifest", "out/img0002.box.png", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    one_error(proc.stderr, re.escape("--manifest out/img0002.box.png: names an image"))
    assert snapshot(tmp_path / "out") == outputs and not (tmp_path / "again").exists()
    # an input named directly, whatever its extension, is never the manifest
    (tmp_path / "scan.dat").write_bytes((tmp_path / "photos" / "img0000.png").read_bytes())
    (tmp_path / "sub").mkdir()
    proc = convcli("convolve", "scan.dat", "photos/img0001.png", "-k", "box", "-o", "o3",
                   "--force", "--manifest", "sub/../scan.dat", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    one_error(proc.stderr, re.escape("--manifest sub/../scan.dat: is an input"))
    assert (tmp_path / "scan.dat").read_bytes() == (tmp_path / "photos/img0000.png").read_bytes()
    assert not (tmp_path / "o3").exists()


def test_an_existing_manifest_needs_force_and_a_resume_keeps_its_records(tmp_path: Path) -> None:
    for i in range(3):
        png(tmp_path / "in" / f"img{i}.png", seed=i)
    first = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "--manifest", "m.jsonl",
                    cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    manifest = tmp_path / "m.jsonl"
    assert mode(manifest) == mode(tmp_path / "out" / "img0.box.png") == 0o644  # item 11
    old = records(manifest)
    text = manifest.read_text()
    proc = convcli("convolve", "in", "-k", "box", "-o", "other", "--manifest", "m.jsonl",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    one_error(proc.stderr, re.escape("--manifest m.jsonl: exists (use --force to replace it,"))
    assert manifest.read_text() == text and not (tmp_path / "other").exists()
    # resume: the input redone gets a new record, the skipped ones keep their earlier one
    (tmp_path / "out" / "img1.box.png").unlink()
    proc = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "--skip-existing",
                   "--manifest", "m.jsonl", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    now = records(manifest)
    assert list(now) == ["in/img0.png", "in/img1.png", "in/img2.png"]
    assert now["in/img0.png"] == old["in/img0.png"] and now["in/img2.png"] == old["in/img2.png"]
    assert now["in/img1.png"]["status"] == "done"
    assert now["in/img1.png"]["maps"] == old["in/img1.png"]["maps"]  # the same result again
    assert (tmp_path / "out" / "img1.box.png").is_file() and mode(manifest) == 0o644
    (tmp_path / "notes.jsonl").write_text("my notes\n")
    proc = convcli("convolve", "in", "-k", "box", "-o", "out", "--skip-existing",
                   "--manifest", "notes.jsonl", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2
    one_error(proc.stderr, re.escape("--manifest notes.jsonl: exists and is not a convcli"))
    assert (tmp_path / "notes.jsonl").read_text() == "my notes\n"
    proc = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "--force",
                   "--manifest", "m.jsonl", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and len(records(manifest)) == 3


# --------------------------------------------------------------------------- 2. final names


def test_stems_that_clash_once_cleaned_stop_the_run_before_any_work(tmp_path: Path) -> None:
    for i, name in enumerate(("a:b.png", "a_b.png", "a?b.png")):
        png(tmp_path / "in" / name, value=50 * (i + 1))
    before = snapshot(tmp_path / "in")
    for extra in ((), ("--force",), ("--skip-existing",)):
        proc = convcli("convolve", "in", "-k", "identity", "-o", "out", "--manifest", "m.jsonl",
                       *extra, cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 2, (extra, proc.stderr)
        one_error(
            proc.stderr,
            re.escape("in/a:b.png and in/a?b.png would write the same files (out/a_b.*);"),
        )
        assert not (tmp_path / "out").exists() and not (tmp_path / "m.jsonl").exists()
    assert snapshot(tmp_path / "in") == before


# --------------------------------------------------------------------------- 3. concurrent runs


def test_two_runs_at_once_never_both_own_an_output(tmp_path: Path) -> None:
    """Same output names, different kernels: every file holds the result of the run that
    reported it done, and no input is reported done by both runs."""
    n = 24  # noisy 384² pictures: encoding takes long enough for the two runs to overlap
    for i in range(n):
        png(tmp_path / "in" / f"im{i:02d}.png", size=384, seed=i)
    for run, weight in (("A", "1"), ("B", "0.5")):  # both kernels are called k
        (tmp_path / run).mkdir()
        (tmp_path / run / "k.yaml").write_text(f"name: k\nweights: [[{weight}]]\n")
    for trial in range(3):
        out = tmp_path / f"out{trial}"
        procs = {
            run: start("convolve", "in", "-k", f"{run}/k.yaml", "-o", out, "-j", "1", "-q",
                       "--range", "clip",
                       "--manifest", f"{run}{trial}.jsonl", cwd=tmp_path,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for run in "AB"
        }  # fmt: skip
        errors = {run: p.communicate(timeout=120)[1] for run, p in procs.items()}
        done = {
            run: {k for k, r in records(tmp_path / f"{run}{trial}.jsonl").items()
                  if r["status"] == "done"}
            for run in "AB"
        }  # fmt: skip
        assert not done["A"] & done["B"], sorted(done["A"] & done["B"])
        assert len(done["A"] | done["B"]) == n
        for run in "AB":
            for name in done[run]:
                with Image.open(tmp_path / name) as im:
                    source = np.asarray(im).astype(int)
                with Image.open(out / f"{Path(name).stem}.k.png") as im:
                    result = np.asarray(im).astype(int)
                if run == "A":  # the identity
                    assert np.array_equal(result, source), (trial, name)
                else:  # halved
                    assert np.abs(result - source / 2).max() <= 1, (trial, name)
            for line in error_lines(errors[run]):
                assert "exists (use --force" in line, line
        assert len(snapshot(out)) == n and leftovers(out) == []


# --------------------------------------------------------------------------- 4, 5. Dask

KILLER = '''
import os

from distributed import WorkerPlugin

MARK = os.environ["CONVCLI_TEST_KILL_MARK"]


class KillAfterFirstTask(WorkerPlugin):
    """Kill this worker right after its first task ends, before the scheduler hears of it."""

    def transition(self, key, start, finish, **kwargs):
        if start == "executing" and finish == "memory":
            try:
                os.close(os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # one kill per test
            os._exit(1)


async def dask_setup(worker):
    await worker.plugin_add(KillAfterFirstTask(), name="kill-after-first-task")
'''


def _stop(proc: subprocess.Popen[Any]) -> None:
    """End a process group this test started (a dask CLI and its nanny's workers)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def dask_cluster(
    tmp_path: Path, *, workers: int = 2, preload: Path | None = None, **env: str
) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1: (address, scheduler)."""
    pytest.importorskip("distributed")
    from distributed import Client

    info = tmp_path / "scheduler.json"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                             "start_new_session": True, "cwd": tmp_path}  # fmt: skip
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
        env=_env(**env), **quiet,
    )  # fmt: skip
    procs = [sched]
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.read_text().strip()):
            assert time.monotonic() < deadline and sched.poll() is None, "no scheduler"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
             "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard",
             "--death-timeout", "20", *(["--preload", str(preload)] if preload else [])],
            env=_env(CONVCLI_THREADS="1", **env), **quiet,
        ))  # fmt: skip
        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address, sched
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.mark.dask
def test_a_dask_task_run_again_after_its_worker_died_knows_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "killer.py").write_text(KILLER)
    mark = tmp_path / "killed"
    for i in range(6):
        png(tmp_path / "in" / f"im{i}.png", value=40 * i)
    with dask_cluster(tmp_path, preload=tmp_path / "killer.py",
                      CONVCLI_TEST_KILL_MARK=str(mark)) as (address, _):  # fmt: skip
        proc = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "--manifest", "m.jsonl",
                       "--executor", "dask", "--scheduler", address, cwd=tmp_path)  # fmt: skip
    assert mark.exists()  # a worker died right after its task had written its file
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert {r["status"] for r in records(tmp_path / "m.jsonl").values()} == {"done"}
    for i in range(6):
        assert pixel(tmp_path / "out" / f"im{i}.box.png") == 40 * i
    assert leftovers(tmp_path / "out") == []


@pytest.mark.dask
def test_a_lost_scheduler_is_one_line_a_manifest_and_a_resume(tmp_path: Path) -> None:
    n = 16
    for i in range(n):
        png(tmp_path / "in" / f"im{i:02d}.png", size=192, seed=i)
    # a slow 4-D layer (about 0.15 s an image), so the scheduler dies mid-run
    weights = (np.ones((1, 3, 31, 31)) / (3 * 31 * 31)).tolist()
    (tmp_path / "slow.yaml").write_text(json.dumps({"name": "slow", "weights": weights}))
    with dask_cluster(tmp_path) as (address, sched):
        proc = start("convolve", "in", "-k", "slow.yaml", "-o", "out", "--manifest", "m.jsonl",
                     "--executor", "dask", "--scheduler", address, cwd=tmp_path,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if sum(x.startswith("[") for x in seen) >= 5:
                break
        os.killpg(sched.pid, signal.SIGKILL)
        killed = time.time()
        try:
            rest = proc.communicate(timeout=90)[1]
        finally:
            proc.kill()
            proc.wait()
    lines = (*seen, *rest.splitlines())
    errors = [line for line in lines if not line.startswith("[")]
    assert len(errors) == 1, rest
    m = re.fullmatch(rf"error: lost the Dask scheduler at {re.escape(address)} after (\d+) of 16"
                     r" inputs\n?", errors[0])  # fmt: skip
    assert m, errors[0]
    assert proc.returncode == 1
    recs = records(tmp_path / "m.jsonl")
    assert len(recs) == n
    done = {k for k, r in recs.items() if r["status"] == "done"}
    assert len(done) == int(m.group(1)) >= 5
    for name, rec in recs.items():
        out = tmp_path / "out" / f"{Path(name).stem}.slow.0.png"  # a layer: one file a map
        if rec["status"] == "done":
            assert rec["outputs"] == [f"out/{out.name}"]
            with Image.open(out) as im:
                im.load()  # complete
        else:
            assert rec["error"] == f"{name}: not run: lost the Dask scheduler"
            # whatever was complete when the scheduler died is marked done
            assert not out.exists() or out.stat().st_mtime > killed - 0.05, name
    again = convcli("convolve", "in", "-k", "slow.yaml", "-o", "out", "-q", "--skip-existing",
                    "--manifest", "m.jsonl", "-j", "1", cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0 and again.stderr == "", again.stderr
    final = records(tmp_path / "m.jsonl")
    assert {r["status"] for r in final.values()} <= {"done", "skipped"}
    assert {k for k, r in final.items() if r["status"] == "done"} >= done
    assert len(snapshot(tmp_path / "out")) == n and leftovers(tmp_path / "out") == []


# --------------------------------------------------------------------------- 6. long names


@pytest.mark.parametrize("where", ["-k", "-o", "--manifest", "pipeline kernel", "input", "output"])
def test_a_name_over_255_bytes_is_one_line_and_exit_2(where: str, tmp_path: Path) -> None:
    long = "n" * 300
    png(tmp_path / "in.png")
    (tmp_path / "p.yaml").write_text(f"stages:\n  - conv: {{kernel: {long}.yaml}}\n")
    png(tmp_path / "in" / ("s" * 246 + ".png"))  # a legal name whose output is not
    args = {
        "-k": ("convolve", "in.png", "-k", f"{long}.yaml", "-o", "out"),
        "-o": ("convolve", "in.png", "-k", "box", "-o", f"out/{long}/x"),
        "--manifest": ("convolve", "in.png", "-k", "box", "-o", "out", "--manifest",
                       f"{long}.jsonl"),
        "pipeline kernel": ("run", "p.yaml", "in.png", "-o", "out"),
        "input": ("convolve", f"{long}.png", "-k", "box", "-o", "out"),
        "output": ("convolve", "in", "-k", "sobel", "-o", "out"),
    }[where]  # fmt: skip
    before = snapshot(tmp_path)
    proc = convcli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_error(proc.stderr, ".*" + TOO_LONG)
    assert re.search(r"[ns]…\S* \(\d+ bytes\)", line), line  # the long name is shortened
    assert snapshot(tmp_path) == before


def test_legal_names_up_to_255_bytes_work(tmp_path: Path) -> None:
    stem = "é" * 123  # 246 bytes: the output name stem.box.png is 254 bytes
    png(tmp_path / "in" / f"{stem}.png", value=77)
    proc = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "-j", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / f"{stem}.box.png"
    assert len(os.fsencode(out.name)) == 254 and pixel(out) == 77
    assert leftovers(tmp_path / "out") == []


# --------------------------------------------------------------------------- 7. kill -9


def _family(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_kill_9_of_the_main_process_ends_its_workers(tmp_path: Path) -> None:
    for i in range(60):
        png(tmp_path / "in" / f"im{i:02d}.png", size=256, seed=i)
    proc = start("convolve", "in", "-k", "gaussian:31", "--montage", "-o", "out", "-j", "2",
                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    family: set[int] = set()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the workers are at work
            if line.startswith("["):
                break
        family = _family(proc.pid)
        assert len(family) >= 3, family  # fork server, resource tracker, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in family if _alive(p)]
        assert leftovers(tmp_path / "out") == []  # the workers removed their temporary files
    finally:
        for p in family:  # on failure: what this test started must not outlive it
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# --------------------------------------------------------------------------- 8. stale temps


def test_stale_temporary_files_of_dead_processes_are_swept(tmp_path: Path) -> None:
    from convcli.imageio.atomic import MACHINE

    png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(gone.stdout)
    hours_ago = time.time() - 7200
    files = {
        "dead": (out / f".convcli-{MACHINE}-{dead:07d}-0badf00d.tmp", None),
        "alive": (out / f".convcli-{MACHINE}-{os.getpid():07d}-00c0ffee.tmp", None),
        "elsewhere, new": (out / ".convcli-00000000-0000042-12345678.tmp", None),
        "elsewhere, old": (out / ".convcli-00000001-0000042-12345678.tmp", hours_ago),
        "earlier version, old": (out / ".a.box.png.89abcdef.tmp", hours_ago),
        "earlier version, new": (out / ".b.box.png.89abcdef.tmp", None),
        "not ours": (out / ".notes.tmp", hours_ago),
        "not this run's folder": (out / "sub" / f".convcli-{MACHINE}-{dead:07d}-0badf00d.tmp",
                                  None),
    }  # fmt: skip
    for path, mtime in files.values():
        path.write_bytes(b"half an image")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
    proc = convcli("convolve", "in", "-k", "box", "-o", "out", "-q", "--skip-existing",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    left = {what for what, (path, _) in files.items() if path.exists()}
    assert left == {"alive", "elsewhere, new", "earlier version, new", "not ours",
                    "not this run's folder"}  # fmt: skip
    assert (out / "a.box.png").is_file()


# --------------------------------------------------------------------------- 9. outputs as inputs


def test_an_output_folder_inside_a_recursive_input_is_never_read_back(tmp_path: Path) -> None:
    png(tmp_path / "photos" / "img.png", seed=1)
    png(tmp_path / "photos" / "sub" / "b.png", seed=2)
    args = ("convolve", "photos", "-r", "-k", "box", "-o", "photos/out", "-q", "--skip-existing",
            "--manifest", "photos/m.jsonl")  # fmt: skip
    for _ in range(3):
        proc = convcli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        recs = records(tmp_path / "photos" / "m.jsonl")  # later runs keep the first records
        assert sorted(recs) == ["photos/img.png", "photos/sub/b.png"]
        assert [r["status"] for r in recs.values()] == ["done", "done"]
    assert sorted(snapshot(tmp_path / "photos" / "out")) == ["img.box.png", "sub/b.box.png"]


# --------------------------------------------------------------------------- 10. control chars


@pytest.mark.skipif(not POSIX, reason="file names with control characters")
def test_control_characters_in_names_never_reach_the_terminal(tmp_path: Path) -> None:
    evil = "bad\x1b]0;TITLE\x07\nname.png"
    shown = r"bad\x1b]0;TITLE\x07\nname.png"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / evil).write_bytes(b"not an image at all")
    png(tmp_path / "in" / "good.png")
    proc = subprocess.run(
        [sys.executable, "-m", "convcli", "convolve", "in", "-k", "box", "-o", "out", "-j", "1"],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    for stream in (proc.stdout, proc.stderr):
        assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", stream), stream
    err = proc.stderr.decode().splitlines()
    assert err == [
        f"error: in/{shown}: not an image Pillow can read (cannot identify image file)",
        f"[1/2] in/{shown} failed " + err[1].rsplit(" ", 2)[1] + " s",
        "[2/2] in/good.png done " + err[2].rsplit(" ", 2)[1] + " s",
    ]
    # one input: the report names it with escapes; --json keeps the exact name
    named = "ok\x1b[31mred\x9b2J\u202e.png"
    png(tmp_path / named)
    proc = subprocess.run(
        [sys.executable, "-m", "convcli", "convolve", named, "-k", "box", "-o", "o2"],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.startswith(r"ok\x1b[31mred\x9b2J\u202e.png: 3×16×16 RGB"), text[:80]
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", text)
    proc = subprocess.run(
        [sys.executable, "-m", "convcli", "convolve", named, "-k", "box", "-o", "o3", "--json"],
        cwd=tmp_path, env=_env(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", text)
    assert json.loads(text)["input"] == named


# --------------------------------------------------------------------------- 11. bank names


def test_bank_member_names_that_share_a_file_name_are_caught_before_any_image(
    tmp_path: Path,
) -> None:
    (tmp_path / "bank.yaml").write_text(
        "kernels:\n  - name: a/b\n    weights: [[1]]\n  - name: 'a:b'\n    weights: [[2]]\n"
    )
    lint = convcli("kernels", "validate", "bank.yaml", cwd=tmp_path)
    assert "bank.yaml:4: warning: kernels[1] name 'a:b' gives the same file name as 'a/b'" in (
        lint.stdout
    ), lint.stdout
    assert convcli("kernels", "validate", "--strict", "bank.yaml", cwd=tmp_path).returncode == 2
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    proc = convcli("convolve", "broken.png", "-k", "bank.yaml", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2  # stopped on the names, before reading the (broken) image
    one_error(proc.stderr, re.escape("broken.png: two outputs would have the same file name"
                                     " broken.bank.a_b.png"))  # fmt: skip
    assert not (tmp_path / "out").exists()
    # one file for the whole bank: the names are only labels, nothing clashes
    png(tmp_path / "ok.png", value=10)
    proc = convcli("convolve", "ok.png", "-k", "bank.yaml", "-o", "out", "--format", "npz",
                   "-q", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out" / "ok.bank.npz") as z:
        assert list(z["labels"]) == ["a_b.R", "a_b.G", "a_b.B", "a_b.R", "a_b.G", "a_b.B"]


# --------------------------------------------------------------------------- 12. size limits


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-k", "box", "--padding", "10000"),
         r"stage 1 \(conv box\): the padded input would be 3×20016×20016 = 1\.2 G values"),
        (("-k", "box", "--dilation", "3000", "--padding", "full"),
         r"stage 1 \(conv box\): the padded input would be 3×12016×12016 = 433 M values"),
        (("-k", "box", "--padding", "300", "--max-output-pixels", "1_000_000"),
         r"stage 1 \(conv box\): the padded input would be 3×616×616 = 1\.14 M values,"
         r" over the limit of 1 M"),
    ],
    ids=["padding-10000", "dilation-3000-full", "explicit-limit"],
)  # fmt: skip
def test_sizes_over_the_limit_are_refused_before_computing(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    png(tmp_path / "in.png")
    proc = convcli("convolve", "in.png", *args, "-o", "out", "--manifest", "m.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    one_error(proc.stderr, "in.png: " + message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.jsonl").exists()


def test_a_huge_montage_is_refused_and_the_limit_can_be_lifted(tmp_path: Path) -> None:
    weights = np.ones((4000, 3, 1, 1)).tolist()
    (tmp_path / "wide.yaml").write_text(json.dumps({"name": "wide", "weights": weights}))
    png(tmp_path / "in" / "a.png", size=256, seed=1)
    png(tmp_path / "in" / "b.png", size=256, seed=2)
    proc = convcli("convolve", "in", "-k", "wide.yaml", "--montage", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2  # the first input decides before any work
    one_error(proc.stderr, re.escape("in/a.png: the montage of 4000 maps would be 17392×16644"
                                     " = 289 M values, over the limit of 268 M"))  # fmt: skip
    assert not (tmp_path / "out").exists()
    small = convcli("convolve", "in/a.png", "-k", "box", "--padding", "300", "-o", "ok", "-q",
                    "--max-output-pixels", "none", cwd=tmp_path)  # fmt: skip
    assert small.returncode == 0, small.stderr
    bad = convcli("convolve", "in/a.png", "-k", "box", "--max-output-pixels", "lots", cwd=tmp_path)
    assert bad.returncode == 2
    one_error(bad.stderr, re.escape("--max-output-pixels must be a whole number >= 1"))
