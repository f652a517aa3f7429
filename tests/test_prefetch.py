"""Tests for convcli.imageio.prefetch: an input decoded on a thread, handed to load_image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from convcli.errors import ImageError
from convcli.imageio import load_image, prefetch
from convcli.imageio.png import encode_png16

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _nothing_pending():
    prefetch.take("")  # drop what an earlier test may have left
    yield
    prefetch.take("")


@pytest.fixture
def takes(monkeypatch):
    """What every take() gave (None or an image), in order."""
    seen: list[Image.Image | None] = []
    real = prefetch.take

    def spy(label: str) -> Image.Image | None:
        img = real(label)
        seen.append(img)
        return img

    monkeypatch.setattr(prefetch, "take", spy)
    return seen


def _noise(h: int = 48, w: int = 64, c: int = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w, c) if c > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _save(arr: np.ndarray, path: Path, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


def _started() -> bool:
    return prefetch._pending is not None


def _finish_decode() -> None:
    pending = prefetch._pending
    assert pending is not None
    pending.thread.join()


@pytest.mark.parametrize(
    ("name", "channels", "kw"),
    [
        ("rgb.png", 3, {}),
        ("grey.png", 1, {}),
        ("rgba.png", 4, {}),
        ("photo.jpg", 3, {"quality": 90}),
        ("photo.webp", 3, {"lossless": True}),
    ],
)
def test_same_array_as_a_plain_load(tmp_path, takes, name, channels, kw):
    if name.endswith(".webp") and not features.check("webp"):
        pytest.skip("Pillow without WebP")
    path = _save(_noise(c=channels), tmp_path / name, **kw)
    plain = load_image(path)
    prefetch.start(str(path))
    assert _started()
    got = load_image(str(path))
    assert takes[-1] is not None  # the prefetched image was used
    np.testing.assert_array_equal(got.array, plain.array)
    assert (got.channels, got.mode, got.bit_depth) == (plain.channels, plain.mode, plain.bit_depth)


def test_exif_orientation_applied_to_a_prefetched_jpeg(tmp_path, takes):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "turned.jpg"
    Image.fromarray(_noise(40, 70)).save(path, quality=95, exif=exif)
    plain = load_image(path)
    prefetch.start(str(path))
    got = load_image(str(path))
    assert takes[-1] is not None
    assert got.array.shape == plain.array.shape == (3, 70, 40)
    np.testing.assert_array_equal(got.array, plain.array)


def test_gray_and_float64_after_a_prefetch(tmp_path, takes):
    path = _save(_noise(), tmp_path / "rgb.png")
    plain = load_image(path, gray=True, dtype=np.float64)
    prefetch.start(str(path))
    got = load_image(str(path), gray=True, dtype=np.float64)
    assert takes[-1] is not None
    assert got.array.dtype == np.float64
    np.testing.assert_array_equal(got.array, plain.array)


@pytest.mark.parametrize("how", ["rewritten", "replaced", "touched"])
def test_a_file_changed_after_start_is_read_again(tmp_path, takes, how):
    path = _save(_noise(seed=1), tmp_path / "in.png")
    prefetch.start(str(path))
    _finish_decode()  # the old pixels are decoded: only the identity check can tell
    before = os.stat(path)
    new = _noise(seed=2)
    if how == "rewritten":  # same inode, new bytes
        _save(new, path)
    elif how == "replaced":  # a new file renamed over the old one
        _save(new, tmp_path / "new.png")
        os.replace(tmp_path / "new.png", path)
    else:  # same bytes, only the modification time changes
        new = _noise(seed=1)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    got = load_image(str(path))
    assert takes[-1] is None  # the prefetched image was refused
    np.testing.assert_array_equal(got.array, np.moveaxis(new, -1, 0) / np.float32(255))


def test_another_path_is_not_handed_over(tmp_path, takes):
    a = _save(_noise(seed=1), tmp_path / "a.png")
    b = _save(_noise(seed=2), tmp_path / "b.png")
    prefetch.start(str(a))
    got = load_image(str(b))
    assert takes[-1] is None
    np.testing.assert_array_equal(got.array, load_image(b).array)


def test_a_relative_path_matches_its_absolute_form(tmp_path, takes, monkeypatch):
    path = _save(_noise(), tmp_path / "in.png")
    monkeypatch.chdir(tmp_path)
    prefetch.start("in.png")
    got = load_image(str(path))
    assert takes[-1] is not None
    np.testing.assert_array_equal(got.array, load_image(path).array)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_file_gives_the_same_error(tmp_path, takes, capfd, fmt):
    path = _save(_noise(64, 64), tmp_path / f"photo.{fmt}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as plain:
        load_image(str(path))
    prefetch.start(str(path))
    assert _started()  # the header is fine: the decode fails, on the thread
    with pytest.raises(ImageError) as got:
        load_image(str(path))
    assert takes[-1] is None
    assert str(got.value) == str(plain.value)
    assert str(got.value).startswith(f"{path}: truncated image (")
    assert "\n" not in str(got.value)
    assert capfd.readouterr().err == ""  # no thread traceback on stderr


def test_image_above_max_pixels_is_not_prefetched(tmp_path):
    path = _save(_noise(48, 64), tmp_path / "in.png")  # 3072 pixels
    prefetch.start(str(path), max_pixels=3000)
    assert not _started()
    with pytest.raises(ImageError, match="too many pixels"):
        load_image(str(path), max_pixels=3000)
    prefetch.start(str(path), max_pixels="3072")
    assert _started()


def test_image_above_the_fixed_bound_is_not_prefetched(tmp_path, monkeypatch):
    path = _save(_noise(48, 64), tmp_path / "in.png")
    monkeypatch.setattr(prefetch, "MAX_PIXELS", 3071)
    prefetch.start(str(path), max_pixels=None)
    assert not _started()
    monkeypatch.setattr(prefetch, "MAX_PIXELS", 3072)
    prefetch.start(str(path), max_pixels=None)
    assert _started()


def test_take_is_one_shot(tmp_path):
    path = _save(_noise(), tmp_path / "in.png")
    prefetch.start(str(path))
    img = prefetch.take(str(path))
    assert img is not None
    with img:
        np.testing.assert_array_equal(np.asarray(img), _noise())
    assert prefetch.take(str(path)) is None
    assert prefetch.take("") is None


def test_a_second_start_replaces_the_first(tmp_path):
    a = _save(_noise(seed=1), tmp_path / "a.png")
    b = _save(_noise(seed=2), tmp_path / "b.png")
    prefetch.start(str(a))
    prefetch.start(str(b))
    assert prefetch.take(str(a)) is None  # b was pending, and take is one-shot
    prefetch.start(str(a))
    prefetch.start(str(b))
    img = prefetch.take(str(b))
    assert img is not None
    img.close()


def test_what_is_not_prefetched(tmp_path, monkeypatch):
    def started(source: str, **kw) -> bool:
        prefetch.start(source, **kw)
        return prefetch.take(source) is not None

    hwc16 = np.random.default_rng(0).integers(0, 65536, size=(8, 8, 3), dtype=np.uint16)
    png16 = tmp_path / "c16.png"
    png16.write_bytes(encode_png16(np.moveaxis(hwc16, -1, 0)))
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(grey16)
    tiff = _save(_noise(), tmp_path / "in.tif")
    gif = _save(_noise(c=1), tmp_path / "in.gif")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    assert started(str(_save(_noise(), tmp_path / "ok.png")))
    for path in (png16, grey16, tiff, gif, empty, text, tmp_path, tmp_path / "missing.png"):
        assert not started(str(path)), path
    assert not started("-")
    assert not started(str(tmp_path / "ok.png"), max_pixels="nonsense")  # never raises
    # every one of them still reads (or fails) as before
    np.testing.assert_array_equal(load_image(str(png16)).array * 65535, np.moveaxis(hwc16, -1, 0))


def test_importing_prefetch_imports_no_numpy():
    code = (
        "import sys, convcli.imageio.prefetch\n"
        "heavy = ('numpy', 'cv2', 'yaml', 'convcli.imageio.read')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("command", ["convolve", "pool", "run"])
def test_a_command_starts_its_prefetch_before_numpy_is_imported(tmp_path, command):
    """The options (their defaults too) parse without numpy, and the command's first act
    is to start reading its input: the decode overlaps the imports that follow."""
    img = _save(_noise(), tmp_path / "in.png")
    args = {
        "convolve": ["convolve", str(img), "-k", "box", "-q"],
        "pool": ["pool", str(img), "-q"],
        "run": ["run", str(ROOT / "kernels" / "pipelines" / "tiny-edge-cnn.yaml"), str(img), "-q"],
    }[command]
    code = (
        "import sys\n"
        "import convcli.imageio.prefetch as p\n"
        "def start(source, **kw):\n"
        "    print('numpy' in sys.modules, source)\n"
        "    raise SystemExit(0)\n"
        "p.start = start\n"
        "from convcli.cli.app import main\n"
        f"sys.argv = ['convcli', *{args!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.stdout.split() == ["False", str(img)], out.stdout + out.stderr


def test_a_tiled_run_drops_the_prefetch_it_does_not_use(tmp_path):
    from convcli.kernels import load_kernel
    from convcli.pipeline import ConvStage, Pipeline
    from convcli.run.jobs import OutputOptions, make_job, process_one

    src = _save(_noise(64, 80), tmp_path / "in.png")
    prefetch.start(str(src))
    assert _started()
    pipeline = Pipeline((ConvStage(load_kernel("box")),), name="b")
    done = process_one(pipeline, make_job(str(src), str(tmp_path / "out")), OutputOptions(tile=16))
    assert done.status == "done", done.error
    assert prefetch.take(str(src)) is None  # nothing left holding the decoded picture
