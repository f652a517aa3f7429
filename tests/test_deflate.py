"""Deflate by ISA-L or zlib (imageio/deflate.py), and the ahead-of-time tile iterator."""

from __future__ import annotations

import io
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from convcli import parallel
from convcli.imageio import deflate
from convcli.imageio.png import PngWriter, encode_png


def _photo(h: int = 300, w: int = 257, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(5)
    smooth = np.cumsum(rng.integers(-3, 4, size=(c, h, w)), axis=2)
    return (smooth - smooth.min()).astype(np.uint8)


@pytest.mark.parametrize("engine", ["isal", "zlib"])
@pytest.mark.parametrize("bits", [8, 16])
def test_png_from_either_engine_decodes_to_the_pixels(monkeypatch, engine, bits):
    if engine == "isal" and deflate.ENGINE != "isal":
        pytest.skip("isal is not installed")
    monkeypatch.setattr(deflate, "ENGINE", engine)
    monkeypatch.setattr(parallel, "MIN_PARALLEL_VALUES", 1)  # several parts per band
    monkeypatch.setattr("convcli.imageio.png.DEFLATE_CHUNK", 4096)
    px = _photo().astype(np.uint16) * (257 if bits == 16 else 1)
    buf = io.BytesIO()
    writer = PngWriter(buf, width=257, height=300, channels=3, bit_depth=bits)
    for y in range(0, 300, 71):  # bands that do not divide the height
        writer.write_rows(px[:, y : y + 71])
    writer.close()
    data = buf.getvalue()
    if bits == 8:
        got = np.moveaxis(np.asarray(Image.open(io.BytesIO(data))), -1, 0)
    else:
        from convcli.imageio.png import decode_png16

        got = np.moveaxis(decode_png16(data)[0], -1, 0)
    np.testing.assert_array_equal(got, px)
    # the IDAT payloads are one valid zlib stream, checksums included
    assert zlib.decompress(_idat(data))[:1] == b"\x02"  # Up filter on the first row


def test_the_whole_image_writer_is_the_band_writer_in_one_band():
    px = _photo()
    buf = io.BytesIO()
    writer = PngWriter(buf, width=257, height=300, channels=3)
    writer.write_rows(px)
    writer.close()
    assert encode_png(px) == buf.getvalue()


def test_checksums_match_zlib():
    data = bytes(range(256)) * 1000
    assert deflate.adler32(data) == zlib.adler32(data)
    assert deflate.adler32(data[500:], deflate.adler32(data[:500])) == zlib.adler32(data)
    assert deflate.crc32(data, 7) == zlib.crc32(data, 7)


def test_broken_data_is_one_of_the_known_errors():
    with pytest.raises(deflate.ERRORS):
        deflate.decompressor().decompress(b"\x78\x01" + b"\xff" * 64)


def _idat(png: bytes) -> bytes:
    pos, out = 8, []
    while pos < len(png):
        n = int.from_bytes(png[pos : pos + 4], "big")
        if png[pos + 4 : pos + 8] == b"IDAT":
            out.append(png[pos + 8 : pos + 8 + n])
        pos += 12 + n
    return b"".join(out)


# --------------------------------------------------------------------------- parallel.ahead


def test_ahead_gives_every_item_in_order_from_another_thread():
    makers = []

    def items():
        for i in range(50):
            makers.append(threading.current_thread().name)
            yield i

    assert list(parallel.ahead(items())) == list(range(50))
    assert set(makers) == {"convcli-ahead"}


def test_ahead_raises_the_producers_error_in_its_place():
    def items():
        yield 1
        yield 2
        raise ValueError("tile 3 failed")

    got = []
    with pytest.raises(ValueError, match="tile 3 failed"):
        for x in parallel.ahead(items()):
            got.append(x)
    assert got == [1, 2]


def test_ahead_stops_the_producer_when_the_consumer_stops():
    made = []

    def items():
        for i in range(1000):
            made.append(i)
            yield i

    it = parallel.ahead(items())
    assert next(it) == 0
    it.close()
    time.sleep(0.3)
    n = len(made)
    time.sleep(0.2)
    assert len(made) == n <= 4  # stopped after at most the items in hand


def test_ahead_holds_at_most_two_items():
    alive = set()
    most = 0

    class Item:
        def __init__(self, i: int) -> None:
            nonlocal most
            self.i = i
            alive.add(i)
            most = max(most, len(alive))

    def items():
        for i in range(30):
            yield Item(i)

    for item in parallel.ahead(items()):
        time.sleep(0.002)  # the producer is faster than the caller
        alive.discard(item.i)
    assert most == 2
