"""OME-Zarr and Zarr images as input: the full-resolution array, read a region at a time.

A ``.zarr`` folder is one image. Read through the ``zarr`` package (the
``zarr`` extra: ``pip install 'convcli[zarr]'``), imported only for such an input:

- **OME-Zarr** (NGFF 0.4 or 0.5): the first (full-resolution) dataset of the
  first multiscale image; its axes say which is which. ``t`` and ``z`` must
  hold one plane (a stack is refused: pick a plane first); ``c`` holds 1 to 4
  channels (grey, grey+alpha, RGB, RGBA).
- **A plain Zarr array**: ``(H, W)``, or ``(C, H, W)`` with the channels first,
  as OME-Zarr orders them.

Samples are uint8 or uint16 (scaled by 255 or 65535, as any 8/16-bit image)
or float32/float64 (taken as they are, as a float TIFF). Zarr reads only the
chunks a region touches, so an image larger than memory runs in tiles like a
big TIFF.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ImageError

#: The files that make a folder a Zarr group or array (Zarr 3, Zarr 2).
_METADATA = ("zarr.json", ".zgroup", ".zarray")
#: Channel names by channel count.
_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr folder: named ``*.zarr``, or holding Zarr metadata."""
    p = os.fspath(path)
    if p == "-" or not os.path.isdir(p):
        return False
    if p.rstrip("/\\").lower().endswith(".zarr"):
        return True
    return any(os.path.isfile(os.path.join(p, m)) for m in _METADATA)


def zarr_stem(path: str | Path) -> str:
    """The name outputs are named after: ``scan`` for ``scan.ome.zarr`` or ``scan.zarr``."""
    name = Path(os.fspath(path).rstrip("/\\")).name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class ZarrImage:
    """The image of a Zarr folder as an ``(H, W[, C])`` source sliced by ``[ys, xs]``.

    Attributes: ``shape`` ``(H, W, C)``, ``channels`` (``L``, ``LA``, ``RGB``,
    ``RGBA``), ``bits`` (8, 16, or 32 for float samples) and ``divisor`` (255,
    65535, or None for floats).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = os.fspath(path)
        arr, axes = _open(self.path)
        dims = dict(zip(axes, arr.shape, strict=True))
        for name in axes:
            if name not in ("c", "y", "x") and dims[name] != 1:
                what = {"t": "time points", "z": "z planes"}.get(name, f"planes along {name!r}")
                raise ImageError(
                    f"{self.path}: holds {dims[name]} {what}; convcli filters one 2-D image"
                    " (take one plane first)"
                )
        c = dims.get("c", 1)
        if c not in _CHANNELS:
            raise ImageError(
                f"{self.path}: has {c} channels; convcli reads 1 to 4 (grey, grey+alpha, RGB, RGBA)"
            )
        dtype = np.dtype(arr.dtype)
        if dtype in (np.dtype(np.uint8), np.dtype(np.uint16)):
            self.bits = 8 * dtype.itemsize
            self.divisor: float | None = float(2**self.bits - 1)
        elif dtype.kind == "f" and dtype.itemsize in (4, 8):
            self.bits, self.divisor = 32, None
        else:
            raise ImageError(
                f"{self.path}: samples of type {dtype}; convcli reads uint8, uint16 or float"
            )
        self._array = arr
        self._axes = axes
        self.channels = _CHANNELS[c]
        self.shape = (dims["y"], dims["x"], c)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        ys, xs = key
        index = tuple(
            ys if a == "y" else xs if a == "x" else slice(None) if a == "c" else 0
            for a in self._axes
        )
        try:
            part = np.asarray(self._array[index])
        except Exception as exc:  # noqa: BLE001 - a missing or broken chunk
            raise ImageError(f"{self.path}: cannot read a region ({exc})") from exc
        kept = [a for a in self._axes if a in ("c", "y", "x")]
        order = [kept.index(a) for a in ("y", "x", "c") if a in kept]
        hwc = np.transpose(part, order)
        return hwc[..., 0] if hwc.ndim == 3 and hwc.shape[2] == 1 else hwc

    def close(self) -> None:
        """Nothing is held open between regions."""


def zarr_header(path: str | Path) -> tuple[tuple[int, int, int], str]:
    """``(C, H, W)`` and the channel names, from the metadata only."""
    img = ZarrImage(path)
    h, w, c = img.shape
    return (c, h, w), img.channels


def _open(path: str) -> tuple[Any, list[str]]:
    """The full-resolution array and its axis names (``t``, ``c``, ``z``, ``y``, ``x``)."""
    try:
        import zarr
    except ImportError:
        raise ImageError(
            f"{path}: reading Zarr needs the zarr package (pip install 'convcli[zarr]')"
        ) from None
    node: Any
    arr: Any
    if not any(os.path.isfile(os.path.join(path, m)) for m in _METADATA):
        raise ImageError(f"{path}: not a Zarr image (no zarr.json, .zgroup or .zarray in it)")
    try:
        node = zarr.open(store=path, mode="r")
    except Exception as exc:  # noqa: BLE001 - not Zarr, or broken metadata
        raise ImageError(f"{path}: not a Zarr image ({_first_line(exc)})") from exc
    if isinstance(node, zarr.Array):
        axes = {2: ["y", "x"], 3: ["c", "y", "x"]}.get(node.ndim)
        if axes is None:
            raise ImageError(
                f"{path}: a Zarr array of {node.ndim} dimensions; convcli reads (H, W) or"
                " (C, H, W), or an OME-Zarr image with named axes"
            )
        return node, axes
    attrs = dict(node.attrs)
    multiscales = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
    if not multiscales:
        raise ImageError(f"{path}: a Zarr group without OME-Zarr multiscales metadata")
    try:
        first = multiscales[0]
        dataset = first["datasets"][0]["path"]
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in first["axes"]]
        arr = node[dataset]
    except Exception as exc:  # noqa: BLE001 - metadata that does not say what it should
        raise ImageError(f"{path}: broken OME-Zarr metadata ({_first_line(exc)})") from exc
    axes = [a.lower() for a in axes]
    if len(axes) != arr.ndim or "y" not in axes or "x" not in axes or len(set(axes)) != len(axes):
        raise ImageError(
            f"{path}: OME-Zarr axes {axes} do not fit an image of {arr.ndim} dimensions"
        )
    return arr, axes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
