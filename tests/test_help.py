"""Every command's --help, as a new user reads it at 80 columns, under the installed click.

.ci/run runs this file again under the lowest click the project allows, so the
help reads the same under both ends of the pinned range.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    [], ["convolve"], ["pool"], ["run"], ["shape"], ["explain"],
    ["kernels"], ["kernels", "list"], ["kernels", "show"], ["kernels", "validate"],
]  # fmt: skip


def help_text(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "convcli", *command, "--help"],
        capture_output=True, text=True, env=env, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    return {" ".join(c): help_text(*c) for c in COMMANDS}


@pytest.mark.parametrize("command", [" ".join(c) for c in COMMANDS])
def test_help_reads_as_plain_text(helps: dict[str, str], command: str) -> None:
    text = helps[command]
    assert text.startswith("Usage: python -m convcli")
    # no Python types, braces, range notes, markup or reST in what a user reads
    for junk in ("<bool>", "<str>", "<int", "<list", "<Path", "{", "[x>=", "[dim]", "``"):
        assert junk not in text, (command, junk)
    assert not re.search(r"\w \.(\s|$)", text), "a space before a full stop"
    if "Commands:" in text:
        assert "..." not in text.split("Commands:")[1], "a command summary cut short"
    for line in text.splitlines():
        assert len(line) <= 80, line


def test_usage_lines_name_the_arguments(helps: dict[str, str]) -> None:
    assert "Usage: python -m convcli convolve [OPTIONS] INPUT...\n" in helps["convolve"]
    assert "Usage: python -m convcli run [OPTIONS] PIPELINE INPUT...\n" in helps["run"]
    assert "Usage: python -m convcli shape [OPTIONS] [PIPELINE]\n" in helps["shape"]
    assert "validate [OPTIONS] FILE...\n" in helps["kernels validate"]
    assert "--traceback" in helps[""] and "--version" in helps[""]


def test_every_option_in_the_help_is_in_the_readme(helps: dict[str, str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    options = {o for text in helps.values() for o in re.findall(r"(?<![\w-])--[a-z][a-z-]+", text)}
    missing = sorted(o for o in options if o not in readme)
    assert not missing, f"options in --help but not in the README: {missing}"


def test_every_option_shows_a_value_name(helps: dict[str, str]) -> None:
    # an option that takes a value names it (--stride S|SH,SW), a flag stands alone
    assert "--stride S|SH,SW" in helps["convolve"]
    assert "--padding PAD" in helps["convolve"]
    assert "--pad-mode zeros|constant|reflect|symmetric|replicate|circular" in helps["convolve"]
    assert "--format png|jpeg|webp|tiff|npy|npz|keep" in helps["convolve"]
    assert re.search(r"^  --flip\s{2,}True convolution", helps["convolve"], re.M)
