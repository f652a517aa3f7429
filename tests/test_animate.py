"""``convcli explain --animate``: frame count, determinism, and values that are conv2d's."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import animate, app
from convcli.cli.animate import frame_count, frames, layout, render, save_animation
from convcli.cli.explain_view import num
from convcli.kernels import load_kernel
from convcli.ops.conv import conv2d
from convcli.ops.pool import pool2d
from convcli.pipeline.walk import BYTE, default_patch, walkthrough

REPO = Path(__file__).resolve().parents[1]
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
PATCH = default_patch((6, 6), sample=REPO / "samples" / "camera.png")[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", "")


def invoke(*args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(app, list(args), env=ENV)


def main_exit(monkeypatch: pytest.MonkeyPatch, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    from convcli.cli import main

    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def walk_of(**kw):  # noqa: ANN003, ANN201
    kernel = load_kernel(kw.pop("kernel", "sobel-x"))
    return walkthrough(kw.pop("patch", PATCH), kernel, units=BYTE, **kw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the frames as data


@pytest.mark.parametrize(
    ("options", "count"),
    [
        ({}, 1 + 36 + 9 + 1),  # 6×6 output, 3×3 pooled
        ({"pool": None}, 1 + 36 + 1),
        ({"stride": 2}, 1 + 9 + 1 + 1),  # 3×3 output, one 2×2 window (floor)
        ({"padding": "valid", "pool": "avg", "pool_size": 3, "pool_stride": 1}, 1 + 16 + 4 + 1),
        ({"pool": "global-max"}, 1 + 36 + 1 + 1),
    ],
    ids=str,
)
def test_frame_count(options: dict, count: int) -> None:
    walk = walk_of(**options)
    assert frame_count(walk) == count == len(frames(walk))
    phases = [f.phase for f in frames(walk)]
    assert phases[0] == "intro" and phases[-1] == "final"
    assert phases.count("conv") == walk.output.shape[1] * walk.output.shape[2]


@pytest.mark.parametrize(
    "options",
    [
        {"bias": -0.2, "activation": "relu"},
        {"bias": 0.1, "activation": "sigmoid", "stride": 2, "pool": "avg"},
        {"kernel": "laplacian", "dilation": 2, "pad_mode": "zeros", "activation": "tanh"},
        {"kernel": "sobel", "padding": "full", "pool": "min", "pool_size": 3, "pool_stride": 2},
    ],
    ids=str,
)
def test_the_values_drawn_are_conv2d_values(options: dict) -> None:
    """Every number in every frame, against conv2d/pool2d run here on the true 0–1 values."""
    walk = walk_of(**options)
    o = {k: v for k, v in options.items() if k not in ("kernel", "pool")}
    conv_opts = {k: v for k, v in o.items() if not k.startswith("pool")}
    want = conv2d(PATCH / 255, load_kernel(options.get("kernel", "sobel-x")), **conv_opts) * 255
    want = want if want.ndim == 3 else want[None]
    pool_op = options.get("pool", "max")
    pool_opts = {k.removeprefix("pool_"): v for k, v in o.items() if k.startswith("pool_")}
    pooled = pool2d(want, pool_op, **{"size": 2, **pool_opts}) if pool_op else None
    fs = frames(walk)
    ho, wo = want.shape[1:]
    for n, f in enumerate(fs):
        out = f.grid("output").texts()
        filled = {(i, j) for i in range(ho) for j in range(wo) if out[i][j]}
        if f.phase == "conv":
            assert len(filled) == n  # the n-th conv frame fills the n-th value
            i, j = f.focus[1:]  # type: ignore[index]
            assert f.grid("output").cells[i][j].role == "new"
            assert f.caption[0].endswith(num(want[0, i, j]))
        for i, j in filled:
            assert out[i][j] == num(want[0, i, j])
        if pooled is not None:
            got = f.grid("pooled").texts()
            for i in range(pooled.shape[1]):
                for j in range(pooled.shape[2]):
                    assert got[i][j] in ("", num(pooled[0, i, j]))
    final = fs[-1]
    assert final.grid("output").texts() == [[num(v) for v in row] for row in want[0]]
    if pooled is not None:
        assert final.grid("pooled").texts() == [[num(v) for v in row] for row in pooled[0]]


def test_the_padded_input_and_the_window_on_it() -> None:
    walk = walk_of(stride=2)
    fs = frames(walk)
    padded = np.pad(PATCH, ((0, 1), (0, 1)), mode="reflect")  # same, stride 2: bottom/right
    grid = fs[0].grid("input")
    assert grid.texts() == [[num(v) for v in row] for row in padded]
    roles = np.array([[c.role for c in row] for row in grid.cells])
    assert set(roles[-1]) == {"pad"} and set(roles[:, -1]) == {"pad"}
    assert set(roles[:-1, :-1].ravel()) == {"input"}
    assert grid.rows == ("0", "1", "2", "3", "4", "5", "6") and grid.box is None
    # conv frame for output[1, 2]: rows 2-4, columns 4-6; centres of 6 windows visited so far
    f = fs[1 + 1 * 3 + 2]
    g = f.grid("input")
    assert g.box == (2, 4, 4, 6)
    assert {(r, c) for r, row in enumerate(g.cells) for c, x in enumerate(row)
            if x.role == "tap"} == {(r, c) for r in (2, 3, 4) for c in (4, 5, 6)}  # fmt: skip
    assert g.marks == {(1, 1), (1, 3), (1, 5), (3, 1), (3, 3), (3, 5)}
    assert fs[-1].grid("input").marks == {(r, c) for r in (1, 3, 5) for c in (1, 3, 5)}


def test_pool_frames_box_their_window() -> None:
    walk = walk_of(pool="max", pool_size=3, pool_stride=2)
    pool_frames = [f for f in frames(walk) if f.phase == "pool"]
    assert len(pool_frames) == 4
    f = pool_frames[3]  # pooled[1, 1]: rows 2-4, columns 2-4 of the output
    g = f.grid("output")
    assert g.box == (2, 2, 4, 4) and g.box_role.startswith("pool")
    assert f.focus == ("pooled", 1, 1)
    assert f.grid("pooled").cells[1][1].role == "pool-new"
    assert f.caption[0].startswith("pooled[1, 1] = max(")


def test_sigmoid_caption_says_it_acts_on_the_true_value() -> None:
    f = frames(walk_of(bias=-0.2, activation="sigmoid", pool=None))[5]
    assert "→  sigmoid(x / 255) × 255  →" in f.caption[0]
    assert (
        "Numbers in 0–255 units (255× what convolve computes)." in frames(walk_of())[0].caption[1]
    )


# --------------------------------------------------------------------------- pictures and files


def test_a_frame_differs_exactly_where_a_cell_fills() -> None:
    walk = walk_of(pool=None)
    fs = frames(walk)
    lay = layout(fs)
    a, b = render(fs[7], lay), render(fs[8], lay)  # frame 8 fills output[1, 1] (the 8th)
    assert fs[8].focus == ("output", 1, 1)
    i, j = fs[8].focus[1:]  # type: ignore[index]
    x0, y0, x1, y1 = lay.cell_box("output", i, j)
    pa = np.asarray(a.crop((x0 + 1, y0 + 1, x1 - 1, y1 - 1)))
    pb = np.asarray(b.crop((x0 + 1, y0 + 1, x1 - 1, y1 - 1)))
    assert (pa != pb).any()
    # the new cell is green with white digits; before, it was empty
    assert tuple(pb[2, 2]) == animate.FILLS["new"][0]
    assert tuple(pa[2, 2]) == animate.FILLS["empty"][0]
    assert (pb == (255, 255, 255)).all(axis=-1).sum() > 10  # the digits
    # the kernel does not change
    kx0, ky0, _, _ = lay.cell_box("kernel", 0, 0)
    _, _, kx1, ky1 = lay.cell_box("kernel", 2, 2)
    box = (kx0, ky0, kx1, ky1)
    assert np.array_equal(np.asarray(a.crop(box)), np.asarray(b.crop(box)))


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_files_are_deterministic_with_the_documented_frame_count(
    tmp_path: Path, suffix: str
) -> None:
    walk = walk_of(stride=2, bias=-0.2, activation="relu")
    first = save_animation(walk, tmp_path / f"a{suffix}")
    save_animation(walk_of(stride=2, bias=-0.2, activation="relu"), tmp_path / f"b{suffix}")
    assert sha(tmp_path / f"a{suffix}") == sha(tmp_path / f"b{suffix}")
    assert first.frames == frame_count(walk) == 12
    with Image.open(tmp_path / f"a{suffix}") as im:
        assert getattr(im, "n_frames", 1) == 12
        assert im.size == first.size
        if suffix == ".png":
            assert im.format == "PNG" and getattr(im, "is_animated", False)
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
    assert sum(durations) == pytest.approx(first.seconds * 1000, abs=1)
    assert len(list(tmp_path.iterdir())) == 2  # no temporary files left


def test_the_default_font_when_dejavu_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(animate, "FONT_DIR", tmp_path / "no-fonts")
    monkeypatch.chdir(tmp_path)
    animate._font.cache_clear()
    try:
        walk = walk_of(stride=3, pool=None)
        save_animation(walk, tmp_path / "a.gif")
        save_animation(walk, tmp_path / "b.gif")
        assert sha(tmp_path / "a.gif") == sha(tmp_path / "b.gif")
    finally:
        animate._font.cache_clear()


# --------------------------------------------------------------------------- the CLI


def test_explain_animate_writes_a_gif_and_says_so(tmp_path: Path) -> None:
    result = invoke("explain", "--stride", "2", "--animate", "walk.gif")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("wrote walk.gif: 12 frames (1 + 3×3 windows + 1 pooling"
                                    " window + 1), ")  # fmt: skip
    first = sha(tmp_path / "walk.gif")
    again = invoke("explain", "--stride", "2", "--animate", "walk.gif", "--force")
    assert again.exit_code == 0 and sha(tmp_path / "walk.gif") == first
    apng = invoke("explain", "--stride", "2", "--animate", "walk.png", "--json")
    assert apng.exit_code == 0, apng.output
    assert apng.output.lstrip().startswith("{")  # the JSON; the note went to stderr
    with Image.open(tmp_path / "walk.png") as im:
        assert im.n_frames == 12


def test_explain_animate_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = main_exit(monkeypatch, capsys, "explain", "--animate", "walk.mp4")
    assert code == 2 and out == ""
    assert "--animate walk.mp4: write a .gif or a .png (animated PNG), not '.mp4'" in err
    assert not (tmp_path / "walk.mp4").exists()
    (tmp_path / "old.gif").write_bytes(b"keep me")
    code, _, err = main_exit(monkeypatch, capsys, "explain", "--animate", "old.gif")
    assert code == 1 and "old.gif exists (use --force to overwrite it)" in err
    assert (tmp_path / "old.gif").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.gif"]
