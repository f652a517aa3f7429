"""Tiled execution equals the whole-image run, for every option (convcli.pipeline.tiles)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcli.errors import ParameterError
from convcli.imageio import ImageData
from convcli.kernels.model import Kernel
from convcli.ops.padding import pad2d
from convcli.pipeline import ConvStage, Pipeline, PoolStage, run
from convcli.pipeline.tiles import (
    TiledRun,
    choose_tile,
    index_runs,
    parse_bytes,
    run_tiled,
    source_index,
)
from convcli.vocab import PadMode  # noqa: E402

PAD_MODES = PadMode.choices()
RNG = np.random.default_rng(14)


def _image(c: int, h: int, w: int, channels: str | None = None, seed: int = 0) -> ImageData:
    arr = np.random.default_rng(seed).random((c, h, w), dtype=np.float32)
    names = channels or {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    return ImageData(arr, names, names, 8, "test")


def _kernel(shape: tuple[int, ...], seed: int = 1, **kw: object) -> Kernel:
    w = np.random.default_rng(seed).standard_normal(shape)
    return Kernel("k", w, **kw)  # type: ignore[arg-type]


def _assert_same(p: Pipeline, img: ImageData, tile: int | tuple[int, int]) -> None:
    whole = run(p, img).maps
    tiled = run_tiled(p, img, tile=tile).maps
    assert whole is not None and tiled is not None
    assert tiled.shape == whole.shape
    assert tiled.dtype == whole.dtype
    scale = max(1.0, float(np.max(np.abs(whole[np.isfinite(whole)]), initial=0.0)))
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5 * scale)


# --------------------------------------------------------------------------- index arithmetic


@pytest.mark.parametrize("mode", ["reflect", "symmetric", "replicate", "circular", "zeros"])
def test_source_index_matches_padding(mode: str) -> None:
    for n in (1, 2, 3, 7):
        for before, after in ((0, 0), (1, 2), (5, 9), (13, 1)):
            x = np.arange(n, dtype=np.float64)[None, None] + 1  # zeros fill stays 0
            padded = pad2d(x, (0, 0, before, after), mode=mode)[0, 0]
            idx = source_index(np.arange(-before, n + after), n, mode)
            got = np.where(idx >= 0, idx + 1, 0).astype(np.float64)
            np.testing.assert_array_equal(got, padded)


def test_index_runs() -> None:
    assert index_runs(np.array([3])) == [(3, 4, 0, 1)]
    assert index_runs(np.array([0, 1, 5, 6, 7, 9])) == [(0, 2, 0, 2), (5, 8, 2, 5), (9, 10, 5, 6)]


def test_circular_tile_reads_the_far_side() -> None:
    img = _image(1, 12, 10)
    p = Pipeline((ConvStage(_kernel((5, 5)), pad_mode="circular"),), name="c")
    t = TiledRun(p, img, tile=2)
    rows, cols = t.needed((0, 2, 0, 2))[0]
    assert rows.tolist() == [0, 1, 2, 3, 10, 11]  # two rows from the bottom of the image
    assert cols.tolist() == [0, 1, 2, 3, 8, 9]


# --------------------------------------------------------------------------- the option grid


@pytest.mark.parametrize("pad_mode", PAD_MODES)
@pytest.mark.parametrize("padding", ["same", "valid", "full", (2, 0, 1, 3)])
def test_pad_modes_and_paddings(pad_mode: str, padding: object) -> None:
    img = _image(2, 17, 13, "LA")
    k = _kernel((4, 3))  # even height: same padding is uneven
    p = Pipeline(
        (ConvStage(k, padding=padding, pad_mode=pad_mode, pad_value=0.25),),
        name="p", alpha="channel",
    )  # fmt: skip
    for tile in (1, 3, (5, 4)):
        _assert_same(p, img, tile)


@pytest.mark.parametrize("stride", [1, 2, (3, 1)])
@pytest.mark.parametrize("dilation", [1, 2, (1, 3)])
def test_stride_and_dilation(stride: object, dilation: object) -> None:
    img = _image(1, 23, 19)
    for mode in ("reflect", "circular", "zeros"):
        p = Pipeline(
            (ConvStage(_kernel((3, 3)), stride=stride, dilation=dilation, pad_mode=mode),),
            name="s",
        )  # fmt: skip
        for tile in (2, 7):
            _assert_same(p, img, tile)


def test_tile_smaller_than_the_reach_and_one_pixel_tiles() -> None:
    img = _image(3, 9, 8)
    k = _kernel((7, 7))
    for mode in PAD_MODES:
        p = Pipeline((ConvStage(k, pad_mode=mode, dilation=2),), name="r")
        _assert_same(p, img, 1)
    # the padding is wider than the image: reflection repeats
    tiny = _image(1, 3, 2)
    p = Pipeline((ConvStage(_kernel((9, 9)), padding="full", pad_mode="reflect"),), name="t")
    _assert_same(p, tiny, 1)
    _assert_same(p, tiny, (4, 3))


def test_banks_layers_groups_bias_activation() -> None:
    img = _image(4, 21, 18, "RGBA")
    bank = Kernel("bank", RNG.standard_normal((3, 3, 3)), labels=("a", "b", "c"))
    layer = Kernel("layer", RNG.standard_normal((6, 2, 3, 3)))
    cases = [
        (ConvStage(bank, bias=(0.1, -0.2, 0.3), activation="relu", pad_mode="symmetric"),),
        (ConvStage(layer, groups=2, bias=0.5, activation="tanh", pad_mode="circular",
                   stride=2),),
        (ConvStage(_kernel((5, 5)), activation="leaky-relu:0.2", flip=True, pad_mode="replicate"),),
    ]  # fmt: skip
    for stages in cases:
        p = Pipeline(stages, name="b", alpha="channel")
        for tile in (4, (3, 7)):
            _assert_same(p, img, tile)


def test_flip_with_an_off_centre_origin() -> None:
    k = Kernel("o", RNG.standard_normal((4, 4)), origin=(0, 3), flip=True)
    p = Pipeline((ConvStage(k, pad_mode="reflect"),), name="o")
    _assert_same(p, _image(1, 14, 15), 4)


@pytest.mark.parametrize("op", ["max", "avg", "min"])
def test_pools(op: str) -> None:
    img = _image(2, 19, 17, "LA")
    grid = itertools.product([2, 3, (2, 3)], [None, 1, 2], [0, 1], [False, True], [True, False])
    for size, stride, padding, ceil_mode, cip in grid:
        if op != "avg" and not cip:
            continue
        stage = PoolStage(op, size=size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                          count_include_pad=cip)  # fmt: skip
        p = Pipeline((stage,), name="pool", alpha="channel")
        _assert_same(p, img, 3)
    p = Pipeline((PoolStage(op, size=3, stride=2, padding="same"),), name="same")
    _assert_same(p, img, (2, 5))


@pytest.mark.parametrize("op", ["global-max", "global-avg"])
def test_global_pools_reduce_over_tiles(op: str) -> None:
    img = _image(3, 20, 22)
    layer = Kernel("l", RNG.standard_normal((2, 3, 1, 1)))
    stages = [
        (PoolStage(op),),
        (ConvStage(_kernel((3, 3))), PoolStage(op)),
        (ConvStage(_kernel((3, 3))), PoolStage("max", 2), PoolStage(op), ConvStage(layer)),
    ]
    for s in stages:
        p = Pipeline(tuple(s), name="g")  # type: ignore[arg-type]
        for tile in (3, (20, 22)):
            _assert_same(p, img, tile)


@pytest.mark.parametrize("first", ["blur", "edge", "avgpool", "maxpool", "layer"])
@pytest.mark.parametrize("alpha", ["premultiply", "drop", "channel"])
def test_alpha(first: str, alpha: str) -> None:
    img = _image(4, 16, 15, "RGBA")
    img.array[3] = np.where(img.array[3] > 0.5, img.array[3], 0.0)  # transparent holes
    stage: ConvStage | PoolStage = {
        "blur": ConvStage(Kernel("b", np.full((3, 3), 1 / 9))),
        "edge": ConvStage(Kernel("e", np.array([[-1.0, 0, 1]] * 3))),
        "avgpool": PoolStage("avg", 3, stride=2, padding=1),
        "maxpool": PoolStage("max", 2),
        "layer": ConvStage(
            Kernel("l", RNG.standard_normal((2, 4 if alpha == "channel" else 3, 3, 3)))
        ),
    }[first]
    p = Pipeline((stage, ConvStage(Kernel("b2", np.full((3, 3), 1 / 9)))), name="a", alpha=alpha)
    _assert_same(p, img, (3, 4))


def test_multi_stage_pipelines() -> None:
    img = _image(1, 41, 37)
    sobel = Kernel("sobel", np.stack([np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])] * 2))
    layer = Kernel("layer2", RNG.standard_normal((3, 2, 3, 3)))
    p = Pipeline(
        (
            ConvStage(sobel, activation="relu", pad_mode="reflect"),
            PoolStage("max", 2),
            ConvStage(layer, pad_mode="circular", stride=2),
            PoolStage("avg", 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
            ConvStage(_kernel((3, 3)), dilation=2, pad_mode="symmetric"),
        ),
        name="deep",
    )
    for tile in (1, 2, 3, (4, 1)):
        _assert_same(p, img, tile)


def test_float64_and_gray_images() -> None:
    img = ImageData(RNG.random((1, 13, 11)), "L", "L", 8, "x")  # float64
    p = Pipeline((ConvStage(_kernel((3, 3))), PoolStage("avg", 2)), name="d", dtype="float64")
    _assert_same(p, img, 2)


def test_bit_identical_with_the_opencv_engine() -> None:
    img = _image(3, 64, 80)
    p = Pipeline((ConvStage(Kernel("g", np.outer([1.0, 4, 6, 4, 1], [1.0, 4, 6, 4, 1]) / 256)),),
                 name="g")  # fmt: skip
    assert np.array_equal(run_tiled(p, img, tile=(16, 80)).maps, run(p, img).maps)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 4), kw=st.integers(1, 4),
    stride=st.integers(1, 3), dilation=st.integers(1, 2), mode=st.sampled_from(PAD_MODES),
    padding=st.sampled_from(["same", "full", 1]), th=st.integers(1, 5), tw=st.integers(1, 5),
    pool=st.booleans(),
)  # fmt: skip
def test_random_small_cases(
    h: int, w: int, kh: int, kw: int, stride: int, dilation: int, mode: str, padding: object,
    th: int, tw: int, pool: bool,
) -> None:  # fmt: skip
    img = _image(1, h, w, seed=h * 13 + w)
    stages: list[ConvStage | PoolStage] = [
        ConvStage(_kernel((kh, kw)), stride=stride, dilation=dilation, pad_mode=mode,
                  padding=padding, pad_value=-0.5)
    ]  # fmt: skip
    p0 = Pipeline(tuple(stages), name="r")
    try:
        whole = run(p0, img)
    except Exception:  # noqa: BLE001 - the kernel does not fit: nothing to compare
        return
    if pool and min(whole.out_shape[1:]) >= 2:
        stages.append(PoolStage("max", 2, ceil_mode=True))
    _assert_same(Pipeline(tuple(stages), name="r"), img, (th, tw))


# --------------------------------------------------------------------------- tile size


def test_default_tile_fits_the_budget() -> None:
    img = _image(3, 400, 300)
    p = Pipeline((ConvStage(_kernel((7, 7))), PoolStage("max", 2)), name="b")
    t = TiledRun(p, img, memory_budget=4 << 20)
    th, tw = t.tile
    assert tw == 150 and 1 <= th < 200  # full-width bands, several of them
    assert t.tile_bytes((0, th, 0, tw)) + t.band_bytes(th) <= 4 << 20
    assert choose_tile(t, 1 << 40) == (200, 150)  # everything fits: one band
    np.testing.assert_allclose(t.run().maps, run(p, img).maps, atol=1e-5)


def test_parse_bytes_and_bad_tiles() -> None:
    assert parse_bytes("64M") == 64 << 20
    with pytest.raises(ParameterError, match="memory budget"):
        parse_bytes("lots")
    with pytest.raises(ParameterError, match="tile"):
        TiledRun(Pipeline((PoolStage("max"),), name="x"), _image(1, 4, 4), tile=0)


def test_progress_reports_every_tile() -> None:
    img = _image(1, 10, 9)
    p = Pipeline((ConvStage(_kernel((3, 3))),), name="p")
    seen = []
    run_tiled(p, img, tile=(4, 5), on_progress=seen.append)
    assert [s.tiles_done for s in seen] == [1, 2, 3, 4, 5, 6]
    assert [s.rows_done for s in seen] == [0, 4, 4, 8, 8, 10]
    assert all(s.tiles_total == 6 and s.rows_total == 10 for s in seen)
