"""One vocabulary: a word the tool accepts in one place is accepted everywhere, and the
mistakes that used to get different answers in different places now get one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli import conv2d, pool2d
from convcli.cli import app
from convcli.errors import ParameterError, ShapeError
from convcli.vocab import Activation, Format, PadMode, PoolOp, parse_activation

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


@pytest.fixture
def img(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(path)
    return path


def invoke(*args: object):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def test_spellings_parse_to_one_word() -> None:
    assert parse_activation("leaky_relu:0.2") == (Activation.leaky_relu, 0.2)
    assert parse_activation("LeakyReLU") == (Activation.leaky_relu, 0.01)
    assert Format.parse("TIF") is Format.tiff and Format.of_extension(".tif") is Format.tiff
    assert PadMode.parse("Circular") is PadMode.circular
    assert PoolOp.parse("global_avg") is PoolOp.global_avg
    with pytest.raises(ParameterError, match="pad mode must be one of .*got 'mirror'"):
        PadMode.parse("mirror")


def test_leaky_relu_spelling_works_in_a_kernel_file_as_on_the_command_line(
    tmp_path: Path, img: Path
) -> None:
    k = tmp_path / "k.yaml"
    k.write_text("weights: [[1, 0, -1]]\nactivation: leaky_relu:0.5\n")
    a = invoke("convolve", img, "-k", k, "-o", tmp_path / "a.npy")
    b = invoke("convolve", img, "-k", k, "--activation", "leaky_relu:0.5", "-o", tmp_path / "b.npy")
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert np.load(tmp_path / "a.npy").min() < 0  # the slope kept the negative side


def test_format_tif_is_accepted_on_the_command_line_as_in_a_pipeline(
    tmp_path: Path, img: Path
) -> None:
    result = invoke("convolve", img, "-k", "box", "--format", "tif", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["in.box.tif"]


def test_unknown_key_in_a_kernel_file_is_a_warning_when_it_runs(tmp_path: Path, img: Path) -> None:
    k = tmp_path / "k.yaml"
    k.write_text("weights: [[1, 1], [1, 1]]\nstrde: 2\n")
    result = CliRunner().invoke(
        app, ["convolve", str(img), "-k", str(k), "-o", str(tmp_path / "o.npy")], env=ENV
    )
    assert result.exit_code == 0
    assert "warning:" in result.output and "unknown key 'strde'" in result.output
    assert "did you mean 'stride'" in result.output
    shape = CliRunner().invoke(app, ["shape", "--input", "8x8", "-k", str(k)], env=ENV)
    assert shape.exit_code == 0
    assert "unknown key 'strde'" in shape.output


def test_a_bank_to_one_file_is_a_usage_error_before_any_work(tmp_path: Path, img: Path) -> None:
    result = invoke("convolve", img, "-k", "sobel", "-o", tmp_path / "edges.png")
    assert isinstance(result.exception, ParameterError)  # main() exits 2 with its message
    assert result.exception.exit_code == 2
    assert "writes 2 maps" in str(result.exception)
    assert not (tmp_path / "edges.png").exists()


@pytest.mark.parametrize("pad_mode", ["zeros", "constant", "reflect", "circular"])
def test_empty_input_is_convclis_own_error(pad_mode: str) -> None:
    for shape in ((0, 5), (5, 0), (1, 0, 5)):
        with pytest.raises(ShapeError, match="image is empty"):
            conv2d(np.zeros(shape), np.ones((3, 3)), padding=(2, 2, 1, 1), pad_mode=pad_mode)
        with pytest.raises(ShapeError, match="image is empty"):
            conv2d(np.zeros(shape), np.ones((3, 3)), padding="same", pad_mode=pad_mode)
        with pytest.raises(ShapeError, match="non-empty"):
            pool2d(np.zeros(shape), "max", size=2)


def test_pool_padding_error_names_the_sides_that_are_too_wide() -> None:
    with pytest.raises(ParameterError, match=r"pool padding \(bottom 2\) must be at most half"):
        pool2d(np.zeros((6, 6)), "max", size=3, stride=1, padding=(0, 2, 0, 0))
