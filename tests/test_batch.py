"""Batch runs: finding inputs, mirroring the tree, workers, manifest, resume, progress, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.cli.progress import BatchProgress
from convcli.errors import ParameterError
from convcli.run.batch import find_inputs, make_jobs, run_batch
from convcli.run.jobs import Job, Outcome

runner = CliRunner()


def _image(path: Path, size: int = 24, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode).save(path)
    return path


def _tree(root: Path) -> Path:
    """root/in: a.png, b.jpg, sub/c.png, sub/deeper/d.png, plus things to skip."""
    src = root / "in"
    _image(src / "a.png", seed=1)
    _image(src / "b.jpg", seed=2)
    _image(src / "sub" / "c.png", seed=3)
    _image(src / "sub" / "deeper" / "d.png", seed=4, mode="L")
    _image(src / ".hidden.png", seed=5)
    _image(src / ".cache" / "e.png", seed=6)
    (src / "notes.txt").write_text("not an image")
    return src


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _manifest(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {Path(rec["input"]).name: rec for rec in lines}


def _run(*args: str | Path):  # noqa: ANN202
    return runner.invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- finding inputs


def test_recursive_mirrors_tree_and_skips_hidden(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out"
    res = _run("convolve", src, "-r", "-k", "box", "-o", out, "-q", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert _files(out) == [
        "a.box.png",
        "b.box.png",
        "sub/c.box.png",
        "sub/deeper/d.box.png",
    ]


def test_not_recursive_takes_top_folder_only(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out"
    res = _run("convolve", src, "-k", "box", "-o", out, "-q", "--workers", "1")
    assert res.exit_code == 0, res.output
    assert _files(out) == ["a.box.png", "b.box.png"]


def test_folders_and_files_mixed(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    extra = _image(tmp_path / "elsewhere" / "x.png", seed=9)
    out = tmp_path / "out"
    res = _run("convolve", src / "sub", extra, "-k", "box", "-o", out, "-q", "-j", "1")
    assert res.exit_code == 0, res.output
    assert _files(out) == ["c.box.png", "x.box.png"]


def test_include_exclude(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out"
    res = _run(
        "convolve", src, "-r", "--include", "*.png", "--exclude", "sub/deeper/*",
        "-k", "box", "-o", out, "-q", "-j", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert _files(out) == ["a.box.png", "sub/c.box.png"]
    found = find_inputs([str(src)], recursive=True, include=["sub/*"], exclude=["*.jpg"])
    assert sorted(Path(p).name for p, _ in found) == ["c.png", "d.png"]


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    os.symlink(src, src / "sub" / "loop")  # back to an ancestor
    os.symlink("self", src / "self")  # a link to itself
    code = (
        "import sys; from convcli.run.batch import find_inputs; "
        "print(len(find_inputs([sys.argv[1]], recursive=True)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(src)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4"


def test_same_file_twice_runs_once_and_stem_clash_is_usage_error(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    found = find_inputs([str(src), str(src / "a.png")])
    assert [Path(p).name for p, _ in found] == ["a.png", "b.jpg"]
    _image(src / "a.jpg", seed=7)
    with pytest.raises(ParameterError, match="same files"):
        make_jobs(find_inputs([str(src)]), str(tmp_path / "out"))
    res = _run("convolve", src, "-k", "box", "-o", tmp_path / "out", "-q")
    assert isinstance(res.exception, ParameterError)  # main() makes it exit 2
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- workers, failures


def test_two_workers_write_the_same_bytes_as_one(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(6):
        _image(src / f"img{i}.png", size=40, seed=i)
    outs = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        man = tmp_path / f"m{n}.jsonl"
        res = _run("convolve", src, "-k", "sobel", "-o", out, "-q", "-j", n, "--manifest", man)
        assert res.exit_code == 0, res.output
        outs[n] = {f: (out / f).read_bytes() for f in _files(out)}
        recs = [json.loads(line) for line in man.read_text().splitlines()]
        assert [Path(r["input"]).name for r in recs] == [f"img{i}.png" for i in range(6)]
        for r in recs:
            r.pop("seconds")
            r["outputs"] = [Path(p).name for p in r["outputs"]]
        outs[f"m{n}"] = recs
    assert len(outs[1]) == 12  # a bank of two kernels: two files per input
    assert outs[1] == outs[2]
    assert outs["m1"] == outs["m2"]


@pytest.mark.parametrize("workers", [1, 2])
def test_broken_file_fails_alone(tmp_path: Path, workers: int) -> None:
    src = tmp_path / "in"
    for i in range(3):
        _image(src / f"ok{i}.png", seed=i)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out, man = tmp_path / "out", tmp_path / "m.jsonl"
    res = _run("convolve", src, "-k", "box", "-o", out, "-j", workers, "--manifest", man)
    assert res.exit_code == 1
    assert "broken.png" in res.stderr and "error" in res.stderr
    assert _files(out) == [f"ok{i}.box.png" for i in range(3)]
    recs = _manifest(man)
    assert recs["broken.png"]["status"] == "failed"
    assert "broken.png" in recs["broken.png"]["error"]
    assert recs["broken.png"]["outputs"] == []
    ok = recs["ok0.png"]
    assert ok["status"] == "done" and ok["error"] is None
    assert ok["in_shape"] == [3, 24, 24] and ok["out_shape"] == [3, 24, 24]
    assert len(ok["maps"]) == 3 and {"min", "max", "mean"} <= set(ok["maps"][0])
    assert ok["parameters"]["stages"][0]["conv"]["kernel"] == "box"
    assert "batch summary" in res.stdout
    assert "┃ inputs ┃" in res.stdout  # cells padded inside the box on both edges


def test_single_input_manifest_keeps_full_report(tmp_path: Path) -> None:
    img = _image(tmp_path / "one.png")
    man = tmp_path / "m.jsonl"
    res = _run("convolve", img, "-k", "box", "-o", tmp_path / "out", "--manifest", man)
    assert res.exit_code == 0, res.output
    assert "batch summary" not in res.stdout
    (rec,) = _manifest(man).values()
    assert rec["status"] == "done" and rec["out_shape"] == [3, 24, 24]
    assert rec["outputs"] == [str(tmp_path / "out" / "one.box.png")]


# --------------------------------------------------------------------------- resume


def test_skip_existing_resumes(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(4):
        _image(src / f"img{i}.png", seed=i)
    out, man = tmp_path / "out", tmp_path / "m.jsonl"
    assert _run("convolve", src, "-k", "sobel", "-o", out, "-q", "-j", "2").exit_code == 0
    stamps = {f: (out / f).stat().st_mtime_ns for f in _files(out)}
    res = _run(
        "convolve", src, "-k", "sobel", "-o", out, "--skip-existing", "-j", "2", "--manifest", man
    )
    assert res.exit_code == 0, res.output
    recs = _manifest(man)
    assert {r["status"] for r in recs.values()} == {"skipped"}
    assert sorted(Path(p).name for p in recs["img0.png"]["outputs"]) == [
        "img0.sobel.sobel-x.png",
        "img0.sobel.sobel-y.png",
    ]
    assert {f: (out / f).stat().st_mtime_ns for f in _files(out)} == stamps
    # without --skip-existing or --force, existing outputs are refused
    res = _run("convolve", src, "-k", "sobel", "-o", out, "-q", "-j", "1")
    assert res.exit_code == 1 and "exists" in res.stderr


def test_skip_existing_redoes_partly_finished_inputs(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(3):
        _image(src / f"img{i}.png", seed=i)
    out, man = tmp_path / "out", tmp_path / "m.jsonl"
    assert _run("convolve", src, "-k", "sobel", "-o", out, "-q", "-j", "1").exit_code == 0
    (out / "img1.sobel.sobel-y.png").unlink()  # as if killed between two renames
    res = _run(
        "convolve", src, "-k", "sobel", "-o", out, "-q", "--skip-existing", "--manifest", man,
        "-j", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    recs = _manifest(man)
    assert [recs[f"img{i}.png"]["status"] for i in range(3)] == ["skipped", "done", "skipped"]
    assert (out / "img1.sobel.sobel-y.png").is_file()
    # asking for a montage now: every input lacks one, so every input is redone
    res = _run(
        "convolve", src, "-k", "sobel", "-o", out, "-q", "--skip-existing", "--montage",
        "--manifest", man, "-j", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {r["status"] for r in _manifest(man).values()} == {"done"}
    assert (out / "img0.sobel.montage.png").is_file()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["-k", "box"], ["x.box.png"]),
        (["-k", "box", "--format", "npz"], ["x.box.npz"]),
        (["-k", "kernels/rgb-layer.yaml"], None),  # a 4-D layer: one file per output map
        (["-k", "box", "--pool", "max"], ["x.box-maxpool.png"]),
    ],
)
def test_skip_existing_knows_every_layout(tmp_path: Path, args: list[str], names) -> None:  # noqa: ANN001
    repo = Path(__file__).resolve().parent.parent
    args = [str(repo / a) if a.startswith("kernels/") else a for a in args]
    src = tmp_path / "in"
    _image(src / "x.png", seed=1)
    _image(src / "y.png", seed=2)
    out, man = tmp_path / "out", tmp_path / "m.jsonl"
    assert _run("convolve", src, *args, "-o", out, "-q", "-j", "1").exit_code == 0
    if names is not None:
        assert [f for f in _files(out) if f.startswith("x.")] == names
    res = _run("convolve", src, *args, "-o", out, "-q", "-j", "1", "--skip-existing",
               "--manifest", man)  # fmt: skip
    assert res.exit_code == 0, res.output
    recs = _manifest(man)
    assert {r["status"] for r in recs.values()} == {"skipped"}
    assert sorted(Path(p).name for p in recs["x.png"]["outputs"]) == [
        f for f in _files(out) if f.startswith("x.")
    ]


# --------------------------------------------------------------------------- progress


def test_progress_is_plain_lines_off_a_terminal(tmp_path: Path) -> None:
    src = tmp_path / "in"
    for i in range(3):
        _image(src / f"img{i}.png", seed=i)
    res = _run("convolve", src, "-k", "box", "-o", tmp_path / "out", "-j", "1")
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("[")]
    assert len(lines) == 3
    assert lines[0].startswith("[1/3] ") and "img0.png done" in lines[0]
    assert lines[-1].startswith("[3/3] ")
    assert "images/s" in res.stdout
    quiet = _run("convolve", src, "-k", "box", "-o", tmp_path / "out2", "-j", "1", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_plain_progress_thins_out_for_big_batches(capsys: pytest.CaptureFixture[str]) -> None:
    with BatchProgress(1000, plain=True) as progress:
        for i in range(1000):
            progress.advance(Outcome(f"img{i}.png", "failed" if i == 5 else "done"))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 101  # every tenth, plus the failure
    assert lines[-1].startswith("[1000/1000] img999.png")


def test_run_batch_returns_outcomes_in_job_order(tmp_path: Path) -> None:
    from convcli.pipeline import Pipeline, PoolStage
    from convcli.run.jobs import OutputOptions

    src = tmp_path / "in"
    for i in range(5):
        _image(src / f"img{i}.png", size=16 + 8 * (4 - i), seed=i)  # later ones finish first
    jobs = make_jobs(find_inputs([str(src)]), str(tmp_path / "out"))
    seen: list[str] = []
    outcomes = run_batch(
        Pipeline((PoolStage("max", 2),), name=""), jobs, OutputOptions(out=str(tmp_path / "out")),
        workers=None, on_outcome=lambda o: seen.append(o.input),
    )  # fmt: skip
    assert [o.input for o in outcomes] == [j.source for j in jobs]
    assert sorted(seen) == sorted(j.source for j in jobs)
    assert all(o.status == "done" and o.result is None for o in outcomes)


class _KillerJob(Job):
    """Unpickled in a worker, this job ends the worker process (as the OOM killer would)."""

    def __reduce__(self):  # noqa: ANN204
        return (os._exit, (9,))


def test_a_dying_worker_fails_its_input_only(tmp_path: Path) -> None:
    from convcli.pipeline import Pipeline, PoolStage
    from convcli.run.jobs import OutputOptions

    src = tmp_path / "in"
    for i in range(6):
        _image(src / f"img{i}.png", seed=i)
    out = str(tmp_path / "out")
    jobs = make_jobs(find_inputs([str(src)]), out)
    jobs[2] = _KillerJob(jobs[2].source, jobs[2].stem, jobs[2].out_dir)
    outcomes = run_batch(
        Pipeline((PoolStage("max", 2),), name=""), jobs, OutputOptions(out=out), workers=2
    )
    assert [o.status for o in outcomes] == ["done", "done", "failed", "done", "done", "done"]
    assert "worker process died" in (outcomes[2].error or "")
    assert len(_files(tmp_path / "out")) == 5


# --------------------------------------------------------------------------- interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    src = tmp_path / "in"
    n = 120
    for i in range(n):
        _image(src / f"img{i:03d}.png", size=160, seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convcli", "convolve", str(src), "-k", "gaussian:15",
         "--montage", "-o", str(out), "-j", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    started = time.monotonic()
    for line in proc.stderr:  # wait until the batch is under way
        if line.startswith("[") or time.monotonic() - started > 20:
            break
    proc.send_signal(sig)
    try:
        rest = proc.communicate(timeout=20)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    files = _files(out)
    assert not [f for f in files if f.endswith(".tmp") or f.startswith(".")]
    assert 0 < len(files) < 2 * n  # stopped part-way
    for f in files:
        with Image.open(out / f) as im:
            im.load()  # every file there is complete
    stems = {f.split(".")[0] for f in files}
    assert all((out / f"{s}.gaussian_15.png").is_file() for s in stems)


# --------------------------------------------------------------------------- the report


def _conv_pipeline():
    from convcli.pipeline import ConvStage, Pipeline, bank_of

    return Pipeline((ConvStage(bank_of(["box:3"]), stride=2, padding=0),), name="")


def test_a_run_without_report_writes_the_same_files_and_skips_the_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convcli.pipeline import Result
    from convcli.run.jobs import OutputOptions, process_one

    src = _image(tmp_path / "in.png", size=34)
    with_report = process_one(
        _conv_pipeline(), Job(str(src), "in", str(tmp_path / "a")),
        OutputOptions(out=str(tmp_path / "a"), keep_result=True),
    )  # fmt: skip
    assert with_report.report is not None
    assert [m["name"] for m in with_report.report["maps"]] == ["R", "G", "B"]
    assert any("unused" in w for w in with_report.report["warnings"])

    def no_stats(self: Result) -> list:
        raise AssertionError("map statistics computed for a report nobody reads")

    monkeypatch.setattr(Result, "map_stats", no_stats)
    without = process_one(
        _conv_pipeline(), Job(str(src), "in", str(tmp_path / "b")),
        OutputOptions(out=str(tmp_path / "b"), keep_result=True, keep_report=False),
    )  # fmt: skip
    assert (without.status, without.report) == ("done", None)
    assert [Path(p).name for p in without.outputs] == [Path(p).name for p in with_report.outputs]
    for a, b in zip(with_report.outputs, without.outputs, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_a_manifest_run_makes_its_reports_regardless(tmp_path: Path) -> None:
    from convcli.run.execute import BatchOptions, execute, plan_run
    from convcli.run.jobs import OutputOptions

    src = _image(tmp_path / "in.png", size=34)
    manifest = tmp_path / "m.jsonl"
    plan = plan_run(
        _conv_pipeline(), [str(src)], OutputOptions(out=str(tmp_path / "o"), keep_report=False),
        BatchOptions(manifest=manifest),
    )  # fmt: skip
    assert plan.out.keep_report
    execute(plan)
    record = _manifest(manifest)["in.png"]
    assert record["out_shape"] == [3, 16, 16]
    assert [m["name"] for m in record["maps"]] == ["R", "G", "B"]


def test_map_statistics_are_computed_once_per_maps_array() -> None:
    from convcli.imageio.read import ImageData
    from convcli.pipeline import run

    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4) / 31
    result = run(_conv_pipeline(), ImageData(x[:1], "L", "L", 8, "x"))
    assert result.maps is not None
    first = result.map_stats()
    first.append((9.0, 9.0, 9.0))  # the caller's list: the kept figures do not change
    again = result.map_stats()
    assert again == first[:1]
    lo, hi, mean = again[0]
    assert (lo, hi) == (float(result.maps.min()), float(result.maps.max()))
    assert mean == pytest.approx(float(result.maps.mean(dtype=np.float64)))
    result.maps = result.maps * 2  # new maps: new figures
    assert result.map_stats()[0][:2] == (2 * lo, 2 * hi)
