"""Pipeline files (``convcli.pipeline.yamlfile``) and ``convcli run``."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.errors import PipelineError, ShapeError
from convcli.pipeline import ConvStage, PoolStage
from convcli.pipeline.yamlfile import load_pipeline, read_pipeline

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted((REPO / "kernels" / "pipelines").glob("*.yaml"))
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def grey_image(folder: Path, name: str = "tiny.png", size: tuple[int, int] = (9, 11)) -> Path:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=size, dtype=np.uint8)
    path = folder / name
    Image.fromarray(pixels, mode="L").save(path)
    return path


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env=ENV)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str]:  # noqa: ANN001
    """Run through ``convcli.cli.main`` (errors → one line on stderr and an exit code)."""
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def correlate_valid(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """Plain loops: cross-correlation without padding (what CNNs call convolution)."""
    kh, kw = w.shape
    ho = (x.shape[0] - kh) // stride + 1
    wo = (x.shape[1] - kw) // stride + 1
    out = np.zeros((ho, wo))
    for i in range(ho):
        for j in range(wo):
            total = 0.0
            for a in range(kh):
                for b in range(kw):
                    total += x[i * stride + a, j * stride + b] * w[a, b]
            out[i, j] = total
    return out


# --------------------------------------------------------------------------- values


def test_two_conv_pipeline_matches_a_hand_written_loop(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    w1 = np.array([[1, 2, 0], [0, -1, 3], [-2, 0, 1]], dtype=float)
    write(tmp_path, "k/odd.yaml", f"weights: {w1.astype(int).tolist()}\n")
    pipe = write(
        tmp_path,
        "two.yaml",
        """
        name: two
        stages:
          - conv: {kernel: k/odd.yaml, padding: valid, bias: 0.25, activation: relu}
          - conv: {kernel: sobel-y, padding: valid, stride: 2}
        output: {format: npy}
        """,
    )
    result = invoke("run", str(pipe), str(img), "-o", "out")
    assert result.exit_code == 0, result.output
    got = np.load(tmp_path / "out" / "tiny.two.npy")
    x = np.asarray(Image.open(img), dtype=np.float64) / 255
    sobel_y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=float)
    stage1 = np.maximum(correlate_valid(x, w1) + 0.25, 0)
    want = correlate_valid(stage1, sobel_y, stride=2)
    assert got.shape == (1, *want.shape) == (1, 3, 4)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_same_reflect_pipeline_matches_scipy(tmp_path: Path) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    img = grey_image(tmp_path, size=(12, 10))
    pipe = write(
        tmp_path,
        "p.yaml",
        """
        stages:
          - conv: laplacian
          - conv: {kernel: "box:3", pad-mode: symmetric}
        """,
    )
    result = invoke("run", str(pipe), str(img), "-o", "out", "--format", "npy")
    assert result.exit_code == 0, result.output
    got = np.load(tmp_path / "out" / "tiny.p.npy")[0]
    x = np.asarray(Image.open(img), dtype=np.float64) / 255
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)
    step1 = ndimage.correlate(x, lap, mode="mirror")  # scipy "mirror" = reflect
    want = ndimage.correlate(step1, np.ones((3, 3)) / 9, mode="reflect")  # = symmetric
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_bank_on_incoming_maps_filters_each_map(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    write(tmp_path, "edges.yaml", "stages:\n  - conv: sobel\n")
    write(tmp_path, "blur.yaml", "stages:\n  - conv: sobel\n  - conv: box:3\n")
    write(tmp_path, "p.yaml", "stages:\n  - conv: sobel\n  - conv: [identity, box:3]\n")
    for name in ("edges", "blur", "p"):
        result = invoke("run", f"{name}.yaml", str(img), "-o", "out", "--format", "npy")
        assert result.exit_code == 0, result.output
    edges, blur, got = (np.load(tmp_path / "out" / f"tiny.{n}.npy") for n in ("edges", "blur", "p"))
    assert edges.shape == blur.shape == (2, 9, 11)
    assert got.shape == (4, 9, 11)  # 2 kernels × 2 incoming maps, kernel-major
    np.testing.assert_allclose(got[:2], edges, atol=1e-6)
    np.testing.assert_allclose(got[2:], blur, atol=1e-6)


# --------------------------------------------------------------------------- loading


def test_load_pipeline_returns_stages_and_output_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tiny.yaml",
        """
        name: tiny-cnn
        gray: true
        alpha: drop
        dtype: float64
        stages:
          - conv: {kernel: sobel, activation: relu, stride: "2,1", padding: [1, 2]}
          - pool: {op: avg, size: 3, stride: 1, padding: 1, ceil-mode: true,
                   count_include_pad: false}
          - pool: max
        output: {format: tif, montage: true, range: abs, bit-depth: 16, out: maps}
        """,
    )
    pipeline, output = load_pipeline(path)
    assert pipeline.name == "tiny-cnn" and pipeline.gray and pipeline.alpha == "drop"
    assert pipeline.dtype == "float64"
    conv, avg, mx = pipeline.stages
    assert isinstance(conv, ConvStage) and conv.kernel.name == "sobel"
    assert conv.stride == (2, 1) and conv.padding == (1, 1, 2, 2) and conv.activation == "relu"
    assert avg == PoolStage("avg", (3, 3), (1, 1), (1, 1, 1, 1), True, False)
    assert mx == PoolStage("max")
    assert output == {
        "format": "tiff", "montage": True, "range": "abs", "bit_depth": 16, "out": "maps"
    }  # fmt: skip
    assert read_pipeline(path).stage_lines == (6, 7, 9)


def test_kernels_are_found_next_to_the_pipeline_first(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "er"
    write(folder, "mine.yaml", "weights: [[1, 2, 1]]\nnormalize: sum\n")
    write(tmp_path, "kernels/mine.yaml", "weights: [[5]]\n")  # ./kernels comes later
    path = write(folder, "p.yaml", "stages:\n  - conv: mine\n  - conv: mine.yaml\n")
    pipeline, _ = load_pipeline(path)
    for stage in pipeline.stages:
        np.testing.assert_allclose(stage.kernel.weights, [[0.25, 0.5, 0.25]])


ERRORS = [
    ("stages:\n  - conv: {kernel: sobel, strid: 2}\n",
     "p.yaml:2: stage 1 (conv): unknown option 'strid' (did you mean 'stride'?)"),
    ("stagse:\n  - pool: max\n", "p.yaml:1: unknown key 'stagse' (did you mean 'stages'?)"),
    ("name: x\n", "p.yaml:1: no 'stages:'"),
    ("stages: []\n", "p.yaml:1: stages must be a non-empty list"),
    ("stages:\n  - pool: max\n  - cnv: sobel\n",
     "p.yaml:3: stage 2: unknown step 'cnv' (did you mean 'conv'?)"),
    ("stages:\n  - conv: sobel\n    pool: max\n",
     "p.yaml:2: stage 1: a step is one conv: or pool:"),
    ("stages:\n  - conv: {stride: 2}\n", "p.yaml:2: stage 1 (conv): conv needs a kernel"),
    ("stages:\n  - conv: gausian\n",
     "p.yaml:2: stage 1 (conv): kernel: unknown kernel 'gausian' (did you mean 'gaussian'?)"),
    ("stages:\n  - conv: {kernel: sobel, stride: 0}\n",
     "p.yaml:2: stage 1 (conv): stride must be >= 1, got 0"),
    ("stages:\n  - conv: {kernel: sobel,\n            padding: sane}\n",
     "p.yaml:3: stage 1 (conv): padding must be valid, same, full"),
    ("stages:\n  - conv: {kernel: sobel, activation: rleu}\n",
     "p.yaml:2: stage 1 (conv): activation must be one of"),
    ("stages:\n  - conv: {kernel: sobel, groups: 0}\n",
     "p.yaml:2: stage 1 (conv): groups must be >= 1, got 0"),
    ("stages:\n  - conv: {kernel: sobel, bias: lots}\n",
     "p.yaml:2: stage 1 (conv): bias must be a number, got 'lots'"),
    ("stages:\n  - conv: {kernel: sobel, pad_mode: mirror}\n",
     "p.yaml:2: stage 1 (conv): pad_mode must be one of zeros"),
    ("stages:\n  - conv: {kernel: sobel, flip: maybe}\n",
     "p.yaml:2: stage 1 (conv): flip must be true or false, got 'maybe'"),
    ("stages:\n  - conv: sobel\n  - pool: {op: maxx}\n",
     "p.yaml:3: stage 2 (pool): op must be one of max, avg, min, global-max, global-avg;"
     " got 'maxx' (did you mean 'max'?)"),
    ("stages:\n  - pool: {op: max, padding: full}\n",
     "p.yaml:2: stage 1 (pool): pool padding must be P, PH,PW, valid or same; got 'full'"),
    ("stages:\n  - pool: {op: max, size: 2, padding: 3}\n",
     "p.yaml:2: stage 1 (pool): pool padding (top 3, bottom 3, left 3, right 3)"),
    ("stages:\n  - pool: {sise: 2}\n",
     "p.yaml:2: stage 1 (pool): unknown option 'sise' (did you mean 'size'?)"),
    ("gray: maybe\nstages:\n  - pool: max\n", "p.yaml:1: gray must be true or false"),
    ("alpha: keep\nstages:\n  - pool: max\n", "p.yaml:1: alpha must be one of premultiply"),
    ("stages:\n  - pool: max\noutput: {fromat: npy}\n",
     "p.yaml:3: output: unknown option 'fromat' (did you mean 'format'?)"),
    ("stages:\n  - pool: max\noutput:\n  bit_depth: 12\n",
     "p.yaml:4: output: bit_depth must be 8 or 16, got 12"),
    ("stages:\n  - pool: max\noutput: {format: gif}\n",  # was jpeg, before jpeg output
     "p.yaml:3: output: format must be one of png, jpeg, webp, tiff, npy, npz, keep"),
    ("stages:\n  - conv: {kernel: sobel, stride: 1, stride: 2}\n",
     "p.yaml:2: stage 1 (conv): 'stride' is given twice (first on line 2)"),
    ("stages:\n  - conv: {kernel: sobel\n", "p.yaml:3: not valid YAML"),
    ("", "p.yaml: the file is empty"),
    ("- conv: sobel\n", "p.yaml:1: a pipeline file must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_every_pipeline_error_names_file_line_and_stage(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        load_pipeline("p.yaml")
    assert str(info.value).startswith(message), str(info.value)


def test_a_broken_kernel_file_error_names_both_files(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", "weights:\n  - [1, 2, 3]\n  - [4, 5]\n")
    write(tmp_path, "p.yaml", "stages:\n  - pool: max\n  - conv: {kernel: bad.yaml}\n")
    with pytest.raises(PipelineError) as info:
        load_pipeline("p.yaml")
    message = str(info.value)
    assert message.startswith("p.yaml:3: stage 2 (conv): kernel: ")
    assert "bad.yaml:3: weights row 2 has 2 numbers, row 1 has 3" in message


# --------------------------------------------------------------------------- shipped examples


def test_there_are_example_pipelines() -> None:
    assert {p.name for p in PIPELINES} >= {"tiny-edge-cnn.yaml", "blur-pyramid.yaml"}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_example_pipeline_loads_and_plans(path: Path) -> None:
    pf = read_pipeline(path)
    channels = 1 if pf.pipeline.gray else 3
    result = pf.plan((channels, 224, 224))  # the CNN examples need an ImageNet-size input
    assert len(result.records) == len(pf.pipeline.stages) >= 2


def test_tiny_edge_cnn_shapes() -> None:
    pf = read_pipeline(REPO / "kernels" / "pipelines" / "tiny-edge-cnn.yaml")
    shapes = [r.geometry.out_shape for r in pf.plan((1, 64, 48)).records]
    assert shapes == [(2, 64, 48), (2, 32, 24), (3, 32, 24), (3, 16, 12)]


# --------------------------------------------------------------------------- 4-D mismatch


def test_a_4d_kernel_count_mismatch_names_the_stage_before_any_image_is_processed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    img = grey_image(tmp_path)
    layer = np.zeros((2, 3, 3, 3)).tolist()  # expects 3 maps; stage 2 gives 2
    write(tmp_path, "layer.yaml", f"weights: {layer}\n")
    write(
        tmp_path,
        "p.yaml",
        "stages:\n  - conv: sobel\n  - pool: max\n  - conv: {kernel: layer.yaml}\n",
    )
    code, err = main_exit(monkeypatch, capsys, "run", "p.yaml", str(img), "-o", "out")
    assert code == 2
    assert err.startswith("error: p.yaml:4: stage 3 (conv layer): layer kernel expects 3 input")
    assert "coming from stage 2: 2×4×5" in err
    assert not (tmp_path / "out").exists()


def test_plan_names_the_stage_without_a_file() -> None:
    from convcli.pipeline import Pipeline
    from convcli.pipeline.yamlfile import plan_stages

    p = Pipeline((PoolStage("max", 2), PoolStage("max", 4)), name="x")
    with pytest.raises(ShapeError, match=r"^stage 2 \(pool maxpool\): pool window 4×4"):
        plan_stages(p, (1, 5, 5))


# --------------------------------------------------------------------------- run options


def test_yaml_output_section_gives_defaults_and_the_command_line_wins(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = write(
        tmp_path, "p.yaml", "stages:\n  - conv: sobel\noutput: {format: npy, out: from-yaml}\n"
    )
    result = invoke("run", str(pipe), str(img))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-yaml" / "tiny.p.npy").is_file()
    result = invoke("run", str(pipe), str(img), "--format", "png", "-o", "cli")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == [
        "tiny.p.sobel-x.png", "tiny.p.sobel-y.png"
    ]  # fmt: skip


def test_json_report_has_every_stage(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = REPO / "kernels" / "pipelines" / "tiny-edge-cnn.yaml"
    result = invoke("run", str(pipe), str(img), "--json", "--dry-run")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["out_shape"] for s in data["stages"]] == [
        [2, 9, 11], [2, 4, 5], [3, 4, 5], [3, 2, 2]
    ]  # fmt: skip
    assert not (tmp_path / "convcli-out").exists()


def test_report_shows_every_stage(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = REPO / "kernels" / "pipelines" / "tiny-edge-cnn.yaml"
    result = invoke("run", str(pipe), str(img), "-o", "out")
    assert result.exit_code == 0, result.output
    for text in ("conv sobel (bank of 2, 3×3)", "max pool 2×2", "conv layer2", "avg pool 2×2"):
        assert text in result.output
    assert (tmp_path / "out" / "tiny.tiny-edge-cnn.montage.png").is_file()  # from output:


def test_save_stages_writes_each_stage(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = write(tmp_path, "p.yaml", "name: two\nstages:\n  - conv: sobel-x\n  - pool: max\n")
    result = invoke("run", str(pipe), str(img), "-o", "out", "--save-stages", "--format", "npy")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "tiny.two.npy", "tiny.two.stage1-sobel-x.npy", "tiny.two.stage2-maxpool.npy"
    ]  # fmt: skip
    assert np.load(out / "tiny.two.stage1-sobel-x.npy").shape == (1, 9, 11)
    np.testing.assert_array_equal(
        np.load(out / "tiny.two.stage2-maxpool.npy"), np.load(out / "tiny.two.npy")
    )


def test_save_stages_lists_the_stage_files_and_checks_them_before_writing(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = write(tmp_path, "p.yaml", "name: two\nstages:\n  - conv: sobel-x\n  - pool: max\n")
    result = invoke("run", str(pipe), str(img), "-o", "out", "--save-stages")
    assert result.exit_code == 0, result.output
    assert "wrote 2 stage files:" in result.output
    assert "out/tiny.two.stage2-maxpool.png" in result.output
    (tmp_path / "out" / "tiny.two.png").unlink()  # only a stage file is left in the way
    result = invoke("run", str(pipe), str(img), "-o", "out", "--save-stages")
    assert result.exit_code == 1
    assert "tiny.two.stage1-sobel-x.png exists" in result.output
    assert not (tmp_path / "out" / "tiny.two.png").exists()  # nothing half-written
    result = invoke("run", str(pipe), str(img), "-o", "out", "--save-stages", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "tiny.two.png").is_file()


def test_save_stages_in_the_yaml_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    pipe = write(tmp_path, "p.yaml", "stages:\n  - conv: sobel-x\noutput: {save_stages: true}\n")
    result = invoke("run", str(pipe), str(img), "-o", "out", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["stage_outputs"] == ["out/tiny.p.stage1-sobel-x.png"]
    assert not (tmp_path / "out").exists()


def test_run_a_folder_of_images(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    grey_image(folder, "a.png")
    grey_image(folder, "b.png", size=(6, 6))
    pipe = write(tmp_path, "p.yaml", "stages:\n  - conv: box:3\n  - pool: avg\n")
    result = invoke("run", str(pipe), str(folder), "-o", "out", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.p.png", "b.p.png"]


def test_run_missing_pipeline_file_is_a_usage_error(tmp_path: Path) -> None:
    img = grey_image(tmp_path)
    result = invoke("run", "nope.yaml", str(img))
    assert result.exit_code == 2
