"""``convcli kernels list | show | validate`` through the real click app."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcli.cli import app
from convcli.errors import KernelError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "kernels").glob("*.y*ml"))
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


def run(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, ["kernels", *args], env=ENV)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder so ./kernels is not the repo's (unless a test makes one)."""
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- list


def test_list_shows_every_builtin_with_size_sum_and_separability() -> None:
    result = run("list")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ["gaussian[:k[:sigma]]", "gabor[:k[:theta[:sigma[:lambda]]]]", "sobel-x", "kirsch"]:
        assert text in out
    # at 100 columns the wide table would wrap its descriptions: each goes under its name
    row = next(line for line in out.splitlines() if line.startswith("gaussian[:k[:sigma]] "))
    assert row.split() == ["gaussian[:k[:sigma]]", "5×5", "1", "yes"]
    row = next(line for line in out.splitlines() if line.startswith("laplacian[:n] "))
    assert row.split() == ["laplacian[:n]", "3×3", "0", "no"]
    row = next(line for line in out.splitlines() if line.startswith("kirsch "))
    assert "8 × 3×3" in row
    assert "  bank: 8 compass directions" in out
    assert "No kernel files found" in out


def test_list_includes_yaml_files_from_kernel_dirs_and_shows_broken_ones(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    write(folder, "ridge.yaml", "description: a [bold] ridge\nweights: [[-1, 2, -1]]\n")
    write(folder, "broken.yaml", "weights:\n  - [1, 2]\n  - [3]\n")
    result = run("list", "--kernel-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "Kernel files" in result.output
    row = next(
        line for line in result.output.splitlines() if line.lstrip("│ ").startswith("ridge ")
    )
    assert "1×3" in row and "a [bold] ridge" in result.output  # user text printed as typed
    assert "weights row 2 has 1 numbers, row 1 has 2" in result.output


def test_list_finds_the_cwd_kernels_folder(tmp_path: Path) -> None:
    (tmp_path / "kernels").mkdir()
    write(tmp_path / "kernels", "local-blur.yaml", "weights: [[1, 1]]\nnormalize: sum\n")
    result = run("list")
    assert result.exit_code == 0
    assert "local-blur" in result.output


# --------------------------------------------------------------------------- show


def test_show_gaussian_prints_values_and_facts() -> None:
    result = run("show", "gaussian:5")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "gaussian:5  5×5 kernel  built-in" in out
    assert "Gaussian blur 5×5, sigma 1.1" in out
    assert "cross-correlation (no flip)" in out
    assert "0.1366" in out  # centre tap
    assert "sum 1 · rank 1 (separable) · symmetric (rotational)" in out


def test_show_sobel_x_prints_the_signed_weights_and_factors() -> None:
    result = run("show", "sobel-x")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(line.split() == ["1", "-2", "0", "2"] for line in lines)  # row 1 of the heatmap
    assert "= [1, 2, 1]ᵀ × [-1, 0, 1]" in result.output
    assert "symmetric (up-down)" in result.output


def test_show_a_bank_has_one_panel_per_member() -> None:
    result = run("show", "kirsch")
    assert result.exit_code == 0
    for d in ("n", "ne", "e", "se", "s", "sw", "w", "nw"):
        assert f"kirsch-{d} " in result.output
    assert "bank of 8" in result.output


def test_show_a_layer_is_a_grid_of_in_out_slices() -> None:
    result = run("show", str(REPO / "kernels" / "rgb-layer.yaml"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2×3 × 3×3 layer" in out
    assert "in 0" in out and "in 2" in out and "out 0" in out and "out 1" in out
    assert "0.2990" in out
    assert "sum per output channel: 1, 0" in out
    assert "bias 0, 0.5" in out and "activation relu" in out


def test_show_a_yaml_name_from_a_kernel_dir_with_origin(tmp_path: Path) -> None:
    write(tmp_path, "corner.yaml", "weights: [[1, 2], [3, 4]]\norigin: [1, 0]\ncolour: red\n")
    result = run("show", "corner", "-K", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "origin row 1, col 0" in result.output
    assert "corner.yaml:3: warning: unknown key" in result.output
    assert "'colour'; ignored" in result.output


def test_show_unknown_kernel_raises_kernel_error() -> None:
    result = run("show", "gausian")
    assert isinstance(result.exception, KernelError)
    assert "did you mean 'gaussian'" in str(result.exception)


def test_show_bad_parameters_through_main_is_one_red_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", "kernels", "show", "gaussian:-3"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: gaussian: k must be a positive odd integer, got -3"


# --------------------------------------------------------------------------- validate


def test_validate_the_examples_exits_0_with_info_lines() -> None:
    result = run("validate", *map(str, EXAMPLES))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{REPO / 'kernels' / 'my-edge.yaml'}:5: info: my-edge: 3×3, sum 0, separable" in (
        result.output
    )
    assert all(": info: " in line for line in lines if line.startswith(str(REPO)))


def test_validate_an_error_exits_2_with_file_line_severity(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "weights: [[1, 2, 1]]\n")
    bad = write(
        tmp_path, "edge.yaml", "name: e\nnormalize: none\nweights:\n  - [1, 2, 3]\n  - [4, 5]\n"
    )
    result = run("validate", str(good), str(bad))
    assert result.exit_code == 2
    assert f"{bad}:5: error: weights row 2 has 2 numbers, row 1 has 3" in result.output.splitlines()
    assert f"{good}:1: info: good: 1×3, sum 4, separable (rank 1)" in result.output


def test_validate_warnings_exit_0_unless_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "even.yaml", "weights: [[1, 1], [1, 1]]\npadding: same\nweigth: 1\n")
    result = run("validate", str(path))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert f"{path}:3: warning: unknown key 'weigth' (did you mean 'weights'?); ignored" in lines
    assert any(line.startswith(f"{path}:2: warning: even-sized kernel (2×2)") for line in lines)
    assert run("validate", "--strict", str(path)).exit_code == 2


def test_validate_quiet_hides_info(tmp_path: Path) -> None:
    path = write(tmp_path, "k.yaml", "weights: [[1, 2, 1]]\n")
    result = run("validate", "-q", str(path))
    assert result.exit_code == 0
    assert "info" not in result.output


def test_validate_missing_file_is_an_error(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: error: no such file" in result.output


def test_validate_yaml_syntax_error_line(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "name: s\nweights: [[1, 2]\nscale: 2\n")
    result = run("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:3: error: invalid YAML: expected ',' or ']'" in result.output


# --------------------------------------------------------------------------- start-up cost


def test_importing_the_sub_app_does_not_import_numpy_or_rich() -> None:
    code = (
        "import sys, convcli.cli.kernels; "
        "print(sorted(m for m in ('numpy', 'yaml', 'convcli.kernels') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_findings_table_wraps_long_messages_within_the_width() -> None:
    import io

    from rich.console import Console

    from convcli.cli.kernels_view import findings_table
    from convcli.kernels import Finding

    long = "binomial-blur: 5×5, sum 1, separable (rank 1): " + ", ".join(["0.0625"] * 12)
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None).print(
        findings_table([Finding("info", long, "kernels/binomial-blur.yaml", 4)])
    )
    lines = buf.getvalue().splitlines()
    assert len(lines) > 1 and all(len(line) <= 100 for line in lines)
    assert lines[0].startswith("kernels/binomial-blur.yaml:4: info: binomial-blur")
    assert lines[1].startswith(" " * len("kernels/binomial-blur.yaml:4: info:"))
