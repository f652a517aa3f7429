"""Images in and out: Pillow <-> ``(C, H, W)`` float arrays, feature-map writers.

Reading (:func:`load_image`, :func:`read_image`) turns any image Pillow opens
into a channels-first float array: colour channels first, alpha last; integer
images scaled to ``[0, 1]`` by their type's maximum (8-bit / 255, 16-bit /
65535, without going through 8 bits), ``I`` and ``F`` images kept raw. EXIF
orientation is applied. Every failure is one :class:`~convcli.errors.ImageError`
whose message starts with the file name.

Writing (:func:`write_feature_maps`) turns a ``(C, H, W)`` stack into png
(8- or 16-bit), jpeg or webp pictures (through :func:`to_pixels`, whose
``auto`` mapping :mod:`convcli.imageio.tone` decides), float32 tiff, npy or npz files named
``<out>/<stem>.<name>[.<map>].<ext>``. Every file is written to a temporary
file in its folder and renamed into place only when all files of the call were
encoded, so an error or Ctrl-C leaves no partial output. Existing outputs are
not overwritten without ``force``; inputs never are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Public names resolve lazily (as in convcli/__init__.py), so a light submodule
# (convcli.imageio.prefetch, .limits) can be imported without numpy.
_EXPORTS = {
    "montage_image": "convcli.imageio.montage",
    "RANGE_MODES": "convcli.imageio.pixels",
    "MapImage": "convcli.imageio.pixels",
    "to_pixels": "convcli.imageio.pixels",
    "encode_png": "convcli.imageio.png",
    "encode_png16": "convcli.imageio.png",
    "ImageData": "convcli.imageio.read",
    "load_image": "convcli.imageio.read",
    "read_image": "convcli.imageio.read",
    "ToneMap": "convcli.imageio.tone",
    "parse_range": "convcli.imageio.tone",
    "tone_warnings": "convcli.imageio.tone",
    "WriteResult": "convcli.imageio.write",
    "binarize": "convcli.imageio.write",
    "check_outputs": "convcli.imageio.write",
    "plan_outputs": "convcli.imageio.write",
    "safe_name": "convcli.imageio.write",
    "write_feature_maps": "convcli.imageio.write",
    "write_file": "convcli.imageio.write",
}

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401  (re-exported lazily through __getattr__)
    from convcli.imageio.montage import montage_image
    from convcli.imageio.pixels import RANGE_MODES, MapImage, to_pixels
    from convcli.imageio.png import encode_png, encode_png16
    from convcli.imageio.read import ImageData, load_image, read_image
    from convcli.imageio.tone import ToneMap, parse_range, tone_warnings
    from convcli.imageio.write import (
        WriteResult,
        binarize,
        check_outputs,
        plan_outputs,
        safe_name,
        write_feature_maps,
        write_file,
    )

__all__ = [
    "RANGE_MODES",
    "ImageData",
    "MapImage",
    "ToneMap",
    "WriteResult",
    "binarize",
    "check_outputs",
    "encode_png",
    "encode_png16",
    "load_image",
    "montage_image",
    "parse_range",
    "plan_outputs",
    "read_image",
    "safe_name",
    "to_pixels",
    "tone_warnings",
    "write_feature_maps",
    "write_file",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convcli.imageio' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
