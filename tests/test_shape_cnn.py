"""Whole CNNs in ``convcli shape``: shape-only layers in pipeline files, ``--layer`` specs,
the shipped VGG-16, AlexNet and ResNet stem pipelines against their published figures, and
no silent last-one-wins for repeated options."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convcli.cli import app
from convcli.errors import ParameterError, PipelineError
from convcli.kernels.shapeonly import ShapeOnlyKernel, shape_only_kernel
from convcli.pipeline import ConvStage, Pipeline, plan
from convcli.pipeline.layers import parse_layer
from convcli.pipeline.yamlfile import read_pipeline

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / "kernels" / "pipelines"
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env=ENV)


def shape_json(*args: str) -> dict:
    result = invoke("shape", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def conv_macs(data: dict) -> int:
    return sum(s["macs"] for s in data["stages"] if s["kind"] == "conv")


# --------------------------------------------------------------------------- published figures

#: Multiply-adds of the fully connected layers that follow each trunk (weights only: one
#: multiply-add per weight), to compare with figures quoted for the whole network.
VGG16_FC_MACS = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
ALEXNET_FC_MACS = 9216 * 4096 + 4096 * 4096 + 4096 * 1000


def test_vgg16_trunk_matches_the_published_figures() -> None:
    """VGG-16 (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
    Recognition", ICLR 2015, table 1, configuration D): 13 conv 3×3 layers, 5 max pools.

    - weights: 14,714,688 — Keras ``VGG16(include_top=False).summary()`` "Total params:
      14,714,688"; equally torchvision's ``VGG16_Weights.IMAGENET1K_V1`` ``num_params``
      138,357,544 less its classifier (25088·4096+4096 + 4096·4096+4096 + 4096·1000+1000 =
      123,642,856).
    - output at 224×224: 512×7×7 (the paper's 7×7×512 before the FC layers).
    - multiply-adds: torchvision lists 15.47 GFLOPS (multiply-adds) for the whole model;
      the trunk's plus the FC layers' 123,633,664 gives 15.47 G.
    - receptive field 212 px at pool5 (Araujo, Norris & Sim, "Computing Receptive Fields of
      Convolutional Neural Networks", Distill 2019, table of models), effective stride 32.
    """
    data = shape_json(str(PIPELINES / "vgg16.yaml"), "--input", "3x224x224")
    assert data["total_params"] == 14_714_688
    assert data["out_shape"] == [512, 7, 7]
    convs = [s for s in data["stages"] if s["kind"] == "conv"]
    pools = [s for s in data["stages"] if s["kind"] == "pool"]
    assert len(convs) == 13 and len(pools) == 5
    assert [s["out_shape"][1] for s in pools] == [112, 56, 28, 14, 7]
    assert (conv_macs(data) + VGG16_FC_MACS) / 1e9 == pytest.approx(15.47, abs=0.005)
    last = data["stages"][-1]
    assert last["receptive_field"] == [212, 212] and last["effective_stride"] == [32, 32]


def test_alexnet_trunk_matches_the_published_figures() -> None:
    """AlexNet as torchvision builds it (``torchvision.models.alexnet``, after Krizhevsky,
    Sutskever & Hinton, NeurIPS 2012): conv 11/4 64, 5 192, 3 384, 3 256, 3 256; 3×3/2 pools.

    - weights: 2,469,696 — torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` ``num_params``
      61,100,840 less its classifier (9216·4096+4096 + 4096·4096+4096 + 4096·1000+1000 =
      58,631,144).
    - output at 224×224: 256×6×6 (torchvision's ``AdaptiveAvgPool2d((6, 6))`` is then a no-op).
    - multiply-adds: torchvision lists 0.71 GFLOPS for the whole model; trunk + FC = 0.714 G.
    - receptive field 195 px (Araujo et al., Distill 2019), effective stride 32.
    """
    data = shape_json(str(PIPELINES / "alexnet.yaml"), "--input", "3x224x224")
    assert data["total_params"] == 61_100_840 - 58_631_144 == 2_469_696
    assert data["out_shape"] == [256, 6, 6]
    assert [s["out_shape"] for s in data["stages"]][:2] == [[64, 55, 55], [64, 27, 27]]
    assert (conv_macs(data) + ALEXNET_FC_MACS) / 1e9 == pytest.approx(0.71, abs=0.005)
    last = data["stages"][-1]
    assert last["receptive_field"] == [195, 195] and last["effective_stride"] == [32, 32]


def test_resnet18_stem_matches_the_published_figures() -> None:
    """ResNet stem (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR
    2016, table 1): conv1 7×7, 64, stride 2 → 112×112; 3×3 max pool, stride 2 → 56×56.
    torchvision's ``resnet18().conv1`` is ``Conv2d(3, 64, 7, stride=2, padding=3,
    bias=False)``: 64·3·7·7 = 9,408 weights; 64·112·112·147 = 118,013,952 multiply-adds.
    """
    data = shape_json(str(PIPELINES / "resnet18-stem.yaml"), "--input", "3x224x224")
    assert [s["out_shape"] for s in data["stages"]] == [[64, 112, 112], [64, 56, 56]]
    assert data["total_params"] == 9_408
    assert conv_macs(data) == 118_013_952
    assert data["stages"][-1]["receptive_field"] == [11, 11]
    assert data["stages"][-1]["effective_stride"] == [4, 4]


def test_the_stem_as_layer_specs_equals_the_pipeline_file_and_the_single_layer_flags() -> None:
    spec = shape_json(
        "--input", "3x224x224", "--layer", "7,out=64,stride=2,padding=3,pool=max:3:2:1"
    )
    yaml = shape_json(str(PIPELINES / "resnet18-stem.yaml"), "--input", "3x224x224")
    flags = shape_json("--input", "3x224x224", "--kernel-size", "7", "--out-channels", "64",
                       "--stride", "2", "--padding", "3", "--pool", "max", "--pool-size", "3",
                       "--pool-stride", "2", "--pool-padding", "1")  # fmt: skip
    for key in ("out_shape", "total_params", "total_macs"):
        assert spec[key] == yaml[key] == flags[key], key


def test_vgg16_as_layer_specs() -> None:
    block = {64: 2, 128: 2, 256: 3, 512: 3}
    args: list[str] = []
    for c, n in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        assert n == block[c]
        args += ["--layer", f"3,out={c},padding=1,bias"] * (n - 1)
        args += ["--layer", f"3,out={c},padding=1,bias,pool=max"]
    data = shape_json("--input", "3x224x224", *args)
    assert data["total_params"] == 14_714_688 and data["out_shape"] == [512, 7, 7]


def test_the_vgg16_table_at_100_columns() -> None:
    result = invoke("shape", str(PIPELINES / "vgg16.yaml"), "--input", "3x224x224")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert any("conv 3×3 (layer 512×512×3×3)" in ln and "2,359,808" in ln for ln in lines)
    assert "total: 14,714,688 weights, 15.4 G multiply-adds; output 512×7×7;" in result.output
    assert "│ 18 │ max pool 2×2" in result.output  # one row per stage, the wide table
    assert "(zeros)" in result.output  # VGG pads with zeros


# --------------------------------------------------------------------------- shape-only stages


def test_shape_only_layers_take_their_input_channels_from_the_stage_before(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "p.yaml", """
        stages:
          - conv: {kernel: sobel}                      # 3 channels -> 6 maps
          - conv: {kernel_size: 3, out_channels: 8, bias: true}
          - conv: {kernel_size: [1, 5], out_channels: 4, groups: 2}
          - conv: {kernel_size: 3}                     # 2-D: one kernel per map
    """)  # fmt: skip
    result = read_pipeline(path).plan((3, 20, 20))
    g = [r.geometry for r in result.records]
    assert [x.out_shape[0] for x in g] == [6, 8, 4, 4]
    assert g[1].params == 8 * 6 * 9 + 8
    assert g[2].params == 4 * (8 // 2) * 5 and g[2].kernel_hw == (1, 5)
    assert g[3].params == 9
    assert "conv 3×3 (layer 8×6×3×3)" == result.records[1].description


def test_shape_only_kernels_cost_no_memory() -> None:
    k = shape_only_kernel((3, 3), out_channels=512).for_input(512)
    assert k.weights.shape == (512, 512, 3, 3)
    assert k.weights.strides == (0, 0, 0, 0) and not k.weights.flags.writeable
    assert isinstance(k, ShapeOnlyKernel) and not np.any(k.weights)


def test_run_refuses_a_shape_only_file_naming_stage_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "cnn.yaml", """
        name: cnn
        stages:
          - conv: {kernel: sobel-x}
          - conv: {kernel_size: 3, out_channels: 8}
    """)  # fmt: skip
    img = REPO / "samples" / "camera.png"
    code, _, err = main_exit(monkeypatch, capsys, "run", str(path), str(img), "-o", "out")
    assert code == 2
    assert err.startswith(f"error: {path}:4: stage 2 (conv 3×3): kernel_size gives a layer's shape")
    assert "no weights" in err and "convcli shape" in err
    assert not (tmp_path / "out").exists()
    code, _, err = main_exit(monkeypatch, capsys, "run", str(PIPELINES / "vgg16.yaml"), str(img))
    assert code == 2 and "vgg16.yaml:9: stage 1 (conv 3×3)" in err


def test_the_library_refuses_to_run_a_shape_only_stage() -> None:
    from convcli.imageio import load_image
    from convcli.pipeline import run

    p = Pipeline((ConvStage(shape_only_kernel((3, 3), out_channels=4)),), name="x")
    assert plan(p, (1, 8, 8)).out_shape == (4, 8, 8)
    image = load_image(REPO / "samples" / "camera.png", gray=True)
    with pytest.raises(ParameterError, match="has a size but no weights"):
        run(p, image)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("{kernel: sobel, kernel_size: 3}", "2: stage 1 (conv): kernel_size describes a layer"
         " without weights: give it instead of kernel, not with it"),
        ("{kernel_size: 3, groups: 2}", "stage 1 (conv): groups needs out_channels"),
        ("{kernel_size: 0, out_channels: 4}", "kernel_size must be >= 1"),
        ("{kernel_size: 3, out_channels: 0}", "out_channels must be >= 1"),
        ("{kernel_size: 3, out_channels: 6, groups: 4}", "groups=4 must divide the 6 output"),
        ("{kernel_size: 3, out_channels: 8, bias: maybe}", "bias"),
        ("{kernel_sizes: 3}", "unknown option 'kernel_sizes' (did you mean 'kernel_size'?)"),
        ("{out_channels: 8}", "conv needs a kernel"),
    ],
)  # fmt: skip
def test_shape_only_stage_errors(tmp_path: Path, stage: str, message: str) -> None:
    path = write(tmp_path, "p.yaml", f"stages:\n  - conv: {stage}\n")
    with pytest.raises(PipelineError) as info:
        read_pipeline(path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_groups_that_do_not_divide_the_incoming_maps_name_the_stage(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """
        stages:
          - conv: {kernel_size: 3, out_channels: 6}
          - conv: {kernel_size: 3, out_channels: 8, groups: 4}
    """)  # fmt: skip
    with pytest.raises(PipelineError, match=r"p.yaml:3: stage 2 \(conv 3×3\): groups=4 must"
                       r" divide the 6 input channels"):  # fmt: skip
        read_pipeline(path).plan((3, 16, 16))


# --------------------------------------------------------------------------- --layer specs


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("3", [("conv", None, (1, 1))]),
        ("3x5,out=16,stride=2x1,dilation=2", [("conv", 16, (2, 1))]),
        ("3,out=8,groups=2,padding=valid", [("conv", 8, (1, 1))]),
        ("pool=avg:3:2:1,ceil", [("pool", "avg", (2, 2))]),
        ("pool=global-avg", [("pool", "global-avg", None)]),
    ],
)
def test_layer_specs_parse(spec: str, want: list) -> None:
    stages = parse_layer(spec)
    got = []
    for s in stages:
        if isinstance(s, ConvStage):
            out = s.kernel.out_channels if isinstance(s.kernel, ShapeOnlyKernel) else None
            got.append(("conv", out, s.options()["stride"] if s.stride else (1, 1)))
        else:
            got.append(("pool", s.op, s.stride))
    assert got == want


def test_a_layer_spec_pool_has_its_options() -> None:
    (pool,) = parse_layer("pool=avg:3:2:1,ceil")
    assert (pool.size, pool.stride, pool.ceil_mode) == ((3, 3), (2, 2), True)
    assert pool.padding == (1, 1, 1, 1)
    conv, pool = parse_layer("3x5,out=4,padding=1x2,bias,pool=max:2x1")
    assert conv.padding == (1, 1, 2, 2) and conv.bias is True and pool.size == (2, 1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("3,outs=8", "unknown item 'outs' (did you mean 'out'?)"),
        ("3,out=8,out=9", "out is given twice"),
        ("3,out=x", "out must be a whole number, got 'x'"),
        ("3,out=0", "out must be >= 1"),
        ("0", "kernel size must be >= 1, got 0"),
        ("3,groups=2", "groups needs out=N"),
        ("3,bias=1", "bias takes no value"),
        ("3,stride=", "stride needs a value"),
        ("3,pool=maxx", "maxx"),
        ("3,pool=max:2:2:1:9", "pool is OP[:SIZE[:STRIDE[:PAD]]]"),
        ("pool=max,out=3", "out belongs to a conv layer"),
        ("3,ceil", "ceil goes with pool="),
        ("3,,out=2", "empty item"),
        ("3,padding=nope", "padding"),
        ("3,out=6,groups=4", "groups=4 must divide the 6 output channels"),
    ],
)
def test_bad_layer_specs_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    with pytest.raises(ParameterError, match=f"^--layer '{spec}'"):
        parse_layer(spec)
    code, out, err = main_exit(monkeypatch, capsys, "shape", "--input", "3x32x32", "--layer", spec)
    assert code == 2 and out == ""
    assert message in err and f"--layer '{spec}'" in err
    assert len(err.strip().splitlines()) == 1


def test_layer_specs_do_not_mix_with_single_layer_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = main_exit(monkeypatch, capsys, "shape", "--input", "3x32x32",
                             "--layer", "3,out=8", "--stride", "2", "--pool", "max")  # fmt: skip
    assert code == 2
    assert "--stride, --pool cannot be added to them" in err
    code, _, err = main_exit(monkeypatch, capsys, "shape", str(PIPELINES / "vgg16.yaml"),
                             "--input", "3x32x32", "--layer", "3")  # fmt: skip
    assert code == 2 and "a pipeline file cannot be added" in err


def test_a_layer_that_does_not_fit_names_its_stage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = main_exit(monkeypatch, capsys, "shape", "--input", "3x8x8",
                             "--layer", "3,out=4,padding=valid,pool=max",
                             "--layer", "5,out=4,padding=valid")  # fmt: skip
    assert code == 2
    assert "stage 3 (conv 5×5): kernel 5×5" in err and "coming from stage 2: 4×3×3" in err


# --------------------------------------------------------------------------- repeated options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("shape", "--input", "3x224x224", "--kernel-size", "3", "--out-channels", "32",
          "--kernel-size", "3", "--out-channels", "64"),
         "--kernel-size is given 2 times but takes one value; for several layers give one"
         " --layer spec each"),
        (("shape", "--input", "3x9x9", "--input", "3x8x8", "--kernel-size", "3"),
         "--input is given 2 times"),
        (("convolve", "x.png", "-k", "sobel", "--stride", "2", "--stride", "3"),
         "--stride is given 2 times but takes one value; give it once"),
        (("explain", "--pool", "max", "--pool", "avg"), "--pool is given 2 times"),
    ],
)  # fmt: skip
def test_a_repeated_single_valued_option_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple, message: str
) -> None:
    code, out, err = main_exit(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert message in err


def test_repeatable_options_and_flags_still_repeat(tmp_path: Path) -> None:
    bank = shape_json("--input", "1x16x16", "-k", "sobel-x", "-k", "sobel-y")
    assert bank["out_shape"] == [2, 16, 16]
    result = invoke("shape", "--input", "1x16x16", "-k", "box", "--json", "--json")
    assert result.exit_code == 0, result.output
