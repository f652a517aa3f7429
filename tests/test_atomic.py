"""convcli.imageio.atomic and the writer's commit: temp names, claims, the run stamp, sweeps."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from convcli.errors import OutputError
from convcli.imageio import write_feature_maps
from convcli.imageio.atomic import (
    FOREIGN_TEMP_AGE,
    MACHINE,
    RunStamp,
    claim,
    is_stale,
    pid_alive,
    sweep_stale_temps,
    temp_name,
    temp_owner,
)


def _temp(folder: Path, text: str) -> str:
    name = temp_name(folder)
    Path(name).write_text(text)
    return name


def test_temp_names_are_short_and_say_who_made_them(tmp_path: Path) -> None:
    names = {os.path.basename(temp_name(tmp_path)) for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert len(name) == 38 and name.startswith(".convcli-") and name.endswith(".tmp")
        assert temp_owner(name) == (MACHINE, os.getpid())
    assert temp_owner(".photo.png.0123abcd.tmp") is None


def test_claim_takes_a_free_name_only(tmp_path: Path) -> None:
    final = tmp_path / "out.png"
    first = _temp(tmp_path, "first")
    claim(first, final)
    assert final.read_text() == "first" and not os.path.exists(first)
    second = _temp(tmp_path, "second")
    with pytest.raises(FileExistsError):
        claim(second, final)
    assert final.read_text() == "first" and os.path.exists(second)  # the caller removes it
    claim(second, final, replace=True)
    assert final.read_text() == "second" and sorted(os.listdir(tmp_path)) == ["out.png"]


def test_claim_without_hard_links_falls_back_to_a_checked_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    final = tmp_path / "out.png"
    claim(_temp(tmp_path, "first"), final)
    with pytest.raises(FileExistsError):
        claim(_temp(tmp_path, "second"), final)
    assert final.read_text() == "first"


def test_of_many_threads_claiming_one_name_exactly_one_wins(tmp_path: Path) -> None:
    final = tmp_path / "out.png"
    temps = [_temp(tmp_path, str(i)) for i in range(16)]
    won: list[int] = []
    go = threading.Barrier(len(temps))

    def race(i: int) -> None:
        go.wait()
        try:
            claim(temps[i], final)
            won.append(i)
        except FileExistsError:
            os.unlink(temps[i])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(temps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and final.read_text() == str(won[0])
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_a_run_stamp_recognises_its_own_files_only(tmp_path: Path) -> None:
    mine, other = RunStamp.new(), RunStamp(0, 0)
    while other.token in (0, mine.token):
        other = RunStamp.new()
    f = tmp_path / "f"
    f.write_text("x")
    mine.mark(f)
    assert mine.owns(f) and not other.owns(f)
    assert abs(f.stat().st_mtime_ns - time.time_ns()) < 10**9  # still "now"
    later = RunStamp(mine.token, time.time_ns() + 10**9)  # the same token, a later run
    assert not later.owns(f)
    assert not mine.owns(tmp_path / "missing")


def test_the_writer_stamps_its_files_and_replaces_only_its_own(tmp_path: Path) -> None:
    maps = np.linspace(0, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    run = RunStamp.new()
    res = write_feature_maps(maps, out=tmp_path, stem="s", name="k", layout="maps", own=run)
    assert all(run.owns(p) for p in res.paths)
    again = write_feature_maps(maps / 2, out=tmp_path, stem="s", name="k", layout="maps", own=run)
    assert again.paths == res.paths  # a task run twice: its own files, replaced
    with pytest.raises(OutputError, match="exists"):
        write_feature_maps(maps, out=tmp_path, stem="s", name="k", layout="maps",
                           own=RunStamp(run.token % 999_999 + 1, 0))  # fmt: skip


def test_a_name_taken_meanwhile_gives_back_the_names_already_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run takes the second name between the check and the claim."""
    real = os.link

    def link(src: str, dst: str) -> None:
        if os.path.basename(dst) == "s.k.1.png":
            Path(dst).write_text("the other run's")
        real(src, dst)

    monkeypatch.setattr(os, "link", link)
    maps = np.zeros((3, 4, 4), np.float32)
    with pytest.raises(OutputError, match=r"s\.k\.1\.png exists"):
        write_feature_maps(maps, out=tmp_path, stem="s", name="k", layout="maps")
    assert sorted(os.listdir(tmp_path)) == ["s.k.1.png"]  # s.k.0.png given back, no temps
    assert (tmp_path / "s.k.1.png").read_text() == "the other run's"


def test_stale_means_a_dead_owner_or_an_old_foreign_temp() -> None:
    now = time.time()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    assert pid_alive(os.getpid()) and not pid_alive(pid) and not pid_alive(0)
    here = f".convcli-{MACHINE}-{{:07d}}-0123abcd.tmp"
    assert is_stale(here.format(pid), now, now=now)
    assert not is_stale(here.format(os.getpid()), now, now=now)
    assert is_stale(here.format(os.getpid()), 0.0, now=now)  # older than this process: reused pid
    foreign = ".convcli-0000ffff-0000001-0123abcd.tmp"
    assert not is_stale(foreign, now - FOREIGN_TEMP_AGE + 60, now=now)
    assert is_stale(foreign, now - FOREIGN_TEMP_AGE - 60, now=now)
    assert is_stale(".a.box.png.0123abcd.tmp", now - FOREIGN_TEMP_AGE - 60, now=now)
    assert not is_stale(".a.box.png.0123abcd.tmp", now, now=now)
    assert not is_stale("notes.tmp", 0.0, now=now) and not is_stale(".x.tmp", 0.0, now=now)


def test_a_sweep_touches_only_stale_temps_directly_in_the_folders_given(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = f".convcli-{MACHINE}-{int(dead.stdout):07d}-0123abcd.tmp"
    for folder in (tmp_path / "a", tmp_path / "b", tmp_path / "a" / "deeper"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / stale).write_text("x")
        (folder / "keep.png").write_text("x")
    link = tmp_path / "a" / stale.replace("0123abcd", "89abcdef")
    link.symlink_to(tmp_path / "b" / stale)  # named like a temp, but not a file: left alone
    removed = sweep_stale_temps([tmp_path / "a", tmp_path / "a", tmp_path / "missing"])
    assert removed == [tmp_path / "a" / stale]
    assert (tmp_path / "b" / stale).exists() and (tmp_path / "a" / "deeper" / stale).exists()
    assert (tmp_path / "a" / "keep.png").exists() and link.is_symlink()
