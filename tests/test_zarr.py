"""OME-Zarr and Zarr folders as input (convcli.imageio.zarrin): values, tiles, folders, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convcli.imageio import load_image
from convcli.imageio.regions import open_regions
from convcli.imageio.zarrin import is_zarr, zarr_stem

zarr = pytest.importorskip("zarr")

RNG = np.random.default_rng(11)
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "CONVCLI_KERNEL_PATH": ""}
AXES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def _ome(path: Path, data: np.ndarray, axes: str, chunks: tuple[int, ...] | None = None) -> Path:
    """An OME-Zarr (NGFF 0.5) image: ``data`` with the named ``axes``, as dataset "0"."""
    g = zarr.open_group(str(path), mode="w")
    arr = g.create_array(
        "0",
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks or tuple(min(s, 16) for s in data.shape),
    )
    arr[...] = data
    scale = {"type": "scale", "scale": [1.0] * len(axes)}
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": a, "type": AXES[a]} for a in axes],
                "datasets": [{"path": "0", "coordinateTransformations": [scale]}],
            }
        ],
    }  # fmt: skip
    return path


def _plain(path: Path, data: np.ndarray) -> Path:
    arr = zarr.create_array(
        str(path), shape=data.shape, dtype=data.dtype, chunks=(1,) * (data.ndim - 2) + (16, 16)
    )
    arr[...] = data
    return path


def _run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "convcli", *map(str, args)], cwd=cwd, capture_output=True,
        text=True, env={**os.environ, **ENV},
    )  # fmt: skip


def test_an_ome_zarr_rgb_image_reads_as_its_png_does(tmp_path: Path) -> None:
    hwc = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(hwc).save(tmp_path / "p.png")
    z = _ome(tmp_path / "p.ome.zarr", np.moveaxis(hwc, -1, 0)[None, :, None], "tczyx")
    got, want = load_image(str(z)), load_image(str(tmp_path / "p.png"))
    assert (got.channels, got.bit_depth, got.array.shape) == ("RGB", 8, (3, 37, 53))
    np.testing.assert_array_equal(got.array, want.array)
    assert load_image(str(z), gray=True).channels == "L"


def test_uint16_is_exact_and_float_is_raw(tmp_path: Path) -> None:
    u16 = RNG.integers(0, 65536, (2, 20, 30), dtype=np.uint16)  # grey + alpha
    got = load_image(str(_ome(tmp_path / "a.zarr", u16, "cyx")))
    assert (got.channels, got.bit_depth) == ("LA", 16)
    np.testing.assert_array_equal(got.array * np.float32(65535), u16.astype(np.float32))
    f = RNG.standard_normal((20, 30)).astype(np.float32) * 5
    raw = load_image(str(_plain(tmp_path / "f.zarr", f)))
    assert (raw.channels, raw.bit_depth) == ("L", 32)
    np.testing.assert_array_equal(raw.array[0], f)


def test_regions_read_only_what_they_ask_and_equal_the_whole(tmp_path: Path) -> None:
    data = RNG.integers(0, 256, (3, 70, 90), dtype=np.uint8)
    z = _plain(tmp_path / "r.zarr", data)
    whole = load_image(str(z)).array
    with open_regions(str(z)) as reader:
        assert reader.shape == (3, 70, 90) and reader.bit_depth == 8
        np.testing.assert_array_equal(reader.read_region(13, 41, 7, 66), whole[:, 13:41, 7:66])


def test_convolve_a_zarr_in_tiles_equals_the_whole_run_and_the_png(tmp_path: Path) -> None:
    hwc = RNG.integers(0, 256, (61, 47, 3), dtype=np.uint8)
    Image.fromarray(hwc).save(tmp_path / "img.png")
    _ome(tmp_path / "img.ome.zarr", np.moveaxis(hwc, -1, 0), "cyx", chunks=(1, 8, 8))
    for out, extra in (("whole", []), ("tiled", ["--tile", "13"])):
        done = _run(
            "convolve", "img.ome.zarr", "-k", "gaussian:5", "-o", out, "-q", *extra, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    done = _run("convolve", "img.png", "-k", "gaussian:5", "-o", "png", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    pics = [
        np.asarray(Image.open(tmp_path / d / "img.gaussian_5.png"))
        for d in ("whole", "tiled", "png")
    ]
    assert pics[0].shape == (61, 47, 3)
    np.testing.assert_array_equal(pics[0], pics[1])
    np.testing.assert_array_equal(pics[0], pics[2])


def test_a_folder_search_takes_a_zarr_folder_as_one_image(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    _plain(src / "scan.ome.zarr", RNG.integers(0, 256, (3, 20, 20), dtype=np.uint8))
    Image.fromarray(RNG.integers(0, 256, (20, 20), dtype=np.uint8)).save(src / "sub" / "b.png")
    done = _run("convolve", "in", "-r", "-k", "box", "-o", "out", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert written == ["scan.box.png", "sub/b.box.png"]
    assert (
        is_zarr(src / "scan.ome.zarr")
        and not is_zarr(src)
        and zarr_stem("a/scan.ome.zarr/") == "scan"
    )


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("stack.ome.zarr", lambda p: _ome(p, np.zeros((2, 8, 8), np.uint8), "zyx"),
         "holds 2 z planes; convcli filters one 2-D image (take one plane first)"),
        ("six.zarr", lambda p: _plain(p, np.zeros((6, 8, 8), np.uint8)),
         "has 6 channels; convcli reads 1 to 4 (grey, grey+alpha, RGB, RGBA)"),
        ("ints.zarr", lambda p: _plain(p, np.zeros((8, 8), np.int32)),
         "samples of type int32; convcli reads uint8, uint16 or float"),
        ("empty.zarr", lambda p: p.mkdir(),
         "not a Zarr image (no zarr.json, .zgroup or .zarray in it)"),
    ],
)  # fmt: skip
def test_a_zarr_convcli_cannot_read_is_one_line_and_no_output(
    tmp_path: Path, name: str, make: object, message: str
) -> None:
    make(tmp_path / name)  # type: ignore[operator]
    done = _run("convolve", name, "-k", "box", "-o", "out", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"error: {name}: {message}\n"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
