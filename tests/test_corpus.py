"""The bad-input corpus (``tests/corpus.py``) through the real command line.

For every case: the documented exit code, exactly one ``error:`` line on stderr
naming the file and the problem (no traceback, no "internal error"), nothing
partial or temporary left in the output folder, the inputs byte-for-byte
unchanged, and in a batch the good files still done. Most cases run the real
``python -m convcli`` in a subprocess, so ``main()`` and stderr are the user's;
disk-full and read-only folders are simulated in-process (the suite runs as
root, where ``chmod`` does not stop a write).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from corpus import (
    BAD_KERNEL_SPECS,
    BAD_KERNELS,
    BAD_OPTIONS,
    BAD_PIPELINES,
    GRAY16,
    INPUTS,
    InputCase,
    build,
    good_png,
    leftovers,
    snapshot,
)
from PIL import Image

from convcli.cli import main
from convcli.kernels import lint_kernel_file

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
POSIX = os.name == "posix"


def convcli(*args: Any, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess (text stdout/stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "convcli", *(str(a) for a in args)],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV}, timeout=120,
    )  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    """The stderr lines, checked to be ``error:`` lines without a traceback."""
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), stderr
    return lines


def one_error(stderr: str, pattern: str) -> str:
    """The single stderr line; it must match ``error: <pattern>``."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert re.match("error: " + pattern, lines[0]), (pattern, lines[0])
    return lines[0]


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: Any
) -> tuple[int, str, str]:
    """``convcli.cli.main`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["convcli", *(str(a) for a in args)])
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, err


def _cases(cases: list[InputCase]) -> list[Any]:
    return [
        pytest.param(
            c, id=c.id, marks=pytest.mark.skipif(c.posix_only and not POSIX, reason="POSIX")
        )
        for c in cases
    ]


# --------------------------------------------------------------------------- one input at a time


def _check_output(case: InputCase, out: Path, source: Path) -> None:
    """What a case that is actually fine must have written."""
    path = out / case.output
    assert path.is_file(), sorted(p.name for p in out.iterdir())
    if path.suffix == ".npy":
        arr = np.load(path)
        if case.id == "animated-gif":  # the first frame: red
            assert arr.shape == (3, 4, 6)
            np.testing.assert_allclose(arr[:, 0, 0], [1, 0, 0])
        elif case.id == "gray16-tiff":  # 16-bit precision kept
            np.testing.assert_allclose(arr[0], GRAY16 / 65535.0, rtol=1e-6, atol=1e-9)
        elif case.id == "cmyk-jpeg":  # CMYK (0, 255, 255, 0) is red
            assert arr.shape == (3, 6, 8)
            np.testing.assert_allclose(arr.mean(axis=(1, 2)), [1, 0, 0], atol=0.1)
        elif case.id == "icc-profile":  # the stored pixels, profile ignored
            np.testing.assert_allclose(arr[:, 1, 1], np.array([10, 120, 230]) / 255, atol=1e-6)
    else:
        with Image.open(path) as im:
            im.load()
        if case.args == ("-k", "identity"):
            with Image.open(path) as a, Image.open(source) as b:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b.convert(a.mode)))


@pytest.mark.parametrize("case", _cases(INPUTS))
def test_each_input_alone(case: InputCase, tmp_path: Path) -> None:
    source = build(case, tmp_path / "in")
    before = snapshot(tmp_path / "in")
    proc = convcli("convolve", f"in/{case.name}", *case.args, "-o", "out", "-q", cwd=tmp_path)
    assert proc.returncode == case.code, proc.stderr
    out = tmp_path / "out"
    if case.code:
        one_error(proc.stderr, re.escape(f"in/{case.name}: ") + case.message)
        assert not out.exists() or not any(out.iterdir())
    else:
        assert proc.stderr == ""
        _check_output(case, out, source)
    assert proc.stdout == ""
    assert leftovers(out) == [] and leftovers(tmp_path / "in") == []
    assert snapshot(tmp_path / "in") == before


def test_the_whole_corpus_as_one_batch(tmp_path: Path) -> None:
    src = tmp_path / "in"
    cases = [c for c in INPUTS if c.make is not None and (POSIX or not c.posix_only)]
    for case in cases:
        build(case, src)
    good_png(src / "sub" / "good.png")
    (src / ".hidden.png").write_bytes(b"hidden files are skipped")
    if POSIX:
        (src / "sub" / "loop").symlink_to("..", target_is_directory=True)  # in/sub/loop -> in
    before = snapshot(src)
    proc = convcli(
        "convolve", "in", "-r", "-k", "box:3", "--padding", "valid", "-o", "out", "-j", "2",
        "-q", "--manifest", "m.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    bad = sorted(c.name for c in cases if c.code)
    good = sorted(c.name for c in cases if not c.code)
    lines = error_lines(proc.stderr)
    assert len(lines) == len(bad), proc.stderr  # one line per bad file, nothing else
    for name in bad:
        assert sum(f"error: in/{name}: " in line for line in lines) == 1, (name, proc.stderr)
    written = snapshot(tmp_path / "out")
    for name in [*good, "sub/good.png"]:
        stem = name.rsplit(".", 1)[0]
        outputs = [f for f in written if f.startswith(stem + ".box_3.")]
        assert len(outputs) == 1, (name, sorted(written))
        with Image.open(tmp_path / "out" / outputs[0]) as im:
            im.load()
    assert len(written) == len(good) + 1  # nothing for the bad ones, nothing twice
    records = {
        json.loads(line)["input"]: json.loads(line)
        for line in (tmp_path / "m.jsonl").read_text().splitlines()
    }
    assert sorted(k for k, r in records.items() if r["status"] == "failed") == [
        f"in/{n}" for n in bad
    ]
    assert records["in/sub/good.png"]["status"] == "done"
    assert leftovers(tmp_path / "out") == [] and not list(tmp_path.glob(".m.jsonl*"))
    assert snapshot(src) == before


# --------------------------------------------------------------------------- outputs


def test_an_output_that_is_the_input_is_refused_even_with_force(tmp_path: Path) -> None:
    good_png(tmp_path / "in.png")
    before = snapshot(tmp_path)
    for extra in ((), ("--force",)):
        proc = convcli("convolve", "in.png", "-k", "box", "-o", "in.png", *extra, cwd=tmp_path)
        assert proc.returncode == 1
        one_error(proc.stderr, re.escape("in.png: is an input; refusing to overwrite it"))
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []


def test_an_input_named_like_another_inputs_output(tmp_path: Path) -> None:
    good_png(tmp_path / "in" / "a.png", seed=1)
    good_png(tmp_path / "in" / "a.box.png", seed=2)  # what a.png's output would be called
    before = snapshot(tmp_path / "in")
    proc = convcli("convolve", "in", "-k", "box", "-o", "in", "--force", "-q", cwd=tmp_path)
    assert proc.returncode == 1
    one_error(proc.stderr, re.escape("in/a.box.png: is an input; refusing to overwrite it"))
    after = snapshot(tmp_path / "in")
    assert {k: after[k] for k in before} == before  # both inputs untouched
    assert sorted(after) == ["a.box.box.png", "a.box.png", "a.png"]  # the other one done
    assert leftovers(tmp_path / "in") == []


def test_an_existing_output_is_kept_without_force(tmp_path: Path) -> None:
    good_png(tmp_path / "in.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.box.png").write_bytes(b"an earlier result")
    proc = convcli("convolve", "in.png", "-k", "box", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 1
    one_error(proc.stderr, re.escape("out/in.box.png exists (use --force to overwrite"))
    assert (tmp_path / "out" / "in.box.png").read_bytes() == b"an earlier result"
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("inputs", "args", "message"),
    [
        (["in.png"], ["-o", "blocker"], "-o blocker: blocker is a file, not a folder"),
        (["in.png"], ["-o", "blocker/x.png"], "-o blocker/x.png: blocker is a file, not a folder"),
        (["in.png", "b.png"], ["-o", "blocker/deeper"], "-o blocker/deeper: blocker is a file"),
        (["tree"], ["-r", "-o", "out"], "-o out: out/sub is a file, not a folder"),
        (["in.png"], ["-o", "out", "--manifest", "blocker/m.jsonl"],
         "--manifest blocker/m.jsonl: blocker is a file, not a folder"),
    ],
    ids=["out-folder", "out-file-parent", "batch-out", "mirrored-sub-folder", "manifest"],
)  # fmt: skip
def test_a_file_where_a_folder_must_be_stops_the_run_before_any_work(
    inputs: list[str], args: list[str], message: str, tmp_path: Path
) -> None:
    good_png(tmp_path / "in.png")
    good_png(tmp_path / "b.png", seed=1)
    good_png(tmp_path / "tree" / "sub" / "c.png", seed=2)
    good_png(tmp_path / "tree" / "d.png", seed=3)
    (tmp_path / "blocker").write_bytes(b"a file")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_bytes(b"a file")
    before = snapshot(tmp_path)
    proc = convcli("convolve", *inputs, "-k", "box", *args, cwd=tmp_path)
    assert proc.returncode == 2
    one_error(proc.stderr, re.escape(message))
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


def _fail_temp_files(monkeypatch: pytest.MonkeyPatch, folder: Path, match: str, how: str) -> list:
    """Make the temporary files created in ``folder`` for outputs whose name holds ``match`` fail.

    ``how="eacces"``: creating one raises PermissionError (a read-only folder, as a
    non-root user sees it). ``how="enospc"``: it is created, but its descriptor is
    ``/dev/full``, so the kernel itself answers every write with ENOSPC. Works at the
    ``os.open`` level, whichever way the writer names its temporary files (the
    output a temporary file is for is taken from the writer's ``new_temp``).
    """
    from convcli.imageio import write

    real_open, real_new_temp = os.open, write.new_temp
    made: list[str] = []
    target: list[Path] = []

    def new_temp(path: Path) -> Any:
        target.append(Path(path))
        try:
            return real_new_temp(path)
        finally:
            target.pop()

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        p = Path(os.fsdecode(path))
        out = target[-1] if target else None
        if (
            flags & os.O_CREAT and out is not None and match in out.name
            and p.parent.resolve() == folder.resolve()
        ):  # fmt: skip
            if how == "eacces":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))
            os.close(real_open(path, flags, *args, **kwargs))  # the file is really there
            made.append(str(p))
            return real_open("/dev/full", os.O_RDWR)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(write, "new_temp", new_temp)
    return made


def _fail_commit(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """ENOSPC when a finished temporary file is given the final ``name``.

    That step is ``os.link`` (claiming a new name) or ``os.replace`` (``--force``).
    """
    for func in ("link", "replace"):
        real = getattr(os, func)

        def fail(src: Any, dst: Any, *args: Any, real: Any = real, **kwargs: Any) -> None:
            if os.path.basename(dst) == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, func, fail)


@pytest.fixture
def three_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for i, name in enumerate("abc"):
        good_png(tmp_path / "in" / f"{name}.png", seed=i)
    return tmp_path


def _batch(monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:  # noqa: ANN001
    return run_main(monkeypatch, capsys, "convolve", "in", "-k", "box", "-o", "out", "-j", "1",
                    "-q", *extra)  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_while_encoding_fails_that_input_alone(
    three_inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (three_inputs / "out").mkdir()
    made = _fail_temp_files(monkeypatch, three_inputs / "out", "b.box.png", "enospc")
    before = snapshot(three_inputs / "in")
    code, out, err = _batch(monkeypatch, capsys)
    assert code == 1 and out == ""
    one_error(err, re.escape("out/b.box.png: cannot write (No space left on device)"))
    assert made and not any(os.path.exists(m) for m in made)  # the temporary file is gone
    assert sorted(snapshot(three_inputs / "out")) == ["a.box.png", "c.box.png"]
    assert leftovers(three_inputs / "out") == []
    assert snapshot(three_inputs / "in") == before


def test_disk_full_on_rename_fails_that_input_alone(
    three_inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_commit(monkeypatch, "c.box.png")
    code, _, err = _batch(monkeypatch, capsys)
    assert code == 1
    one_error(err, re.escape("out/c.box.png: cannot write (No space left on device)"))
    assert sorted(snapshot(three_inputs / "out")) == ["a.box.png", "b.box.png"]
    assert leftovers(three_inputs / "out") == []


def test_a_read_only_output_folder_fails_each_input_with_one_line(
    three_inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = three_inputs / "out"
    out.mkdir()
    _fail_temp_files(monkeypatch, out, ".box.png", "eacces")
    code, _, err = _batch(monkeypatch, capsys)
    assert code == 1
    lines = error_lines(err)
    assert lines == [f"error: out/{n}.box.png: cannot write (Permission denied)" for n in "abc"]
    assert snapshot(out) == {} and leftovers(out) == []


def test_disk_full_writing_the_manifest_is_one_line_and_leaves_no_temp_file(
    three_inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fail_commit(monkeypatch, "m.jsonl")
    code, _, err = _batch(monkeypatch, capsys, "--manifest", "m.jsonl")
    assert code == 1
    one_error(err, re.escape("m.jsonl: cannot write the manifest (No space left on device)"))
    assert sorted(snapshot(three_inputs / "out")) == ["a.box.png", "b.box.png", "c.box.png"]
    assert not [p for p in os.listdir(three_inputs) if "jsonl" in p]


# --------------------------------------------------------------------------- interrupts


@pytest.mark.skipif(not POSIX, reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_batch_leaves_complete_files_and_skip_existing_finishes_it(
    sig: signal.Signals, tmp_path: Path
) -> None:
    n = 80
    for i in range(n):
        good_png(tmp_path / "in" / f"img{i:02d}.png", size=128, seed=i)
    args = ["convolve", "in", "-k", "gaussian:15", "--montage", "-o", "out", "-j", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "convcli", *args], cwd=tmp_path, env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    started = time.monotonic()
    for line in proc.stderr:  # wait until the batch is under way
        if line.startswith("[") or time.monotonic() - started > 20:
            break
    proc.send_signal(sig)
    try:
        rest = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, rest
    assert "error: interrupted" in rest and "Traceback" not in rest
    out = tmp_path / "out"
    assert leftovers(out) == []
    first = snapshot(out)
    assert 0 < len(first) < 2 * n, len(first)  # stopped part-way
    for name in first:
        with Image.open(out / name) as im:
            im.load()  # complete
    again = convcli(*args, "--skip-existing", "-q", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    final = snapshot(out)
    assert len(final) == 2 * n  # every input: its picture and its montage
    assert {k: final[k] for k in first} == first  # what was there is kept as it was
    assert leftovers(out) == []


# --------------------------------------------------------------------------- kernels, pipelines


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_KERNELS],
                         ids=[c[0] for c in BAD_KERNELS])  # fmt: skip
def test_bad_kernel_files_exit_2_with_file_line_and_nothing_written(
    text: str | bytes, message: str, tmp_path: Path
) -> None:
    good_png(tmp_path / "in.png")
    path = tmp_path / "k" / "bad.yaml"
    path.parent.mkdir()
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    proc = convcli("convolve", "in.png", "-k", "k/bad.yaml", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error(proc.stderr, re.escape("k/bad.yaml:") + message)
    assert not (tmp_path / "out").exists()
    findings = lint_kernel_file(path)  # the linter says the same, without raising
    assert [f.severity for f in findings].count("error") == 1


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in BAD_KERNEL_SPECS],
                         ids=[c[0] for c in BAD_KERNEL_SPECS])  # fmt: skip
def test_bad_kernel_specs_exit_2_with_one_line(spec: str, message: str, tmp_path: Path) -> None:
    good_png(tmp_path / "in.png")
    proc = convcli("convolve", "in.png", "-k", spec, "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error(proc.stderr, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_PIPELINES],
                         ids=[c[0] for c in BAD_PIPELINES])  # fmt: skip
def test_bad_pipelines_exit_2_with_file_line_stage(text: str, message: str, tmp_path: Path) -> None:
    good_png(tmp_path / "in.png")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "broken.yaml").write_text("weights:\n  - [1, 2]\n  - [3]\n")
    (tmp_path / "p" / "bad.yaml").write_text(text)
    proc = convcli("run", "p/bad.yaml", "in.png", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error(proc.stderr, re.escape("p/bad.yaml:") + message)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- option values


@pytest.mark.parametrize(("args", "code", "message"), [c[1:] for c in BAD_OPTIONS],
                         ids=[c[0] for c in BAD_OPTIONS])  # fmt: skip
def test_bad_option_values(args: tuple[str, ...], code: int, message: str, tmp_path: Path) -> None:
    good_png(tmp_path / "in.png")
    before = snapshot(tmp_path)
    proc = convcli("convolve", "in.png", "-k", "box", *args, "-o", "out", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    one_error(proc.stderr, message)
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists() or snapshot(tmp_path / "out") == {}
    assert snapshot(tmp_path) == before


def test_a_pool_window_wider_than_4096_is_checked_against_the_image(tmp_path: Path) -> None:
    # The option check runs on a 4096×4096 stand-in; a wider window must not fail there.
    Image.new("L", (4100, 2), 7).save(tmp_path / "wide.png")
    Image.new("L", (4000, 2), 7).save(tmp_path / "narrow.png")
    proc = convcli("pool", "wide.png", "--size", "1,4097", "-o", "wide.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "wide.npy").shape == (1, 2, 1)
    proc = convcli("pool", "narrow.png", "--size", "1,4097", "-o", "narrow.npy", cwd=tmp_path)
    assert proc.returncode == 1
    one_error(proc.stderr, re.escape("narrow.png: pool window 1×4097 is larger than the padded"))
