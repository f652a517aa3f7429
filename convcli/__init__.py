"""convcli: 2-D convolution and pooling with CNN semantics, for real image files.

The numeric core is importable without Rich or click::

    from convcli import conv2d, pool2d, load_kernel, read_image, write_feature_maps
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names resolve lazily, so `convcli --help` does not pay for numpy.
_EXPORTS = {
    "conv2d": "convcli.ops.conv",
    "pool2d": "convcli.ops.pool",
    "pad2d": "convcli.ops.padding",
    "activate": "convcli.ops.activations",
    "Kernel": "convcli.kernels.model",
    "load_kernel": "convcli.kernels",
    "read_image": "convcli.imageio",
    "write_feature_maps": "convcli.imageio",
    "ConvcliError": "convcli.errors",
    "ParameterError": "convcli.errors",
    "ShapeError": "convcli.errors",
    "KernelError": "convcli.errors",
    "ImageError": "convcli.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401  (re-exported lazily through __getattr__)
    from convcli.errors import ConvcliError, ImageError, KernelError, ParameterError, ShapeError
    from convcli.imageio import read_image, write_feature_maps
    from convcli.kernels import load_kernel
    from convcli.kernels.model import Kernel
    from convcli.ops.activations import activate
    from convcli.ops.conv import conv2d
    from convcli.ops.padding import pad2d
    from convcli.ops.pool import pool2d


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convcli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
