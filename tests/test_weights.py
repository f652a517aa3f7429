"""``-k`` from trained networks' files: .npy, .npz, .safetensors, .onnx (convcli.kernels.weights).

Every convolution is checked against onnxruntime running the same weights as an
ONNX Conv node; the filter grid picture (``kernels show --png``) against known
pixels. Models are built here with ``onnx.helper`` and random weights.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.errors import KernelError
from convcli.imageio import read_image
from convcli.imageio.filtergrid import filter_grid, grid_layout
from convcli.kernels import load_kernel
from convcli.kernels.weights import load_weights_kernel, split_weights_spec
from convcli.ops.conv import conv2d

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
st_numpy = pytest.importorskip("safetensors.numpy")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx_builders import GraphBuilder, run_ort  # noqa: E402

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
TOL = 1e-5  # float32 sums of a few hundred products, values of order 1

#: Conv nodes of the test model (all read the input x), and the same attributes as
#: command-line options for the formats that carry none (npy, npz, safetensors).
CONVS = {
    # 6×3×5×4 (even width), stride 2,1, pads (ONNX t,l,b,r) 1,2,0,1, dilation 1,2, bias
    "conv1": (
        dict(c_out=6, k=(5, 4), group=1, bias=True,
             attrs=dict(strides=[2, 1], pads=[1, 2, 0, 1], dilations=[1, 2])),
        ["--stride", "2,1", "--padding", "1,0,2,1", "--dilation", "1,2"],
    ),
    # grouped 6×1×3×3, groups 3, SAME_UPPER, stride 2
    "conv2": (
        dict(c_out=6, k=3, group=3, bias=True, attrs=dict(strides=[2, 2], auto_pad="SAME_UPPER")),
        ["--stride", "2", "--padding", "same", "--groups", "3"],
    ),
    # 4×3×4×4, SAME_LOWER (odd total padding: the extra pixel top/left), stride 2, no bias
    "conv3": (
        dict(c_out=4, k=4, group=1, bias=False, attrs=dict(strides=[2, 2], auto_pad="SAME_LOWER")),
        ["--stride", "2", "--padding", "same-lower"],
    ),
    # 5×3×3×3 dilation 2, VALID
    "conv4": (
        dict(c_out=5, k=3, group=1, bias=True, attrs=dict(dilations=[2, 2], auto_pad="VALID")),
        ["--dilation", "2", "--padding", "valid"],
    ),
}  # fmt: skip


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(*args: object):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:  # noqa: ANN001
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An RGB image, the ONNX model with four Conv nodes, and its weights as npz / safetensors."""
    d = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(15)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(d / "img.png")
    g = GraphBuilder(channels=3, seed=3)
    outputs = []
    for name, (spec, _) in CONVS.items():
        g.last = "x"
        outputs.append(
            g.conv(name, spec["c_out"], spec["k"], c_in=3, group=spec["group"],
                   bias=spec["bias"], **spec["attrs"])
        )  # fmt: skip
    model = g.model(outputs=tuple(outputs[:-1]))
    onnx.save(model, str(d / "model.onnx"))
    np.savez(d / "w.npz", **g.weights)
    st_numpy.save_file(dict(g.weights), str(d / "w.safetensors"))
    for name in CONVS:
        np.save(d / f"{name}.npy", g.weights[f"{name}.weight"])
    return {"dir": d, "img": d / "img.png", "onnx": d / "model.onnx", "model": model, **{
        k: d / f"w.{k}" for k in ("npz", "safetensors")}}  # fmt: skip


def reference(files: dict, name: str) -> np.ndarray:
    x = read_image(files["img"])
    return run_ort(files["model"], x, f"{name}_out")


def run_npy(tmp_path: Path, *args: object) -> np.ndarray:
    out = tmp_path / "out.npy"
    result = invoke("convolve", *args, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    return np.load(out)


# --------------------------------------------------------------------------- numbers vs ORT


@pytest.mark.parametrize("name", list(CONVS))
def test_onnx_node_defaults_match_onnxruntime(files: dict, tmp_path: Path, name: str) -> None:
    """-k model.onnx:NODE with no layer option: stride, pads, auto_pad, dilation, group, bias
    and zero padding all come from the node."""
    got = run_npy(tmp_path, files["img"], "-k", f"{files['onnx']}:{name}")
    ref = reference(files, name)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < TOL


@pytest.mark.parametrize("name", list(CONVS))
def test_onnx_initializer_is_read_as_its_conv_node(files: dict, tmp_path: Path, name: str) -> None:
    got = run_npy(tmp_path, files["img"], "-k", f"{files['onnx']}:{name}.weight")
    assert np.abs(got - reference(files, name)).max() < TOL


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
@pytest.mark.parametrize("name", list(CONVS))
def test_named_tensor_with_bias_beside_it(files: dict, tmp_path: Path, name: str, fmt: str) -> None:
    """FILE:conv1.weight takes conv1.bias from the same file; the layer options are given."""
    options = CONVS[name][1]
    spec = f"{files[fmt]}:{name}.weight"
    got = run_npy(tmp_path, files["img"], "-k", spec, *options, "--pad-mode", "zeros")
    assert np.abs(got - reference(files, name)).max() < TOL
    assert load_kernel(spec).bias == (
        tuple(float(b) for b in np.load(files["npz"])[f"{name}.bias"])
        if CONVS[name][0]["bias"]
        else None
    )


@pytest.mark.parametrize("name", list(CONVS))
def test_npy_whole_array_with_bias_option(files: dict, tmp_path: Path, name: str) -> None:
    options = list(CONVS[name][1])
    if CONVS[name][0]["bias"]:
        bias = np.load(files["npz"])[f"{name}.bias"]
        options += ["--bias", ",".join(repr(float(b)) for b in bias)]
    npy = files["dir"] / f"{name}.npy"
    got = run_npy(tmp_path, files["img"], "-k", npy, *options, "--pad-mode", "zeros")
    assert np.abs(got - reference(files, name)).max() < TOL


def test_first_conv_when_no_name(files: dict, tmp_path: Path) -> None:
    got = run_npy(tmp_path, files["img"], "-k", files["onnx"])
    assert np.abs(got - reference(files, "conv1")).max() < TOL


def test_command_line_options_win_over_the_node(files: dict, tmp_path: Path) -> None:
    spec = f"{files['onnx']}:conv1"
    got = run_npy(
        tmp_path, files["img"], "-k", spec, "--stride", "1", "--padding", "same",
        "--pad-mode", "reflect", "--bias", "0",
    )  # fmt: skip
    k = load_kernel(spec)
    x = read_image(files["img"])
    want = conv2d(
        x, k.weights, stride=1, padding="same", pad_mode="reflect", dilation=(1, 2), bias=0.0
    )
    assert got.shape == want.shape == (6, 37, 53)
    assert np.abs(got - want).max() < TOL


def test_two_d_kernel_and_bank_match_a_depthwise_onnx_conv(tmp_path: Path) -> None:
    """A 2-D tensor filters each channel; a 3-D one is a bank, outputs kernel-major."""
    rng = np.random.default_rng(7)
    bank = rng.normal(size=(2, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "k.npz", one=bank[0], bank=bank)
    Image.fromarray(rng.integers(0, 256, (20, 25, 3), dtype=np.uint8)).save(tmp_path / "i.png")
    x = read_image(tmp_path / "i.png")
    # onnxruntime: a depthwise conv, group 3, two filters per channel (channel-major)
    g = GraphBuilder(channels=3)
    w = np.stack([bank[k] for c in range(3) for k in range(2)])[:, None]
    g.node("Conv", "dw", g.const("w", w), group=3, pads=[1, 1, 1, 1])
    ref = run_ort(g.model(), x)  # (6, H, W): channel c, kernel k at 2c + k
    kernel_major = ref.reshape(3, 2, *ref.shape[1:]).transpose(1, 0, 2, 3).reshape(ref.shape)
    opts = ("--padding", "1", "--pad-mode", "zeros")
    got_bank = run_npy(tmp_path, "i.png", "-k", "k.npz:bank", *opts)
    assert np.abs(got_bank - kernel_major).max() < TOL
    got_one = run_npy(tmp_path, "i.png", "-k", "k.npz:one", *opts)
    assert np.abs(got_one - ref[0::2]).max() < TOL


# --------------------------------------------------------------------------- the Kernel


def test_onnx_kernel_carries_the_node_attributes(files: dict) -> None:
    k = load_weights_kernel(f"{files['onnx']}:conv1")
    assert (k.stride, k.padding, k.dilation, k.groups, k.pad_mode) == (
        (2, 1), (1, 0, 2, 1), (1, 2), 1, "zeros"
    )  # fmt: skip  # ONNX pads t,l,b,r = 1,2,0,1 → convcli t,b,l,r = 1,0,2,1
    assert k.kind == "layer" and k.shape == (6, 3, 5, 4) and len(k.bias) == 6
    k2 = load_weights_kernel(f"{files['onnx']}:conv2")
    assert (k2.padding, k2.groups) == ("same", 3)
    assert load_weights_kernel(f"{files['onnx']}:conv3").padding == "same-lower"
    assert load_weights_kernel(f"{files['onnx']}:conv4").padding == "valid"


def test_split_spec_prefers_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "a:b.npy").write_bytes(b"")
    assert split_weights_spec("a:b.npy") == (Path("a:b.npy"), None)
    assert split_weights_spec("m.onnx:dense/kernel:0") == (Path("m.onnx"), "dense/kernel:0")
    assert split_weights_spec("sobel") is None


def test_plain_initializer_and_its_bias(tmp_path: Path) -> None:
    """An initializer no Conv uses is read as it is, with ``...bias`` beside ``...weight``."""
    g = GraphBuilder(channels=3)
    g.const("head.weight", np.ones((2, 3, 1, 1)))  # stored, used by no node
    g.const("head.bias", [0.25, -0.5])
    g.node("Mul", "m", g.const("s", [2.0]))
    onnx.save(g.model(), str(tmp_path / "m.onnx"))
    k = load_weights_kernel(f"{tmp_path}/m.onnx:head.weight")
    assert k.shape == (2, 3, 1, 1) and k.bias == (0.25, -0.5)
    assert k.groups is None and k.pad_mode is None and k.stride is None  # no node: no defaults


# --------------------------------------------------------------------------- bad files


def _bad_cases(d: Path, files: dict) -> list[tuple[str, str]]:
    (d / "text.onnx").write_text("hello, not a model\n")
    (d / "text.npy").write_text("hello\n")
    (d / "text.npz").write_text("hello\n")
    (d / "text.safetensors").write_text("hello, not a safetensors file at all\n")
    np.save(d / "five.npy", np.zeros((1, 1, 1, 2, 2)))
    np.savez(d / "obj.npz", w=np.array(["a", "b"]))
    # a Conv node with an attribute convcli does not know, a 1-D conv, computed weights
    g = GraphBuilder(channels=3)
    g.conv("odd", 2, 3, c_in=3)
    g.nodes[-1].attribute.append(helper.make_attribute("frobnicate", 1))
    onnx.save(g.model(), str(d / "odd.onnx"))
    x1 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "W"])
    y1 = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w1 = numpy_helper.from_array(np.ones((2, 3, 3), np.float32), "w")
    conv1d = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c1d")], "g", [x1], [y1], [w1]
    )
    onnx.save(helper.make_model(conv1d, opset_imports=[helper.make_opsetid("", 17)]),
              str(d / "conv1d.onnx"))  # fmt: skip
    g = GraphBuilder(channels=3)
    g.nodes.append(helper.make_node("Identity", [g.const("w0", np.ones((2, 3, 3, 3)))], ["w1"]))
    g.node("Conv", "late", "w1")
    onnx.save(g.model(), str(d / "computed.onnx"))
    g = GraphBuilder(channels=3)
    g.node("Relu", "r")
    onnx.save(g.model(), str(d / "noconv.onnx"))
    g = GraphBuilder(channels=3)
    g.conv("c", 2, 3, c_in=3)
    onnx.save(g.model(opset=6), str(d / "old.onnx"))
    m = files["onnx"]
    return [
        (f"{d}/text.onnx", "text.onnx: not an ONNX model ("),
        (f"{d}/text.npy", "text.npy: not a .npy file ("),
        (f"{d}/text.npz", "text.npz: not an .npz archive ("),
        (f"{d}/text.safetensors", "text.safetensors: not a safetensors file ("),
        (f"{d}/missing.onnx:conv1", "missing.onnx: no such file"),
        (f"{d}/five.npy", "five.npy: array of five.npy is 5-D (shape 1×1×1×2×2); a kernel is"),
        (f"{files['npz']}:conv1.bias", "is 1-D (shape 6)"),
        (f"{files['npz']}:conv1.wieght", "no array 'conv1.wieght' (did you mean 'conv1.weight'?)"),
        (f"{files['npz']}", "holds 7 arrays; name one with"),
        (
            f"{files['safetensors']}:conv5.weight",
            "no tensor 'conv5.weight' (did you mean 'conv1.weight', 'conv2.weight' or",
        ),
        (f"{d}/obj.npz:w", "obj.npz: array 'w' of obj.npz holds <U1 values, not real numbers"),
        (f"{m}:conv9", "no Conv node or initializer 'conv9' (did you mean"),
        (f"{m}:conv", "its Conv nodes: conv1, conv2, conv3, conv4"),
        (f"{d}/odd.onnx", "Conv node 'odd' has attribute 'frobnicate', which convcli does not"),
        (f"{d}/conv1d.onnx", "Conv node 'c1d' is a 1-D convolution (weights 2×3×3)"),
        (f"{d}/computed.onnx", "its weights 'w1' are computed by node 'Identity -> w1'"),
        (f"{d}/noconv.onnx", "noconv.onnx: has no Conv node"),
        (f"{d}/old.onnx", "old.onnx: ONNX opset 6 is not supported (convcli reads opset 7 and"),
        (f"{files['npz']}:", "nothing after ':'"),
    ]


def test_bad_files_exit_2_with_one_line_and_write_nothing(
    files: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    cases = _bad_cases(tmp_path, files)
    before = sorted(p.name for p in tmp_path.iterdir())
    for spec, expected in cases:
        code, err = main_exit(
            monkeypatch, capsys, "convolve", str(files["img"]), "-k", spec, "-o", "out"
        )
        assert code == 2, (spec, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (spec, err)
        assert expected in lines[0], (spec, lines[0])
        assert "Traceback" not in err
        with pytest.raises(KernelError):
            load_kernel(spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/ folder, no file


@pytest.mark.parametrize(("module", "suffix"), [("onnx", "onnx"), ("safetensors", "safetensors")])
def test_missing_extra_names_the_pip_command(
    files: dict, monkeypatch: pytest.MonkeyPatch, capsys, module: str, suffix: str
) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    spec = str(files["onnx"] if suffix == "onnx" else f"{files['safetensors']}:conv1.weight")
    code, err = main_exit(monkeypatch, capsys, "kernels", "show", spec)
    assert code == 2
    assert f"reading .{suffix} files needs the '{module}' package:" in err
    assert "pip install 'convcli[models]'" in err and len(err.strip().splitlines()) == 1


def test_plain_convcli_does_not_import_the_extras() -> None:
    import subprocess

    code = (
        "import sys, convcli.cli, convcli.kernels; convcli.kernels.load_kernel('sobel');"
        "print(sorted(m for m in ('onnx', 'safetensors', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- filter grid


def test_filter_grid_rgb_tiles_known_pixels() -> None:
    w = np.zeros((5, 3, 2, 2))
    w[0, 0, 0, 0] = 2.0  # filter 0: one red weight (its own max: full red)
    w[0, 2, 1, 1] = -1.0  # and half-strength negative blue
    w[4, 1] = 0.5  # filter 4: all green
    px = filter_grid(w, zoom=3, gap=1)
    layout = grid_layout(w.shape, zoom=3, gap=1)
    assert (layout.mode, layout.rows, layout.columns) == ("rgb", 2, 3)
    assert px.shape == (3, *layout.size) == (3, 2 * 6 + 3, 3 * 6 + 4)
    assert px.dtype == np.uint8
    tile0 = px[:, 1:7, 1:7]
    assert tile0[:, 0, 0].tolist() == [255, 128, 128]  # +max red
    assert tile0[:, 5, 5].tolist() == [128, 128, 64]  # -max/2 blue: 128 - 63.75 → 64
    assert tile0[:, 2, 2].tolist() == [255, 128, 128]  # nearest-neighbour: 3×3 blocks
    assert tile0[:, 3, 3].tolist() == [128, 128, 64]
    assert tile0[:, 0, 5].tolist() == [128, 128, 128]  # zero weights are mid-grey
    tile4 = px[:, 8:14, 8:14]  # row 1, column 1
    assert np.all(tile4[1] == 255) and np.all(tile4[0] == 128)
    assert np.all(px[:, 0] == 255) and np.all(px[:, :, 7] == 255)  # white gaps
    assert np.all(px[:, 8:14, 15:21] == 255)  # no sixth filter: background


def test_filter_grid_layer_scale_and_slices() -> None:
    w = np.zeros((2, 4, 1, 1))
    w[0, 0] = 1.0
    w[1, 3] = 0.25
    per_filter = filter_grid(w, zoom=1, gap=0)
    shared = filter_grid(w, scale="layer", zoom=1, gap=0)
    assert per_filter.shape == (1, 2, 4)  # one row per filter, one tile per input channel
    assert per_filter[0].tolist() == [[255, 128, 128, 128], [128, 128, 128, 255]]
    assert shared[0].tolist() == [[255, 128, 128, 128], [128, 128, 128, 160]]
    grey = filter_grid(np.ones((3, 2, 2)), zoom=2, gap=1)  # a bank: 2×2 grid of grey tiles
    assert grey.shape == (1, 2 * 4 + 3, 2 * 4 + 3) and grey[0, 1, 1] == 255


def test_kernels_show_png(files: dict, tmp_path: Path) -> None:
    result = invoke("kernels", "show", f"{files['onnx']}:conv1", "--png", "conv1.png")
    assert result.exit_code == 0, result.output
    assert (
        "wrote conv1.png: 6 filters as RGB tiles, 2×3 grid, 5×4 weights shown ×10" in result.output
    )
    assert "stride 2,1" in result.output and "groups 1" in result.output
    with Image.open("conv1.png") as im:
        assert im.mode == "RGB" and im.size == (3 * 40 + 4 * 2, 2 * 50 + 3 * 2)
        pic = np.moveaxis(np.asarray(im), -1, 0)
    w = load_kernel(f"{files['onnx']}:conv1").weights
    assert np.array_equal(pic, filter_grid(w))
    # each filter at full contrast: its largest |w| is 0 or 255 in some channel
    for n in range(6):
        r, c = divmod(n, 3)
        tile = pic[:, 2 + r * 52 : 2 + r * 52 + 50, 2 + c * 42 : 2 + c * 42 + 40]
        assert tile.min() == 0 or tile.max() == 255
    assert invoke("kernels", "show", files["onnx"], "--png", "conv1.png", "--force").exit_code == 0


def test_kernels_show_refuses_existing_or_non_png(
    files: dict, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    Path("old.png").write_bytes(b"keep")
    code, err = main_exit(
        monkeypatch, capsys, "kernels", "show", str(files["onnx"]), "--png", "old.png"
    )
    assert code == 1 and "old.png exists (use --force" in err
    assert Path("old.png").read_bytes() == b"keep"
    code, err = main_exit(
        monkeypatch, capsys, "kernels", "show", str(files["onnx"]), "--png", "x.txt"
    )
    assert code == 2 and "x.txt: the picture is written as png; name a .png file" in err
    assert not Path("x.txt").exists()


def test_kernels_show_many_slices_without_png(tmp_path: Path) -> None:
    np.save("big.npy", np.random.default_rng(0).normal(size=(32, 3, 3, 3)))
    result = invoke("kernels", "show", "big.npy")
    assert result.exit_code == 0, result.output
    assert "96 2-D slices: too many to print as numbers; --png FILE draws them" in result.output


def test_bfloat16_safetensors_are_read_as_float(tmp_path: Path) -> None:
    """bf16 checkpoints are common; ml_dtypes (an onnx dependency) lets numpy hold them."""
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}})
    data = struct.pack("<4H", 0x3F80, 0xC000, 0x3F00, 0x0000)  # 1, -2, 0.5, 0
    Path("bf.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode() + data)
    k = load_kernel("bf.safetensors:w")
    assert k.weights.tolist() == [[1.0, -2.0], [0.5, 0.0]]
