"""ONNX models as pipelines (convcli.pipeline.onnx): ``convcli run`` and ``shape`` on model.onnx.

Every stage's maps are checked against onnxruntime's value of the ONNX tensor the
stage stands for. Models are built with ``onnx.helper`` and random weights.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.errors import KernelError
from convcli.imageio import ImageData, read_image
from convcli.pipeline import IMAGENET_MEAN_STD, ConvStage, PoolStage, run

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402
from onnx_builders import GraphBuilder, full_chain, run_ort  # noqa: E402

from convcli.pipeline.onnx import pipeline_from_onnx  # noqa: E402

ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
TOL = 1e-5
REPO = Path(__file__).resolve().parents[1]
TINY_CNN = REPO / "docs" / "models" / "tiny-cnn.onnx"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(*args: object):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:  # noqa: ANN001
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def rgb(x: np.ndarray) -> ImageData:
    return ImageData(np.asarray(x, np.float32), "RGB", "RGB", 8, "x")


def save(g: GraphBuilder, name: str = "m.onnx") -> Path:
    path = Path(name).resolve()
    onnx.save(g.model(), str(path))
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("chain")
    g = full_chain(seed=4)
    model = g.model()
    onnx.save(model, str(d / "chain.onnx"))
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (57, 83, 3), dtype=np.uint8)).save(d / "photo.png")
    return {"path": d / "chain.onnx", "model": model, "photo": d / "photo.png"}


# --------------------------------------------------------------------------- the library


def test_full_chain_stages_and_where_it_stops(chain: dict) -> None:
    mp = pipeline_from_onnx(chain["path"])
    kinds = [(s.kind, s.name) for s in mp.pipeline.stages]
    assert kinds == [
        ("conv", "conv1+bn1+relu1"), ("pool", "maxpool"), ("conv", "conv2+lrelu2"),
        ("conv", "conv3+bn3+add3+tanh3"), ("conv", "add4"), ("pool", "avgpool"),
        ("conv", "conv4+sig4"), ("pool", "global-avg"),
    ]  # fmt: skip
    assert [s.nodes for s in mp.sources][3] == ("conv3", "bn3", "add3", "tanh3")
    assert mp.output == "gap_out"
    assert mp.stop is not None and (mp.stop.node, mp.stop.op_type) == ("flat", "Flatten")
    assert "not one of the ops convcli runs" in mp.stop.reason
    assert (mp.nodes_used, mp.nodes_total) == (15, 17)
    s = mp.pipeline.stages
    assert isinstance(s[5], PoolStage) and s[5].ceil_mode and not s[5].count_include_pad
    assert isinstance(s[1], PoolStage) and s[1].stride == (2, 2)
    assert isinstance(s[2], ConvStage) and s[2].options()["activation"] == "leaky-relu:0.2"
    assert s[2].options()["padding"] == "same" and s[2].options()["groups"] == 2
    assert s[6].options()["padding"] == "same-lower"  # type: ignore[union-attr]
    assert all(st.options()["pad_mode"] == "zeros" for st in s if isinstance(st, ConvStage))
    assert mp.pipeline.notes == (mp.summary(),)
    assert "stopped before node 'flat' (Flatten)" in mp.summary()


@pytest.mark.parametrize("hw", [(57, 83), (64, 64), (33, 20)])
def test_every_stage_matches_onnxruntime(chain: dict, hw: tuple[int, int]) -> None:
    mp = pipeline_from_onnx(chain["path"])
    x = np.random.default_rng(hw[0]).random((3, *hw)).astype(np.float32)
    result = run(mp.pipeline, rgb(x), keep_stages=True)
    for record, source in zip(result.records, mp.sources, strict=True):
        want = run_ort(chain["model"], x, source.output)
        assert record.maps is not None and record.maps.shape == want.shape, source
        assert np.abs(record.maps - want).max() < TOL * max(1.0, np.abs(want).max()), source


def _pool_cases() -> list[tuple]:
    cases = []
    for op, k, s, pads, ceil, cip in itertools.product(
        ["MaxPool", "AveragePool"], [(2, 2), (3, 3), (2, 3)], [1, 2, 3],
        ["none", (1, 1, 1, 1), (0, 1, 1, 0), "SAME_UPPER", "SAME_LOWER", "VALID"], [0, 1], [0, 1],
    ):  # fmt: skip
        if op == "MaxPool" and cip:
            continue
        if isinstance(pads, str) and pads.startswith("SAME") and s > min(k):
            continue  # onnxruntime rejects these (negative padding)
        cases.append((op, k, s, pads, ceil, cip))
    return cases


def test_pooling_grid_matches_onnxruntime() -> None:
    """Max/avg pools × windows × strides × explicit, asymmetric and auto padding × ceil mode ×
    count_include_pad, on odd and even sizes: ONNX's rules, defaults (stride 1,
    count_include_pad 0) and SAME_LOWER included."""
    n = 0
    for op, k, s, pads, ceil, cip in _pool_cases():
        attrs = dict(kernel_shape=list(k), strides=[s, s], ceil_mode=ceil)
        if op == "AveragePool":
            attrs["count_include_pad"] = cip
        if isinstance(pads, tuple):
            attrs["pads"] = list(pads)
        elif pads != "none":
            attrs["auto_pad"] = pads
        g = GraphBuilder(channels=3)
        g.node(op, "p", **attrs)
        path = save(g, "pool.onnx")
        mp = pipeline_from_onnx(path)
        for hw in ((7, 9), (8, 8)):
            x = np.random.default_rng(hw[0]).random((3, *hw)).astype(np.float32)
            want = run_ort(g.model(), x)
            got = run(mp.pipeline, rgb(x)).maps
            assert got is not None and got.shape == want.shape, (op, k, s, pads, ceil, cip, hw)
            assert np.abs(got - want).max() < 1e-6, (op, k, s, pads, ceil, cip, hw)
            n += 1
    assert n == 2 * len(_pool_cases()) == 600


def test_conv_grid_matches_onnxruntime() -> None:
    """Kernel sizes (odd, even, non-square) × strides × dilations × groups × pads / auto_pad."""
    n = 0
    for k, s, d, g_, pad in itertools.product(
        [1, 3, (2, 3), 4], [1, 2, (1, 3)], [1, 2], [1, 3],
        [(0, 0, 0, 0), (1, 2, 0, 3), "SAME_UPPER", "SAME_LOWER", "VALID"],
    ):  # fmt: skip
        if d > 1 and isinstance(pad, str) and pad.startswith("SAME"):
            continue  # onnxruntime refuses dilation with SAME_*: no oracle for these
        kk = (k, k) if isinstance(k, int) else k
        ss = (s, s) if isinstance(s, int) else s
        attrs: dict = dict(strides=list(ss), dilations=[d, d])
        if isinstance(pad, tuple):
            attrs["pads"] = list(pad)
        else:
            attrs["auto_pad"] = pad
        g = GraphBuilder(channels=3, seed=n)
        g.conv("c", 6, kk, c_in=3, group=g_, **attrs)
        mp = pipeline_from_onnx(save(g, "conv.onnx"))
        x = np.random.default_rng(n).random((3, 11, 10)).astype(np.float32)
        want = run_ort(g.model(), x)
        got = run(mp.pipeline, rgb(x)).maps
        assert got is not None and got.shape == want.shape, (k, s, d, g_, pad)
        assert np.abs(got - want).max() < TOL, (k, s, d, g_, pad)
        n += 1
    assert n == 192


def test_unfoldable_nodes_become_channelwise_stages() -> None:
    """BatchNorm and an activation after a pool, an Add on the input: 1×1 depthwise stages."""
    g = GraphBuilder(channels=3, seed=9)
    g.node("Add", "shift", g.const("mean", -np.array([0.4, 0.5, 0.6]).reshape(1, 3, 1, 1)))
    g.conv("c1", 4, 3, c_in=3, pads=[1, 1, 1, 1])
    g.node("MaxPool", "mp", kernel_shape=[2, 2], strides=[2, 2])
    g.batchnorm("bn", 4)
    g.node("Relu", "r")
    g.node("Identity", "id")
    g.node("Dropout", "drop")
    mp = pipeline_from_onnx(save(g))
    assert [s.name for s in mp.pipeline.stages] == ["shift", "c1", "maxpool", "bn+r"]
    assert mp.stop is None and mp.output == "drop_out"
    assert mp.sources[-1].nodes == ("bn", "r", "id", "drop")
    x = np.random.default_rng(0).random((3, 15, 12)).astype(np.float32)
    got = run(mp.pipeline, rgb(x)).maps
    assert np.abs(got - run_ort(g.model(), x)).max() < TOL


@pytest.mark.parametrize(
    ("build", "node", "reason"),
    [
        ("residual", "r1", "also feeds"),
        ("mul", "m", "not one of the ops convcli runs"),
        ("pads", "p", "exceed half the 3×3 window"),
        ("dilated_pool", "p", "dilations [2, 2]"),
        ("add_map", "a", "not one value per channel (C×1×1)"),
        ("indices", "p", "its extra output 'idx' is used"),
    ],
)
def test_stops_before_what_it_cannot_run(build: str, node: str, reason: str) -> None:
    g = GraphBuilder(channels=3, seed=1)
    g.conv("c0", 4, 3, c_in=3, pads=[1, 1, 1, 1])
    if build == "residual":
        g.node("Relu", "r0")
        skip = g.last
        g.conv("r1", 4, 3, c_in=4, pads=[1, 1, 1, 1])
        g.node("Add", "sum", skip)
    elif build == "mul":
        g.node("Mul", "m", g.const("two", [2.0]))
    elif build == "pads":
        g.node("MaxPool", "p", kernel_shape=[3, 3], pads=[2, 2, 2, 2])
    elif build == "dilated_pool":
        g.node("MaxPool", "p", kernel_shape=[2, 2], dilations=[2, 2])
    elif build == "add_map":
        g.node("Add", "a", g.const("plane", np.ones((1, 4, 5, 5))))
    elif build == "indices":
        g.nodes.append(
            helper.make_node("MaxPool", [g.last], ["p_out", "idx"], name="p", kernel_shape=[2, 2])
        )
        g.last = "p_out"
    extra = ("idx",) if build == "indices" else ()
    model = g.model(outputs=extra)
    if extra:
        model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    path = Path("stop.onnx").resolve()
    onnx.save(model, str(path))
    mp = pipeline_from_onnx(path)
    if build == "residual":
        assert mp.stop is not None and mp.stop.node == "r1" and reason in mp.stop.reason
        assert "'sum' (Add): a branch" in mp.stop.reason
    else:
        assert mp.stop is not None and mp.stop.node == node and reason in mp.stop.reason
    assert [s.name for s in mp.pipeline.stages][0].startswith("c0")
    x = np.random.default_rng(1).random((3, 5, 5)).astype(np.float32)
    got = run(mp.pipeline, rgb(x)).maps
    assert np.abs(got - run_ort(model, x, mp.output)).max() < TOL


def test_until_and_its_errors(chain: dict) -> None:
    mp = pipeline_from_onnx(chain["path"], until="relu1")
    assert [s.name for s in mp.pipeline.stages] == ["conv1+bn1+relu1"] and mp.stop is None
    mp = pipeline_from_onnx(chain["path"], until="conv1")  # before the BN is folded in
    assert [s.name for s in mp.pipeline.stages] == ["conv1"] and mp.output == "conv1_out"
    mp = pipeline_from_onnx(chain["path"], until="pool1_out")  # an output's name works too
    assert mp.output == "pool1_out" and "stopped after node 'pool1_out' (until)" in mp.summary()
    with pytest.raises(KernelError, match=r"no node 'relu9' \(did you mean 'relu1'\?\)"):
        pipeline_from_onnx(chain["path"], until="relu9")
    with pytest.raises(KernelError, match=r"node 'fc' is past the part convcli can run"):
        pipeline_from_onnx(chain["path"], until="fc")


def test_one_channel_model_is_gray_and_normalize_applies(tmp_path: Path) -> None:
    g = GraphBuilder(channels=1, seed=5)
    g.conv("c", 2, 3, c_in=1, pads=[1, 1, 1, 1])
    mp = pipeline_from_onnx(save(g), normalize=((0.5,), (0.25,)))
    assert mp.pipeline.gray and mp.pipeline.normalize == ((0.5,), (0.25,))
    x = np.random.default_rng(3).random((1, 10, 12)).astype(np.float32)
    got = run(mp.pipeline, ImageData(x, "L", "L", 8, "x")).maps
    assert np.abs(got - run_ort(g.model(), (x - 0.5) / 0.25)).max() < TOL


def test_model_errors(tmp_path: Path) -> None:
    g = GraphBuilder(channels=3)
    g.node("Flatten", "f")
    with pytest.raises(KernelError, match=r"nothing to run: its first node 'f' \(Flatten\)"):
        pipeline_from_onnx(save(g, "flat.onnx"))
    two = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
    )  # fmt: skip
    onnx.save(helper.make_model(two), "two.onnx")
    with pytest.raises(KernelError, match=r"two.onnx: has 2 inputs \(a, b\); convcli feeds one"):
        pipeline_from_onnx("two.onnx")
    vec = helper.make_graph(
        [helper.make_node("Relu", ["v"], ["w"])], "g",
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
    )  # fmt: skip
    onnx.save(helper.make_model(vec), "vec.onnx")
    with pytest.raises(KernelError, match=r"input 'v' is 2-D; convcli feeds images as N×C×H×W"):
        pipeline_from_onnx("vec.onnx")


def test_the_readme_network_exported_by_pytorch(tmp_path: Path) -> None:
    """docs/models/tiny-cnn.onnx (torch.onnx.export's names and node forms) on a sample photo."""
    if not TINY_CNN.is_file():
        pytest.skip("docs/models/tiny-cnn.onnx is not in this tree")
    mp = pipeline_from_onnx(TINY_CNN, normalize=IMAGENET_MEAN_STD)
    assert [s.name for s in mp.pipeline.stages] == [
        "conv1+bn1+Relu", "maxpool", "conv2+bn2+Relu_1", "global-avg"
    ]  # fmt: skip
    assert mp.stop is not None and mp.stop.op_type == "Flatten"
    photo = read_image(REPO / "samples" / "chelsea.jpg")[:, ::2, ::2]  # 150×226: keep it quick
    result = run(mp.pipeline, rgb(photo), keep_stages=True)
    mean, std = (np.asarray(v, np.float32).reshape(3, 1, 1) for v in IMAGENET_MEAN_STD)
    model = onnx.load(str(TINY_CNN))
    for record, source in zip(result.records, mp.sources, strict=True):
        want = run_ort(model, (photo - mean) / std, source.output)
        assert record.maps is not None and record.maps.shape == want.shape
        assert np.abs(record.maps - want).max() < TOL


# --------------------------------------------------------------------------- the command line


def test_run_model_without_and_with_until(chain: dict, tmp_path: Path) -> None:
    photo = chain["photo"]
    result = invoke("run", chain["path"], photo, "-o", "all.npy")
    assert result.exit_code == 0, result.output
    assert "stopped before node 'flat' (Flatten)" in result.output
    x = read_image(photo)
    got = np.load("all.npy")
    want = run_ort(chain["model"], x, "gap_out")
    assert got.shape == want.shape == (4, 1, 1) and np.abs(got - want).max() < TOL
    result = invoke("run", chain["path"], photo, "--until", "lrelu2", "-o", "two.npy")
    assert result.exit_code == 0, result.output
    assert "stopped after node 'lrelu2' (until)" in result.output
    got = np.load("two.npy")
    want = run_ort(chain["model"], x, "lrelu2_out")
    assert got.shape == want.shape == (8, 7, 11)  # 57×83: conv1 28×41, pool 14×21, SAME /2
    assert np.abs(got - want).max() < TOL


def test_run_model_normalize_imagenet_and_pngs(chain: dict, tmp_path: Path) -> None:
    photo = chain["photo"]
    result = invoke(
        "run", chain["path"], photo, "--until", "relu1", "--normalize", "imagenet", "--json",
        "--format", "npz", "-o", "maps",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["out_shape"] == [8, 28, 41]  # (57 + 1+2 - 5) // 2 + 1, (83 + 2+1 - 5) // 2 + 1
    (npz,) = Path("maps").glob("*.npz")
    with np.load(npz) as z:
        got = z[z.files[0]]
    mean, std = (np.asarray(v, np.float32).reshape(3, 1, 1) for v in IMAGENET_MEAN_STD)
    want = run_ort(chain["model"], (read_image(photo) - mean) / std, "relu1_out")
    assert np.abs(got - want).max() < TOL * np.abs(want).max()  # normalised: values up to ~25
    pngs = invoke("run", chain["path"], photo, "--until", "pool1", "--montage", "-o", "png")
    assert pngs.exit_code == 0, pngs.output
    names = sorted(p.name for p in Path("png").iterdir())
    assert names[0] == "photo.chain.0.png" and "photo.chain.montage.png" in names
    assert len(names) == 9


def test_shape_model_matches_onnxruntime_shapes(chain: dict) -> None:
    result = invoke("shape", chain["path"], "--input", "3x57x83", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    mp = pipeline_from_onnx(chain["path"])
    x = np.zeros((3, 57, 83), np.float32)
    for stage, source in zip(data["stages"], mp.sources, strict=True):
        assert tuple(stage["out_shape"]) == run_ort(chain["model"], x, source.output).shape
    assert any("stopped before node 'flat' (Flatten)" in w for w in data["warnings"])
    text = invoke("shape", chain["path"], "--input", "3x224x224", "--until", "pool1")
    assert text.exit_code == 0 and "8×56×56" in text.output
    assert "stopped after node 'pool1' (until)" in text.output


def test_cli_errors_exit_2_and_write_nothing(
    chain: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    Path("text.onnx").write_text("not a model")
    Path("p.yaml").write_text("stages:\n  - conv: sobel\n")
    photo = str(chain["photo"])
    cases = [
        (["run", "text.onnx", photo], "text.onnx: not an ONNX model ("),
        (["run", str(chain["path"]), photo, "--until", "relu9"], "no node 'relu9' (did you mean"),
        (["run", "p.yaml", photo, "--until", "x"], "--until NODE goes with an ONNX model"),
        (["run", str(chain["path"]), photo, "--normalize", "1,2,3"], "normalize must be imagenet"),
        (["run", str(chain["path"]), photo, "--normalize", "0.5,0"], "standard deviations > 0"),
        (["shape", "text.onnx", "--input", "3x8x8"], "text.onnx: not an ONNX model ("),
        (["shape", str(chain["path"]), "--input", "1x64x64"], "expects 3 input channels"),
    ]
    for args, expected in cases:
        code, err = (
            main_exit(monkeypatch, capsys, *args, "-o", "out")
            if args[0] == "run"
            else (main_exit(monkeypatch, capsys, *args))
        )
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], (args, err)
    assert not Path("out").exists()
