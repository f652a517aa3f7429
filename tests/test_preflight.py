"""convcli.run.preflight (checks before any work) and convcli.run.lifeline (workers end
with their run)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from convcli.errors import ParameterError
from convcli.kernels.model import Kernel
from convcli.pipeline import ConvStage, Pipeline
from convcli.run.batch import find_inputs, make_jobs
from convcli.run.jobs import OutputOptions
from convcli.run.preflight import (
    check_manifest,
    check_output_names,
    read_manifest,
    skipped_paths,
)
from convcli.run.records import merge_records

# --------------------------------------------------------------------------- manifest


def test_check_manifest(tmp_path: Path) -> None:
    inp = tmp_path / "scan.dat"
    inp.write_bytes(b"x")
    with pytest.raises(ParameterError, match="is an input"):
        check_manifest(tmp_path / "sub" / ".." / "scan.dat", inputs=[str(inp)], force=True)
    link = tmp_path / "m.jsonl"
    link.symlink_to(inp)
    with pytest.raises(ParameterError, match="is an input"):
        check_manifest(link, inputs=[str(inp)], force=True)
    for ext in (".png", ".JPG", ".tiff", ".npz"):
        with pytest.raises(ParameterError, match="names an image or output file"):
            check_manifest(tmp_path / f"new{ext}", inputs=[], force=True)
    assert check_manifest(tmp_path / "new.jsonl", inputs=[]) == []
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"input": "a.png", "status": "done"}) + "\n")
    with pytest.raises(ParameterError, match="exists"):
        check_manifest(old, inputs=[])
    assert check_manifest(old, inputs=[], force=True) == []
    assert check_manifest(old, inputs=[], skip_existing=True) == [
        {"input": "a.png", "status": "done"}
    ]
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        check_manifest(tmp_path / "folder.jsonl", inputs=[], force=True)


@pytest.mark.parametrize(
    ("text", "records"),
    [
        ("", []),
        ('{"input": "a", "status": "done"}\n\n', [{"input": "a", "status": "done"}]),
        ("my notes\n", None),
        ('{"input": "a"}\n', None),
        ("[1, 2]\n", None),
        (b"\xff\xfe", None),
    ],
)
def test_read_manifest(tmp_path: Path, text: str | bytes, records: list | None) -> None:
    f = tmp_path / "m.jsonl"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert read_manifest(f) == records


def test_merge_keeps_earlier_done_records_of_skipped_inputs_only() -> None:
    old = [
        {"input": "a", "status": "done", "outputs": ["o/a"], "maps": [1]},
        {"input": "b", "status": "failed", "outputs": [], "maps": []},
        {"input": "c", "status": "done", "outputs": ["o/c.old"], "maps": [3]},
        {"input": "gone", "status": "done", "outputs": ["o/g"], "maps": [4]},
    ]
    new = [
        {"input": "a", "status": "skipped", "outputs": ["o/a"], "maps": []},
        {"input": "b", "status": "skipped", "outputs": ["o/b"], "maps": []},
        {"input": "c", "status": "skipped", "outputs": ["o/c"], "maps": []},  # other files now
        {"input": "d", "status": "done", "outputs": ["o/d"], "maps": [5]},
    ]
    assert merge_records(new, old) == [old[0], new[1], new[2], new[3]]


# --------------------------------------------------------------------------- inputs and names


def test_a_folder_search_skips_the_output_folder_and_the_manifest(tmp_path: Path) -> None:
    for rel in ("a.png", "sub/b.png", "out/a.box.png", "out/sub/b.box.png", "m.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    skip = skipped_paths(str(tmp_path / "out"), tmp_path / "m.png")
    found = [os.path.relpath(p, tmp_path) for p, _ in find_inputs([str(tmp_path)], recursive=True,
                                                                  skip=skip)]  # fmt: skip
    assert found == ["a.png", "sub/b.png"]
    # the output folder searched itself (-o photos photos): searched; named directly: taken
    inside = [os.path.relpath(p, tmp_path) for p, _ in find_inputs(
        [str(tmp_path / "out"), str(tmp_path / "m.png")], recursive=True, skip=skip)]  # fmt: skip
    assert inside == ["out/a.box.png", "out/sub/b.box.png", "m.png"]


def _jobs(tmp_path: Path, names: list[str]) -> list:
    for n in names:
        (tmp_path / "in" / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / n).touch()
    return make_jobs(find_inputs([str(tmp_path / "in")]), str(tmp_path / "out"))


def test_stems_are_compared_once_cleaned(tmp_path: Path) -> None:
    with pytest.raises(
        ParameterError, match=r"a\*b\.png and .*a_b\.png would write the same files"
    ):
        _jobs(tmp_path, ["a*b.png", "a_b.png"])


def test_output_names_are_checked_for_every_input(tmp_path: Path) -> None:
    bank = Kernel("k", np.zeros((2, 1, 1)), labels=("x/y", "x:y"))
    p = Pipeline((ConvStage(bank),), name="")
    jobs = _jobs(tmp_path, ["a.png", "b.png"])
    with pytest.raises(ParameterError, match="two outputs would have the same file name a.k.x_y"):
        check_output_names(p, jobs, OutputOptions())
    check_output_names(p, jobs, OutputOptions(fmt="npz"))  # one file: labels do not clash
    long = Pipeline((ConvStage(Kernel("k" * 250, np.ones((1, 1)))),), name="")
    with pytest.raises(ParameterError, match=r"a\.png: the output name .* \(256 bytes\) is longer"):
        check_output_names(long, jobs, OutputOptions())


# --------------------------------------------------------------------------- lifeline


def _watched(reader: object, pid: int) -> None:
    from convcli.run.lifeline import watch

    watch(reader, pid, lambda: os._exit(7), every=0.2)  # type: ignore[arg-type]
    time.sleep(60)
    os._exit(0)


@pytest.mark.skipif(os.name != "posix", reason="forkserver")
def test_a_watched_process_exits_when_the_write_end_closes() -> None:
    ctx = multiprocessing.get_context("forkserver")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_watched, args=(reader, os.getpid()))
    child.start()
    reader.close()
    time.sleep(0.3)
    assert child.is_alive()
    t0 = time.monotonic()
    writer.close()  # what the kernel does when the convcli process dies
    child.join(10)
    assert child.exitcode == 7 and time.monotonic() - t0 < 5
