"""Large images end to end: tiled runs from the command line, memory, interrupts, the guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app, main
from convcli.imageio import load_image
from convcli.imageio.png import encode_png

runner = CliRunner()
RNG = np.random.default_rng(11)


def _png(path: Path, h: int, w: int, c: int = 3) -> Path:
    px = RNG.integers(0, 256, (c, h, w), dtype=np.uint8)
    path.write_bytes(encode_png(px))
    return path


def _pixels(path: Path) -> np.ndarray:
    return load_image(path, dtype=np.float64).array


@pytest.mark.parametrize(
    "args",
    [
        ["convolve", "-k", "gaussian:7"],
        ["convolve", "-k", "sobel", "--pad-mode", "circular", "--pool", "avg", "--pool-size", "3",
         "--pool-stride", "2", "--pool-padding", "1", "--ceil-mode", "--no-count-include-pad"],
        ["convolve", "-k", "kernels/rgb-layer.yaml", "--stride", "2", "--activation", "relu",
         "--range", "offset", "--bit-depth", "16"],
        ["pool", "--op", "max", "--size", "3", "--stride", "2", "--padding", "1"],
        ["run", "kernels/pipelines/blur-pyramid.yaml"],
        ["run", "EDGE_CNN"],
    ],
)  # fmt: skip
def test_tiled_cli_run_writes_the_same_files(tmp_path: Path, args: list[str]) -> None:
    src = _png(tmp_path / "in.png", 67, 53)
    if args[1] == "EDGE_CNN":  # tiny-edge-cnn.yaml without its montage
        layer2 = Path("kernels/layer2.yaml").resolve()
        text = f"""name: edge
gray: true
stages:
  - conv: {{kernel: sobel, activation: relu, pad_mode: symmetric}}
  - pool: {{op: max, size: 2}}
  - conv: {{kernel: {layer2}, pad_mode: circular}}
  - pool: {{op: avg, size: 2}}
"""
        (tmp_path / "edge.yaml").write_text(text)
        args = ["run", str(tmp_path / "edge.yaml")]
    cmd, rest = args[0], args[1:]
    head = [cmd, rest[0], str(src), *rest[1:]] if cmd == "run" else [cmd, str(src), *rest]
    whole = runner.invoke(app, [*head, "-o", str(tmp_path / "whole"), "--json"])
    assert whole.exit_code == 0, whole.output
    tiled = runner.invoke(app, [*head, "-o", str(tmp_path / "tiled"), "--json", "--tile", "9"])
    assert tiled.exit_code == 0, tiled.output
    w, t = json.loads(whole.stdout), json.loads(tiled.stdout)
    assert t["tiles"]["tile"] == [9, 9] and "tiles" not in w
    assert [Path(p).name for p in t["outputs"]] == [Path(p).name for p in w["outputs"]]
    assert t["mapping"]["range"] == w["mapping"]["range"]
    for key in ("lo", "hi"):  # a 4-D layer's BLAS may round the last bit differently by block
        assert t["mapping"][key] == pytest.approx(w["mapping"][key], rel=1e-6, abs=1e-7)
    for a, b in zip(w["maps"], t["maps"], strict=True):
        assert a["name"] == b["name"]
        assert a["min"] == pytest.approx(b["min"], rel=1e-5, abs=1e-6)
        assert a["max"] == pytest.approx(b["max"], rel=1e-5, abs=1e-6)
    for a, b in zip(w["outputs"], t["outputs"], strict=True):  # at most one level apart
        np.testing.assert_allclose(_pixels(Path(b)), _pixels(Path(a)), rtol=0, atol=1.01 / 255)


@pytest.mark.parametrize("fmt", ["tiff", "npy"])
def test_tiled_float_outputs(tmp_path: Path, fmt: str) -> None:
    src = _png(tmp_path / "in.png", 40, 45)
    for name, extra in (("whole", []), ("tiled", ["--tile", "7"])):
        res = runner.invoke(
            app, ["convolve", str(src), "-k", "emboss", "--format", fmt, "-o",
                  str(tmp_path / name), "-q", *extra],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    ext = "tif" if fmt == "tiff" else fmt
    a, b = tmp_path / "whole" / f"in.emboss.{ext}", tmp_path / "tiled" / f"in.emboss.{ext}"
    if fmt == "npy":
        np.testing.assert_allclose(np.load(b), np.load(a), rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(_pixels(b), _pixels(a), rtol=1e-6, atol=1e-6)


def test_global_pool_runs_tiled(tmp_path: Path) -> None:
    src = _png(tmp_path / "in.png", 50, 30)
    out = {}
    for name, extra in (("whole", []), ("tiled", ["--tile", "8"])):
        res = runner.invoke(
            app, ["convolve", str(src), "-k", "box", "--pool", "global-avg", "--format", "npy",
                  "-o", str(tmp_path / name), "-q", *extra],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        out[name] = np.load(tmp_path / name / "in.box-global-avg.npy")
    assert out["tiled"].shape == (3, 1, 1)
    np.testing.assert_allclose(out["tiled"], out["whole"], rtol=1e-6)


def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """The console-script entry point in-process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["convcli", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


def test_tile_refuses_whole_only_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(_png(tmp_path / "in.png", 20, 20))
    out = str(tmp_path / "o")
    code, err = _main(monkeypatch, capsys, "convolve", src, "-k", "box", "--tile", "8",
                      "--montage", "-o", out)  # fmt: skip
    assert code == 1
    assert "--montage needs the whole result" in err
    assert not (tmp_path / "o").exists()
    code, err = _main(monkeypatch, capsys, "convolve", src, "-k", "box", "--memory-budget", "lots")
    assert code == 2 and "memory budget must be a number of bytes" in err


def test_max_pixels_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _png(tmp_path / "in.png", 30, 40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    res = runner.invoke(app, ["convolve", str(src), "-k", "box", "-o", str(tmp_path / "a")])
    assert res.exit_code == 1
    assert "too many pixels" in res.stderr and "--max-pixels" in res.stderr
    for limit in ("1200", "none"):
        res = runner.invoke(app, ["convolve", str(src), "-k", "box", "-o",
                                  str(tmp_path / limit), "--max-pixels", limit, "-q"])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert (tmp_path / limit / "in.box.png").is_file()
    code, err = _main(monkeypatch, capsys, "convolve", str(src), "-k", "box", "--max-pixels", "x")
    assert code == 2 and "--max-pixels takes a number of pixels or 'none'" in err


def _peak_rss(argv: list[str]) -> int:
    """Peak RSS (bytes) of a command, measured by a small helper process (os.wait4)."""
    code = (
        "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]);"
        " _, st, ru = os.wait4(p.pid, 0); print(ru.ru_maxrss * 1024);"
        " sys.exit(os.waitstatus_to_exitcode(st))"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_peak_memory_of_a_large_run_stays_under_the_budget(tmp_path: Path) -> None:
    """A 6000×6000 image with a 64 MiB budget: peak RSS grows by less than the budget.

    The same command on a 64×64 image gives the process's fixed cost (interpreter,
    numpy, OpenCV, Pillow, click, Rich); the large run may add at most the budget.
    Measured: 73 MiB for the small image, 124 MiB for the large one; the whole-image
    path takes 381 MiB on it.
    """
    big = tmp_path / "big.png"
    y = np.linspace(0, 255, 6000, dtype=np.float32)
    px = (y[:, None] + y[None, :] * 0.3 + RNG.normal(0, 4, (6000, 6000))).astype(np.uint8)
    big.write_bytes(encode_png(px[None]))
    del px
    small = _png(tmp_path / "small.png", 64, 64, c=1)
    budget = 64 << 20
    cmd = [sys.executable, "-m", "convcli", "convolve", "-k", "gaussian:7", "--range", "clip",
           "--memory-budget", str(budget), "-q", "--force"]  # fmt: skip
    base = _peak_rss([*cmd, str(small), "-o", str(tmp_path / "s.png")])
    peak = _peak_rss([*cmd, str(big), "-o", str(tmp_path / "b.png")])
    assert peak - base < budget, (peak >> 20, base >> 20)
    with Image.open(tmp_path / "b.png") as im:
        assert im.size == (6000, 6000)
        row = np.asarray(im.crop((0, 3000, 6000, 3001)), dtype=np.float64)
    assert abs(row.mean() - (255 * 0.5 + 0.3 * np.linspace(0, 255, 6000).mean())) < 3


def test_ctrl_c_leaves_no_partial_file(tmp_path: Path) -> None:
    src = _png(tmp_path / "in.png", 900, 700)
    out = tmp_path / "out"
    env = {**os.environ, "CONVCLI_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "convcli", "convolve", str(src), "-k", "gaussian:15",
         "-o", str(out), "--tile", "16"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    started = time.monotonic()
    for line in proc.stderr:  # plain progress lines: the run is under way
        if "writing rows" in line or time.monotonic() - started > 30:
            break
    proc.send_signal(signal.SIGINT)
    try:
        rest = proc.communicate(timeout=30)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    assert not out.exists() or list(out.iterdir()) == []
