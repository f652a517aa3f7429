"""Hand-worked cases for the size arithmetic."""

from __future__ import annotations

import pytest

from convcli import ParameterError
from convcli.shapes import as_pair, conv_geometry, parse_padding, pool_geometry, same_padding


def test_resnet_stem() -> None:
    conv = conv_geometry((3, 224, 224), (64, 3, 7, 7), stride=2, padding=3)
    assert conv.out_shape == (64, 112, 112)
    assert conv.params == 9408
    assert conv.macs == 64 * 112 * 112 * 3 * 7 * 7
    assert conv.formulas[0].text() == "floor((224 + 2·3 - 1·(7-1) - 1) / 2) + 1 = 112"
    pool = pool_geometry(conv.out_shape, size=3, stride=2, padding=1,
                         rf_in=conv.receptive_field, jump_in=conv.jump)  # fmt: skip
    assert pool.out_shape == (64, 56, 56)
    assert pool.receptive_field == (11, 11) and pool.jump == (4, 4)


def test_vgg_block() -> None:
    g1 = conv_geometry((3, 224, 224), (64, 3, 3, 3), padding=1, bias=True)
    g2 = conv_geometry(g1.out_shape, (64, 64, 3, 3), padding=1, bias=True,
                       rf_in=g1.receptive_field, jump_in=g1.jump)  # fmt: skip
    p = pool_geometry(g2.out_shape, size=2, rf_in=g2.receptive_field, jump_in=g2.jump)
    assert (g1.params, g2.params) == (1792, 36928)
    assert p.out_shape == (64, 112, 112)
    assert p.receptive_field == (6, 6) and p.jump == (2, 2)


def test_strided_same_with_even_kernel() -> None:
    g = conv_geometry((1, 7, 7), (4, 4), stride=2, padding="same")
    # out = ceil(7/2) = 4; total = (4-1)*2 + 4 - 7 = 3 -> 1 before, 2 after
    assert g.out_shape == (1, 4, 4)
    assert g.padding == (1, 2, 1, 2)
    assert same_padding(7, 4, 2, 1) == (1, 2)


def test_unused_rows_warning() -> None:
    g = conv_geometry((1, 8, 8), (3, 3), stride=2, padding="valid")
    # windows start at 0, 2, 4: last covers rows 4-6; row 7 is never read
    assert g.out_shape == (1, 3, 3)
    assert g.formulas[0].unused == 1
    assert any("leaves the last 1 input row unused" in w for w in g.warnings)


def test_bank_and_depthwise_params() -> None:
    assert conv_geometry((3, 10, 10), (3, 3)).params == 9
    g = conv_geometry((3, 10, 10), (2, 3, 3))
    assert g.out_shape == (6, 10, 10) and g.params == 18 and g.macs == 6 * 100 * 9


def test_parsers() -> None:
    assert as_pair("2,3", "stride") == (2, 3)
    assert parse_padding("0,1,2,3") == (0, 1, 2, 3)
    with pytest.raises(ParameterError, match="stride must be a whole number"):
        as_pair("two", "stride")
    with pytest.raises(ParameterError, match="stride takes one or two values"):
        as_pair("1,2,3", "stride")
    with pytest.raises(ParameterError, match="must hold whole numbers"):
        as_pair((1.5, 2), "stride")
