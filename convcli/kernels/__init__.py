"""Kernels: the :class:`Kernel` value, built-ins by name, YAML files, and the linter.

:func:`load_kernel` is the one entry point that turns what a user typed after
``-k`` into a :class:`Kernel`. Kernels are applied as cross-correlation (no
flip) unless ``Kernel.flip`` is set; see :mod:`convcli.kernels.builtins` for the
sign conventions of the derivative kernels.

Examples
--------
>>> load_kernel("sobel-x").weights.astype(int).tolist()
[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
>>> load_kernel("sobel").labels
('sobel-x', 'sobel-y')
>>> load_kernel("gausian")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
convcli.errors.KernelError: unknown kernel 'gausian' (did you mean 'gaussian'?); ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from convcli.errors import KernelError
from convcli.kernels.builtins import (
    BUILTINS,
    builtin_kernel,
    builtin_names,
    did_you_mean,
    is_builtin,
    parse_kernel_spec,
)
from convcli.kernels.model import (
    Kernel,
    kernel_rank,
    separable_factors,
    symmetry,
    weights_sum,
)
from convcli.kernels.yamlfile import (
    Finding,
    describe_weights,
    lint_kernel_file,
    load_kernel_file,
    read_kernel_file,
)

__all__ = [
    "BUILTINS",
    "Finding",
    "Kernel",
    "builtin_kernel",
    "builtin_names",
    "describe_weights",
    "find_kernel_files",
    "is_builtin",
    "kernel_rank",
    "kernel_search_dirs",
    "lint_kernel_file",
    "load_kernel",
    "load_kernel_file",
    "parse_kernel_spec",
    "read_kernel_file",
    "separable_factors",
    "symmetry",
    "weights_sum",
]

KERNEL_PATH_ENV = "CONVCLI_KERNEL_PATH"
YAML_SUFFIXES = (".yaml", ".yml")


def kernel_search_dirs(kernel_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for ``NAME.yaml``, in order, without duplicates.

    ``kernel_dirs`` (``--kernel-dir``) first, then each folder of
    ``$CONVCLI_KERNEL_PATH`` (separated by ``os.pathsep``), then ``./kernels``.
    Folders that do not exist are kept (they simply hold nothing).

    >>> kernel_search_dirs(["a"])[0], kernel_search_dirs()[-1]
    (PosixPath('a'), PosixPath('kernels'))
    """
    dirs = [Path(d) for d in kernel_dirs]
    dirs += [Path(p) for p in os.environ.get(KERNEL_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(Path("kernels"))
    seen: set[Path] = set()
    out = []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def find_kernel_files(kernel_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` file directly in the search folders, in search order.

    A name found in an earlier folder hides the same name in later ones.
    """
    found: dict[str, Path] = {}
    for d in kernel_search_dirs(kernel_dirs):
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in YAML_SUFFIXES and f.is_file():
                found.setdefault(f.stem, f)
    return list(found.values())


def load_kernel(spec: str | os.PathLike[str], *, kernel_dirs: Iterable[str | Path] = ()) -> Kernel:
    """Resolve what a user typed after ``-k`` into a :class:`Kernel`.

    Search order: a weights file (``.npy``, ``.npz``, ``.safetensors``,
    ``.onnx``, with an optional ``:NAME``: see :mod:`convcli.kernels.weights`); a path
    to an existing file; a built-in name with
    optional ``:params`` (``gaussian:7:1.5``); ``NAME.yaml`` / ``NAME.yml`` in
    ``kernel_dirs``, then each folder of ``$CONVCLI_KERNEL_PATH``, then ``./kernels``.

    Parameters
    ----------
    spec
        A file path, a built-in spec, or the stem of a YAML file in a search folder.
    kernel_dirs
        Extra folders to search first (the ``--kernel-dir`` options).

    Returns
    -------
    Kernel
        With final weights (normalisation and scale applied, not flipped).

    Raises
    ------
    KernelError
        Unknown name (with a did-you-mean), bad built-in parameters, or a broken
        YAML file (the message starts with ``file:line:``).

    Examples
    --------
    >>> k = load_kernel("gaussian:7:1.5")
    >>> k.shape, k.source
    ((7, 7), 'built-in')
    """
    from convcli.safety import NAME_MAX, shorten, too_long_name

    kernel_dirs = list(kernel_dirs)
    path = Path(spec)
    text = os.fspath(spec)
    long = too_long_name(text)
    if long is not None:  # the file system would refuse to even look it up
        raise KernelError(
            f"the name {shorten(long)} is longer than file systems allow ({NAME_MAX} bytes)"
        )
    from convcli.kernels.weights import is_weights_spec, load_weights_kernel

    if is_weights_spec(text):
        return load_weights_kernel(text)
    if path.is_file():
        return load_kernel_file(path)
    name, params = parse_kernel_spec(text)
    if name in BUILTINS:
        return builtin_kernel(text)
    looks_like_path = any(sep in text for sep in ("/", os.sep)) or text.lower().endswith(
        YAML_SUFFIXES
    )
    if looks_like_path:
        raise KernelError(f"no such kernel file: {text}")
    stem = text.strip()
    for d in kernel_search_dirs(kernel_dirs):
        for suffix in YAML_SUFFIXES:
            candidate = d / f"{stem}{suffix}"
            if candidate.is_file():
                return load_kernel_file(candidate)
    choices = builtin_names() + [f.stem for f in find_kernel_files(kernel_dirs)]
    if params:
        raise KernelError(
            f"unknown kernel {name!r}{did_you_mean(name, choices)}; only built-ins take "
            "':' parameters; see `convcli kernels list`"
        )
    raise KernelError(
        f"unknown kernel {name!r}{did_you_mean(name, choices)}; see `convcli kernels list`"
    )
