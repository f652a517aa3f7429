"""A terminal on stdin or stdout: no image bytes into it, no silent wait for an image from it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _run_with_tty(args: list[str], *, tty_in: bool, tty_out: bool, cwd: Path) -> tuple[int, str]:
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "convcli", *args],
            stdin=slave if tty_in else subprocess.DEVNULL,
            stdout=slave if tty_out else subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    return done.returncode, done.stderr.decode()


def test_image_to_a_terminal_stdout_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    code, err = _run_with_tty(
        ["convolve", "a.png", "-k", "box", "-o", "-"], tty_in=False, tty_out=True, cwd=tmp_path
    )
    assert code == 2
    assert err.startswith("error: -o - would write image bytes to the terminal")
    assert len(err.strip().splitlines()) == 1


def test_stdin_from_a_terminal_is_refused_instead_of_waiting(tmp_path: Path) -> None:
    code, err = _run_with_tty(
        ["convolve", "-", "-k", "box", "-o", "out"], tty_in=True, tty_out=False, cwd=tmp_path
    )
    assert code == 2
    assert "reads an image from stdin, which is the terminal" in err
    assert not (tmp_path / "out").exists()
