"""Combining a bank (convcli.ops.combine, CombineStage, ``--combine``, ``combine:``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from convcli import conv2d
from convcli.cli import app
from convcli.errors import ParameterError, PipelineError, ShapeError
from convcli.imageio import load_image
from convcli.kernels import load_kernel
from convcli.ops.combine import combine
from convcli.pipeline import CombineStage, ConvStage, Pipeline, PoolStage, plan, run
from convcli.pipeline.yamlfile import load_pipeline
from convcli.vocab import CombineOp

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def ok(*args: Any) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args], env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def rgb(h: int = 12, w: int = 15, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, h, w)).astype(np.float32)


# --------------------------------------------------------------------------- the function


def test_bank_layout_is_member_major() -> None:
    """conv2d puts all channels of member 0 first: map k·C + c is member k on channel c."""
    x = rgb()
    k = load_kernel("sobel")
    y = conv2d(x, k)
    for member in range(2):
        for c in range(3):
            alone = conv2d(x[c : c + 1], k.weights[member])
            np.testing.assert_allclose(y[member * 3 + c], alone[0], atol=1e-6)


@pytest.mark.parametrize("op", CombineOp.choices())
def test_every_op_equals_numpy_over_the_bank_maps(op: str) -> None:
    x = rgb()
    bank = load_kernel("kirsch")  # 8 members
    y = conv2d(x, bank).astype(np.float64)
    per = y.reshape(8, 3, *y.shape[1:])  # [member][channel]
    want = {
        "magnitude": np.sqrt((per**2).sum(axis=0)),
        "max": per.max(axis=0),
        "min": per.min(axis=0),
        "mean": per.mean(axis=0),
        "sum": per.sum(axis=0),
    }[op]
    got = combine(y, 8, op)
    assert got.shape == (3, *y.shape[1:])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_sobel_magnitude_is_hypot_of_the_two_maps() -> None:
    x = rgb()[:1]
    gx, gy = conv2d(x, load_kernel("sobel-x")), conv2d(x, load_kernel("sobel-y"))
    y = combine(conv2d(x, load_kernel("sobel")), 2, "magnitude")
    np.testing.assert_allclose(y, np.hypot(gx, gy), rtol=1e-6)


def test_float32_stays_float32() -> None:
    assert combine(np.ones((4, 2, 2), np.float32), 2, "mean").dtype == np.float32


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((np.ones((4, 2, 2)), 2, "median"), ParameterError, "combine must be one of magnitude"),
        ((np.ones((5, 2, 2)), 2, "max"), ShapeError, "do not split"),
        ((np.ones((4, 2, 2)), 0, "max"), ParameterError, "members"),
        ((np.ones((4, 2)), 2, "max"), ShapeError, "stack"),
    ],
)
def test_bad_arguments(args: tuple, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        combine(*args)


# --------------------------------------------------------------------------- the stage


def test_stage_after_a_bank_on_an_image_gives_the_image_channels() -> None:
    image = load_image(SAMPLES / "coffee.jpg")
    p = Pipeline((ConvStage(load_kernel("sobel")), CombineStage("magnitude"),
                  PoolStage("max", 2)), name="")  # fmt: skip
    r = run(p, image)
    assert str(r.layout) == "image" and r.maps.shape[0] == 3
    c = r.records[1]
    assert (c.kind, c.geometry.in_shape[0], c.geometry.out_shape[0]) == ("combine", 6, 3)
    assert c.options == {"op": "magnitude", "members": 2}
    y = conv2d(image.array, load_kernel("sobel"))
    want = np.hypot(y[:3], y[3:])
    h, w = want.shape[1] // 2 * 2, want.shape[2] // 2 * 2
    pooled = want[:, :h, :w].reshape(3, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    np.testing.assert_allclose(r.maps, pooled, rtol=1e-5)


def test_stage_needs_a_bank_before_it() -> None:
    p = Pipeline((ConvStage(load_kernel("gaussian")), CombineStage("max")), name="")
    with pytest.raises(ShapeError, match="needs a bank"):
        plan(p, (3, 20, 20))


def test_stage_after_a_layer_reduces_all_its_maps() -> None:
    from convcli.kernels.model import Kernel

    layer = Kernel("l", np.random.default_rng(0).normal(size=(4, 3, 3, 3)))
    p = Pipeline((ConvStage(layer), CombineStage("max")), name="")
    r = plan(p, (3, 10, 10))
    assert r.out_shape == (1, 10, 10) and str(r.layout) == "image"


def test_bad_op_is_refused_by_validate() -> None:
    with pytest.raises(ParameterError, match="combine must be one of"):
        CombineStage("median").validate()


# --------------------------------------------------------------------------- CLI and YAML


def test_cli_sobel_magnitude_equals_numpy_hypot(tmp_path: Path) -> None:
    grey = np.random.default_rng(1).integers(0, 256, (24, 32), dtype=np.uint8)
    Image.fromarray(grey).save("g.png")
    ok("convolve", "g.png", "-k", "sobel", "--combine", "magnitude", "-o", "m.npy", "-q")
    ok("convolve", "g.png", "-k", "sobel", "-o", "xy.npy", "-q")
    xy = np.load("xy.npy").astype(np.float64)
    np.testing.assert_allclose(np.load("m.npy")[0], np.hypot(xy[0], xy[1]), rtol=1e-5, atol=1e-6)


def test_cli_kirsch_max_is_the_kirsch_edge_detector(tmp_path: Path) -> None:
    grey = np.random.default_rng(2).integers(0, 256, (20, 20), dtype=np.uint8)
    Image.fromarray(grey).save("g.png")
    result = ok("convolve", "g.png", "-k", "kirsch", "--combine", "max", "-o", "k.npy", "--json")
    x = np.pad(grey.astype(np.float64) / 255, 1, mode="reflect")
    # Kirsch: the eight 3x3 compass masks (5 on three neighbours, -3 on the other five)
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    responses = []
    for r in range(8):
        m = np.full((3, 3), -3.0)
        m[1, 1] = 0
        for i in range(3):
            m[ring[(r + i) % 8]] = 5
        responses.append(ndimage.correlate(x, m, mode="constant")[1:-1, 1:-1])
    np.testing.assert_allclose(np.load("k.npy")[0], np.max(responses, axis=0), atol=1e-5)
    r = json.loads(result.stdout)
    assert [s["kind"] for s in r["stages"]] == ["conv", "combine"]
    assert r["stages"][1]["in_shape"][0] == 8 and r["stages"][1]["out_shape"][0] == 1


def test_cli_report_shows_the_stage(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save("c.png")
    out = ok("convolve", "c.png", "-k", "sobel", "--combine", "magnitude", "--pool", "max").stdout
    assert "combine magnitude" in out and "3·2 maps → 3" in out
    assert "c.sobel-magnitude-maxpool.png" in out


def test_shape_command_shows_a_combine_stage_of_a_pipeline(tmp_path: Path) -> None:
    Path("p.yaml").write_text(
        "stages:\n  - conv: sobel\n  - combine: magnitude\n  - pool: max\n", encoding="utf-8"
    )
    out = ok("shape", "p.yaml", "--input", "3x32x32").stdout
    assert "combine magnitude" in out and "3·2 maps → 3" in out and "3×16×16" in out


def test_pipeline_yaml_combine_step(tmp_path: Path) -> None:
    Path("p.yaml").write_text(
        "stages:\n  - conv: kirsch\n  - combine: {op: max}\n", encoding="utf-8"
    )
    pipeline, _ = load_pipeline("p.yaml")
    assert isinstance(pipeline.stages[1], CombineStage) and pipeline.stages[1].op == "max"
    Path("q.yaml").write_text("stages:\n  - conv: sobel\n  - combine: median\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"q.yaml:3: stage 2 \(combine\): op must be one of"):
        load_pipeline("q.yaml")


def test_combine_without_a_bank_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from convcli.cli import main

    Image.fromarray(np.zeros((8, 8), np.uint8)).save("g.png")
    monkeypatch.setattr(sys, "argv", ["convcli", "convolve", "g.png", "-k", "box", "--combine",
                                      "max"])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "stage 2 (combine max): needs a bank before it" in " ".join(err.split())
    assert not Path("convcli-out").exists()


def test_shape_command_with_combine_option(tmp_path: Path) -> None:
    r = json.loads(
        ok("shape", "--input", "3x32x32", "-k", "sobel", "--combine", "magnitude", "--pool", "max",
           "--json").stdout
    )  # fmt: skip
    assert [s["kind"] for s in r["stages"]] == ["conv", "combine", "pool"]
    assert r["out_shape"] == [3, 16, 16]
