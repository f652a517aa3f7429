"""Reports read well at 80 columns: the shape/convolve table and ``kernels list``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from convcli.cli import app
from convcli.cli.narrow import ByWidth
from convcli.cli.report import report
from convcli.pipeline.yamlfile import read_pipeline

REPO = Path(__file__).resolve().parents[1]
VGG = REPO / "kernels" / "pipelines" / "vgg16.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # ./kernels holds the example kernel files
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(columns: int, *args: str) -> str:
    env = {"COLUMNS": str(columns), "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def stage_lines(text: str) -> dict[int, list[str]]:
    """Lines of the shape table, grouped by the stage number that starts a row."""
    rows: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("how each size"):
            break
        m = re.match(r"^[│ ]*(\d+)[ │]", line)
        if m:
            current = int(m.group(1))
            rows[current] = [line]
        elif current is not None and line.strip(" │└─┘┴"):
            rows[current].append(line)
    return rows


def test_the_vgg16_report_at_80_columns_keeps_every_stage_on_two_lines() -> None:
    out = invoke(80, "shape", str(VGG), "--input", "3x224x224")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = stage_lines(out)
    assert sorted(rows) == list(range(1, 19))
    assert all(len(r) == 2 for r in rows.values()), rows
    assert rows[12][0].split() == ["12", "conv", "3×3", "(layer", "512×512×3×3)", "512×28×28",
                                   "2,359,808", "1.85", "G", "76", "/", "8"]  # fmt: skip
    assert rows[12][1].split() == ["stride", "1", "·", "bias", "·", "relu"]
    assert "│" not in out and "in C×H×W" not in out  # the compact table
    assert "total: 14,714,688 weights, 15.4 G multiply-adds; output 512×7×7;\n" in out
    assert "       receptive field 212 px, effective stride 32" in out


def test_the_convolve_report_at_80_columns(tmp_path: Path) -> None:
    out = invoke(80, "convolve", "samples/chelsea.jpg", "-k", "sobel", "--stride", "2",
                 "--pool", "max", "--dry-run", "-o", str(tmp_path))  # fmt: skip
    assert all(len(line) <= 80 for line in out.splitlines())
    rows = stage_lines(out)
    assert [len(r) for r in rows.values()] == [2, 2]
    assert rows[1][0].split()[:6] == ["1", "conv", "sobel", "(bank", "of", "2,"]
    assert "6×150×226" in rows[1][0] and "1.83 M" in rows[1][0]


def test_the_wide_table_stays_when_it_fits() -> None:
    out = invoke(100, "shape", str(VGG), "--input", "3x224x224")
    assert "┃  # ┃ stage" in out and "in C×H×W" in out
    assert all(len(r) == 2 for r in stage_lines(out).values())
    narrow = invoke(100, "shape", "--input", "3x224x224", "--kernel-size", "7",
                    "--out-channels", "64", "--stride", "2", "--padding", "3")  # fmt: skip
    assert "│ 1 │ conv 7×7 (layer 64×3×7×7) │ 3×224×224 │ 64×112×112 │   9,408 │ 118 M │" in narrow
    assert "total: 9,408 weights, 118 M multiply-adds; output 64×112×112;\n" in narrow


def test_kernels_list_at_80_columns_is_readable() -> None:
    out = invoke(80, "kernels", "list")
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 90  # 140 when every description wrapped in a narrow column
    i = next(n for n, line in enumerate(lines) if line.startswith("gaussian[:k[:sigma]] "))
    assert lines[i].split() == ["gaussian[:k[:sigma]]", "5×5", "1", "yes"]
    assert lines[i + 1].strip() == "Gaussian blur (5, OpenCV sigma rule)"
    assert lines[i + 1].startswith("  ")
    j = next(n for n, line in enumerate(lines) if line.startswith("my-edge "))
    assert "(kernels/my-edge.yaml)" in " ".join(lines[j + 1 : j + 3])
    # a description that wraps stays indented under its name
    assert all(line.startswith("  ") for line in lines[j + 1 : j + 3])


def test_kernels_list_is_one_line_per_kernel_when_wide() -> None:
    out = invoke(160, "kernels", "list")
    assert "│ gaussian[:k[:sigma]]" in out and "Gaussian blur (5, OpenCV sigma rule)" in out
    row = next(line for line in out.splitlines() if "│ gaussian[:k[:sigma]]" in line)
    assert "Gaussian blur" in row


def test_by_width_measures_the_wide_form_without_wrapping() -> None:
    result = read_pipeline(VGG).plan((3, 224, 224))
    for width, wide in ((100, True), (99, False), (80, False)):
        console = Console(width=width, file=io.StringIO(), color_system=None)
        console.print(report(result, show_stats=False))
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert ("in C×H×W" in text) is wide, width
        assert all(len(line) <= width for line in text.splitlines())
    both = ByWidth("a b c d e f", "abc")
    console = Console(width=8, file=io.StringIO(), color_system=None)
    console.print(both)
    assert console.file.getvalue() == "abc\n"  # type: ignore[attr-defined]
