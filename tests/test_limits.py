"""convcli.run.limits: every array a run makes, sized from the shape arithmetic alone."""

from __future__ import annotations

import numpy as np
import pytest

from convcli.errors import ParameterError, SizeLimitError
from convcli.imageio import ImageData, montage_image
from convcli.imageio.montage import montage_size
from convcli.kernels.model import Kernel
from convcli.pipeline import ConvStage, Pipeline, PoolStage, plan
from convcli.run.limits import (
    DEFAULT_MAX_VALUES,
    array_sizes,
    check_image,
    check_sizes,
    effective_limit,
    parse_limit,
)

BOX = Kernel("box", np.ones((3, 3)) / 9)


def _sizes(stages: tuple, shape: tuple[int, int, int], **kw: bool) -> dict[str, tuple]:
    result = plan(Pipeline(stages, name=""), shape)
    return {a.what: a.shape for a in array_sizes(result, **kw)}


def test_padding_dilation_and_outputs_of_every_stage() -> None:
    sizes = _sizes(
        (ConvStage(BOX, padding=(1, 2, 3, 4), dilation=2), PoolStage("max", 2, padding=1)),
        (3, 20, 30),
    )
    assert sizes == {
        "stage 1 (conv box): padded input": (3, 23, 37),
        "stage 1 (conv box): dilated kernel": (5, 5),
        "stage 1 (conv box): output": (3, 19, 33),
        "stage 2 (pool maxpool): padded input": (3, 21, 35),
        "stage 2 (pool maxpool): output": (3, 10, 17),
    }


def test_a_layer_counts_its_im2col_block() -> None:
    layer = Kernel("layer", np.zeros((8, 3, 5, 5)))
    sizes = _sizes((ConvStage(layer, padding="valid"),), (3, 40, 3000))
    assert sizes["stage 1 (conv layer): im2col block"] == (3 * 5 * 5, 2996)  # W_out > 2048
    assert sizes["stage 1 (conv layer): output"] == (8, 36, 2996)
    small = _sizes((ConvStage(layer, padding="valid"),), (3, 40, 40))
    assert small["stage 1 (conv layer): im2col block"] == (75, 2048)


@pytest.mark.parametrize(("n", "h", "w"), [(1, 5, 5), (7, 300, 100), (12, 64, 64), (30, 3, 200)])
def test_the_montage_estimate_is_the_montage(n: int, h: int, w: int) -> None:
    width, height = montage_image(np.zeros((n, h, w))).size
    assert montage_size(n, h, w) == (width, height)
    sizes = _sizes((ConvStage(Kernel("k", np.zeros((n, 1, 1, 1))), padding="valid"),), (1, h, w),
                   montage=True)  # fmt: skip
    assert sizes[f"montage of {n} maps"] == (height, width)


def test_limits_and_the_default() -> None:
    assert parse_limit("auto") == "auto" and parse_limit("none") is None
    assert parse_limit("2**20") == 1 << 20 and parse_limit("1,000") == 1000
    for bad in ("0", "-5", "lots", "1.5", "2**99"):
        with pytest.raises(ParameterError, match="--max-output-pixels must be"):
            parse_limit(bad)
    assert effective_limit("auto", 10) == DEFAULT_MAX_VALUES
    assert effective_limit("auto", 100_000_000) == 400_000_000  # a big photo may grow 4×
    assert effective_limit(7, 10**9) == 7 and effective_limit(None, 1) is None


def test_check_sizes_names_the_largest_array() -> None:
    p = Pipeline((ConvStage(BOX, padding=10000),), name="")
    with pytest.raises(SizeLimitError) as err:
        check_sizes(plan(p, (3, 16, 16)))
    assert str(err.value).startswith(
        "stage 1 (conv box): the padded input would be 3×20016×20016 = 1.2 G values, over the"
        " limit of 268 M"
    )
    check_sizes(plan(p, (3, 16, 16)), limit=None)
    check_sizes(plan(p, (3, 16, 16)), limit=3 * 20016 * 20016)  # exactly at the limit: fine
    with pytest.raises(SizeLimitError):
        check_sizes(plan(p, (3, 16, 16)), limit=3 * 20016 * 20016 - 1)


def test_check_image_plans_on_the_channels_stage_1_sees() -> None:
    rgba = ImageData(np.zeros((4, 10, 10), np.float32), "RGBA", "RGBA", 8, "x.png")
    sobel = Kernel("edge", np.array([[-1.0, 0, 1]] * 3))  # sums to 0: alpha is dropped
    p = Pipeline((ConvStage(sobel, padding=0),), name="")
    check_image(p, rgba, limit=3 * 8 * 8)  # output 3×8×8: alpha gone
    with pytest.raises(SizeLimitError, match="output would be 3×8×8"):
        check_image(p, rgba, limit=3 * 8 * 8 - 1)
    blur = Pipeline((ConvStage(BOX, padding=0),), name="")  # a blur filters alpha too
    with pytest.raises(SizeLimitError, match="output would be 4×8×8"):
        check_image(blur, rgba, limit=3 * 8 * 8)
    assert rgba.array.shape == (4, 10, 10) and not rgba.array.any()  # untouched
