"""Writing feature maps: output planning, checks, encoders and atomic commits."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from convcli.errors import OutputError, ParameterError
from convcli.imageio._common import CHANNELS, index_labels
from convcli.imageio.atomic import RunStamp, claim, temp_name
from convcli.imageio.montage import montage_image
from convcli.imageio.pixels import RANGE_MODES, MapImage, to_pixels
from convcli.imageio.png import write_png

#: Output formats, and the file extensions that select them with ``file=``.
FORMATS = ("png", "tiff", "npy", "npz")
_EXTENSIONS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".npz": "npz"}


@dataclass
class WriteResult:
    """What :func:`write_feature_maps` wrote (or would write, for a dry run).

    Attributes
    ----------
    paths : list of Path
        Every file written, in order (empty for a dry run).
    mapping : MapImage or None
        The float -> pixel mapping of the png files (None for tiff/npy/npz).
    planned : list of Path
        The files of the call, written or not.
    """

    paths: list[Path] = field(default_factory=list)
    mapping: MapImage | None = None
    planned: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Picture:
    path: Path
    start: int  # channel slice of the (C, H, W) stack
    stop: int


_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


def safe_name(part: str) -> str:
    """A name part made one file-name component: separators, ``:``, controls, ... -> ``_``.

    What :func:`write_feature_maps` does to ``stem``, ``name`` and labels.

    Examples
    --------
    >>> safe_name("gaussian:5:1.5"), safe_name("a/b")
    ('gaussian_5_1.5', 'a_b')
    """
    return _UNSAFE.sub("_", part)


_safe = safe_name


def _parse_layout(layout: str, n_maps: int) -> tuple[str, int]:
    """Return ('image'|'bank'|'maps', number of pictures)."""
    if layout == "image":
        return "image", 1
    if layout == "maps":
        return "maps", n_maps
    if layout.startswith("bank:"):
        try:
            k = int(layout[5:])
        except ValueError:
            k = 0
        if k < 1:
            raise ParameterError(f"layout {layout!r}: the bank size must be a positive integer")
        if n_maps % k:
            raise ParameterError(
                f"layout {layout!r}: {n_maps} maps do not split into {k} kernels of equal size"
            )
        return "bank", k
    raise ParameterError(f"unknown layout {layout!r} (use image, bank:N or maps)")


def _labels(labels: Sequence[str], n: int, what: str) -> list[str]:
    if not labels:
        return index_labels(n)
    if len(labels) != n:
        raise ParameterError(f"{len(labels)} labels given for {n} {what}")
    return [_safe(str(label)) for label in labels]


def _format_of(fmt: str, single_file: Path | None) -> str:
    if single_file is not None and str(single_file) != "-":
        ext = single_file.suffix.lower()
        if ext not in _EXTENSIONS:
            raise ParameterError(
                f"{single_file}: cannot tell the output format from the extension "
                f"{ext or '(none)'!r} (use .png, .tif, .tiff, .npy or .npz)"
            )
        return _EXTENSIONS[ext]
    fmt = fmt.lower().lstrip(".")
    fmt = "tiff" if fmt == "tif" else fmt
    if fmt not in FORMATS:
        raise ParameterError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    return fmt


def _is_stdout(out: Path | str | None) -> bool:
    return out is not None and str(out) == "-"


def _plan(
    stem: str,
    name: str,
    n_maps: int,
    layout: str,
    *,
    out: Path | str,
    fmt: str,
    single_file: Path | None,
    montage: bool,
    labels: Sequence[str] = (),
) -> tuple[str, list[_Picture], Path | None]:
    """Resolve format, pictures (path + channel slice) and the montage path."""
    if n_maps < 1:
        raise ParameterError("nothing to write: the stack has no maps")
    fmt = _format_of(fmt, single_file)
    kind, n_pictures = _parse_layout(layout, n_maps)
    if fmt in ("npy", "npz"):
        kind, n_pictures = "image", 1
    per = n_maps // n_pictures
    if fmt == "png" and per > 4:
        raise ParameterError(
            f"{per} channels cannot form one png picture (1 to 4: grey, grey+alpha, RGB, RGBA); "
            "use the 'maps' layout, or tiff/npy/npz"
        )
    ext = "tif" if fmt == "tiff" else fmt
    stdout = _is_stdout(single_file) or _is_stdout(out)
    base = f"{_safe(stem)}.{_safe(name)}"
    folder = Path(out)
    if kind == "image":
        names = [f"{base}.{ext}"]
    else:
        tags = _labels(labels, n_pictures, "kernels" if kind == "bank" else "maps")
        names = [f"{base}.{tag}.{ext}" for tag in tags]
    if (single_file is not None or stdout) and len(names) != 1:
        where = "stdout" if stdout else str(single_file)
        raise OutputError(
            f"{where}: this result makes {len(names)} files ({names[0]}, ...); "
            "give a folder as the output instead of one file name"
        )
    if stdout:
        if montage:
            raise OutputError("-: cannot write a montage to stdout as well as the image")
        return fmt, [_Picture(Path("-"), 0, n_maps)], None
    if single_file is not None:
        paths = [Path(single_file)]
        montage_path = Path(single_file).with_name(Path(single_file).stem + ".montage.png")
    else:
        paths = [folder / n for n in names]
        montage_path = folder / f"{base}.montage.png"
    pictures = [_Picture(p, i * per, (i + 1) * per) for i, p in enumerate(paths)]
    every = [p.path for p in pictures] + ([montage_path] if montage else [])
    if len(set(every)) != len(every):
        twice = next(p for p in every if every.count(p) > 1)
        raise ParameterError(
            f"two outputs would have the same file name {twice.name} (repeated labels?)"
        )
    return fmt, pictures, montage_path if montage else None


def plan_outputs(
    stem: str,
    name: str,
    n_maps: int,
    layout: str,
    *,
    out: Path | str,
    fmt: str,
    single_file: Path | None = None,
    montage: bool = False,
    labels: Sequence[str] = (),
) -> list[Path]:
    """The files :func:`write_feature_maps` would write, in order, touching nothing.

    Parameters are those of :func:`write_feature_maps` (``single_file`` is its
    ``file``); ``n_maps`` is the number of maps C of the ``(C, H, W)`` stack.

    Examples
    --------
    >>> [p.as_posix() for p in plan_outputs("cat", "sobel", 6, "bank:2", out="o", fmt="png")]
    ['o/cat.sobel.0.png', 'o/cat.sobel.1.png']
    >>> [p.name for p in plan_outputs("cat", "k", 3, "maps", out="o", fmt="tiff", montage=True)]
    ['cat.k.0.tif', 'cat.k.1.tif', 'cat.k.2.tif', 'cat.k.montage.png']
    >>> plan_outputs("cat", "k", 12, "maps", out="o", fmt="npz")
    [PosixPath('o/cat.k.npz')]
    """
    _, pictures, montage_path = _plan(
        stem,
        name,
        n_maps,
        layout,
        out=out,
        fmt=fmt,
        single_file=single_file,
        montage=montage,
        labels=labels,
    )
    return [p.path for p in pictures] + ([montage_path] if montage_path else [])


def check_outputs(
    paths: Sequence[Path],
    *,
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    own: RunStamp | None = None,
) -> None:
    """Refuse outputs that must not be written, before anything is written.

    Raises :class:`~convcli.errors.OutputError` when a path is one of ``inputs``
    (even with ``force``), exists and ``force`` is off (unless ``own`` marks it
    as written by this same run), is a folder, or has a file where one of its
    folders should be. ``"-"`` (stdout) always passes.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d, "x.png")
    ...     _ = p.write_bytes(b"old")
    ...     try:
    ...         check_outputs([p])
    ...     except OutputError as e:
    ...         print(str(e).replace(d, "out"))
    out/x.png exists (use --force to overwrite or --skip-existing to resume)
    """
    existing_inputs = []
    for inp in inputs:
        if str(inp) != "-" and os.path.exists(inp):
            existing_inputs.append(Path(inp))
    for path in paths:
        path = Path(path)
        if str(path) == "-":
            continue
        for parent in reversed(path.parents):
            if parent.exists() and not parent.is_dir():
                raise OutputError(f"{parent}: is a file, not a folder (needed for {path})")
        if not os.path.lexists(path):
            continue
        if path.is_dir():
            raise OutputError(f"{path}: is a folder, cannot write a file there")
        for inp in existing_inputs:
            try:
                same = os.path.samefile(path, inp)
            except OSError:
                same = path.resolve() == inp.resolve()
            if same:
                raise OutputError(f"{path}: is an input; refusing to overwrite it")
        if not force and not (own is not None and own.owns(path)):
            raise OutputError(_exists(path))


def _exists(path: Path) -> str:
    return f"{path} exists (use --force to overwrite or --skip-existing to resume)"


def write_feature_maps(
    maps: np.ndarray,
    *,
    out: Path | str = "convcli-out",
    stem: str,
    name: str,
    fmt: str = "png",
    layout: str = "image",
    labels: Sequence[str] = (),
    file: Path | str | None = None,
    range_mode: str = "auto",
    bit_depth: int = 8,
    montage: bool = False,
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    own: RunStamp | None = None,
) -> WriteResult:
    """Write a ``(C, H, W)`` stack of feature maps as image or array files.

    Files are named ``<out>/<stem>.<name>[.<label>].<ext>`` (ext: png, tif, npy,
    npz). All png pictures of one call share one float -> pixel mapping (see
    :func:`to_pixels`), so their brightness is comparable. Every output is
    checked (exists? an input? a file where a folder should be?) before any is
    written; all files are then encoded to temporary files beside their targets
    and renamed into place together, so a failure or Ctrl-C leaves nothing
    behind.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(C, H, W)`` or ``(H, W)``.
    out : Path or str
        Output folder (created as needed); ``"-"`` writes the one file to stdout.
    stem, name : str
        Input stem and kernel/op name of the file names (``:``, ``/`` ... -> ``_``).
    fmt : str
        ``png`` (default), ``tiff`` (float32, lossless; a picture with several
        channels is a multi-page TIFF, one page per channel), ``npy`` (the whole
        stack) or ``npz`` (``maps``, ``labels``, ``params`` as a JSON string).
    layout : str
        ``image``: all channels form one picture (1 grey, 2 grey+alpha, 3 RGB,
        4 RGBA); ``bank:N``: N kernels x C channels, kernel-major, one picture per
        kernel; ``maps``: one grey file per map. npy/npz always hold the whole stack.
    labels : sequence of str
        Names of the per-kernel (``bank:N``) or per-map (``maps``) files; default
        0-based indices zero-padded to one width.
    file : Path or str, optional
        The output file itself (its extension picks the format); only when the
        result is one file. ``"-"``: stdout.
    range_mode, bit_depth
        png mapping (:func:`to_pixels`); bit_depth 8 or 16.
    montage : bool
        Also write ``<stem>.<name>.montage.png``: a grid of labelled grey tiles,
        one per map, each normalised on its own (with ``file``:
        ``<file stem>.montage.png`` beside it).
    force : bool
        Overwrite existing outputs (never an input).
    inputs : sequence of Path
        Files that must never be overwritten.
    params : mapping, optional
        Saved in npz files as JSON (non-JSON values as their ``str``).
    dry_run : bool
        Validate the parameters and return the plan; touch nothing.
    own : RunStamp, optional
        The run's stamp: every file written carries it, and an existing file
        that carries it (this run wrote it before, e.g. a task run again) may
        be replaced without ``force``.

    Returns
    -------
    WriteResult

    Raises
    ------
    convcli.errors.ParameterError
        Bad format, layout, labels, range mode or bit depth.
    convcli.errors.OutputError
        An output exists, is an input, cannot be created or written.

    Examples
    --------
    >>> import tempfile
    >>> from convcli.imageio import read_image
    >>> maps = np.linspace(-1, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = write_feature_maps(maps, out=d, stem="cat", name="sobel", layout="maps",
    ...                              labels=["x", "y"])
    ...     [p.name for p in res.paths], res.mapping.range_mode, read_image(res.paths[0]).shape
    (['cat.sobel.x.png', 'cat.sobel.y.png'], 'minmax', (1, 3, 4))
    """
    arr = np.asarray(maps)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ParameterError(f"feature maps must be (C, H, W) or (H, W), got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ParameterError(f"cannot write empty maps of shape {arr.shape}")
    single = None if file is None else Path(file)
    fmt, pictures, montage_path = _plan(
        stem,
        name,
        arr.shape[0],
        layout,
        out=out,
        fmt=fmt,
        single_file=single,
        montage=montage,
        labels=labels,
    )
    if bit_depth not in (8, 16):
        raise ParameterError(f"bit depth must be 8 or 16, not {bit_depth!r}")
    if range_mode not in RANGE_MODES:
        raise ParameterError(
            f"unknown range mode {range_mode!r} (choose from {', '.join(RANGE_MODES)})"
        )
    planned = [p.path for p in pictures] + ([montage_path] if montage_path else [])
    kind, _ = _parse_layout(layout, arr.shape[0])
    mapping: MapImage | None = None
    if fmt == "png" and not dry_run:
        pixels, mapping = to_pixels(arr, range_mode=range_mode, bit_depth=bit_depth)
    if dry_run:
        return WriteResult(paths=[], mapping=None, planned=planned)

    encoders: list[tuple[Path, Callable[[BinaryIO], None]]] = []
    for pic in pictures:
        if fmt == "png":
            encoders.append((pic.path, _png_encoder(pixels[pic.start : pic.stop], bit_depth)))
        elif fmt == "tiff":
            encoders.append((pic.path, _tiff_encoder(arr[pic.start : pic.stop])))
        elif fmt == "npy":
            encoders.append((pic.path, _npy_encoder(arr)))
        else:
            tags = _tile_labels(kind, labels, arr.shape[0], layout)
            encoders.append((pic.path, _npz_encoder(arr, tags, params)))
    if montage_path is not None:
        tags = _tile_labels(kind, labels, arr.shape[0], layout)
        encoders.append((montage_path, _montage_encoder(arr, tags)))

    if planned == [Path("-")]:
        buf = io.BytesIO()
        encoders[0][1](buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return WriteResult(paths=[Path("-")], mapping=mapping, planned=planned)

    check_outputs(planned, force=force, inputs=inputs, own=own)
    _commit(encoders, force=force, own=own)
    return WriteResult(paths=list(planned), mapping=mapping, planned=planned)


def _tile_labels(kind: str, labels: Sequence[str], n_maps: int, layout: str) -> list[str]:
    """One label per map: for the montage and the npz ``labels`` array."""
    if kind == "maps":
        return _labels(labels, n_maps, "maps")
    if kind == "bank":
        k = _parse_layout(layout, n_maps)[1]
        per = n_maps // k
        kernels = _labels(labels, k, "kernels")
        names = CHANNELS.get(per)
        return [
            kern if per == 1 else f"{kern}.{names[c] if names else c}"
            for kern in kernels
            for c in range(per)
        ]
    names = CHANNELS.get(n_maps)
    return list(names) if names and n_maps > 1 else _labels((), n_maps, "maps")


def _png_encoder(pixels: np.ndarray, bit_depth: int) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        write_png(fh, pixels, bit_depth=bit_depth)

    return encode


def _tiff_encoder(maps: np.ndarray) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        pages = [Image.fromarray(np.ascontiguousarray(m, dtype=np.float32)) for m in maps]
        if len(pages) == 1:
            pages[0].save(fh, format="TIFF")
        else:
            pages[0].save(fh, format="TIFF", save_all=True, append_images=pages[1:])

    return encode


def _npy_encoder(maps: np.ndarray) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        np.save(fh, np.ascontiguousarray(maps, dtype=np.float32), allow_pickle=False)

    return encode


def _npz_encoder(
    maps: np.ndarray, labels: list[str], params: Mapping[str, Any] | None
) -> Callable[[BinaryIO], None]:
    text = json.dumps(dict(params or {}), default=str, sort_keys=True)

    def encode(fh: BinaryIO) -> None:
        np.savez_compressed(
            fh,
            maps=np.ascontiguousarray(maps, dtype=np.float32),
            labels=np.array(labels, dtype=str),
            params=np.array(text),
        )

    return encode


def _montage_encoder(maps: np.ndarray, labels: list[str]) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        montage_image(maps, labels).save(fh, format="PNG")

    return encode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


#: Temporary files this process has created and not yet renamed or removed.
#: Registered *before* a file is created, so a signal at any moment leaves
#: nothing that :func:`remove_pending_temps` does not know about.
_PENDING: set[str] = set()


def remove_pending_temps() -> None:
    """Delete every temporary output file still pending (called on interrupts and exits)."""
    for name in list(_PENDING):
        try:
            os.unlink(name)
        except OSError:
            pass
        _PENDING.discard(name)


def _new_temp(path: Path) -> tuple[str, BinaryIO]:
    """Create a temporary file beside ``path`` (see :func:`~convcli.imageio.atomic.temp_name`),
    registered in ``_PENDING`` first."""
    for _ in range(100):
        name = temp_name(path.parent)
        _PENDING.add(name)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _PENDING.discard(name)
            continue
        except BaseException:
            # a signal may land just after open() created the file
            try:
                os.unlink(name)
            except OSError:
                pass
            _PENDING.discard(name)
            raise
        return name, os.fdopen(fd, "w+b")
    raise OutputError(f"{path}: cannot create a temporary file beside it")


def _commit(
    encoders: Sequence[tuple[Path, Callable[[BinaryIO], None]]],
    *,
    force: bool = False,
    own: RunStamp | None = None,
) -> None:
    """Encode every output to a temp file beside it, then claim all names.

    Without ``force`` each name is claimed atomically (it must not exist, or
    be ``own``'s), in sorted order, so of two runs writing the same files at
    once the one that gets the first name gets them all; a name taken
    meanwhile fails the call and undoes the names it had claimed.
    """
    temps: list[tuple[str, Path]] = []
    claimed: list[tuple[Path, int, int]] = []  # (name, device, inode) linked by this call
    try:
        for path, encode in encoders:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise OutputError(f"{path.parent}: is a file, not a folder") from exc
            except OSError as exc:
                why = exc.strerror or exc
                raise OutputError(f"{path.parent}: cannot create folder ({why})") from exc
            try:
                tmp_name, tmp = _new_temp(path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            temps.append((tmp_name, path))
            try:
                with tmp:
                    encode(tmp)
                os.chmod(tmp_name, 0o666 & ~_UMASK)
                if own is not None:
                    own.mark(tmp_name)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        temps.sort(key=lambda t: str(t[1]))
        while temps:
            tmp_name, path = temps[0]
            replace = force or (own is not None and own.owns(path))
            try:
                st = os.stat(tmp_name)
                claim(tmp_name, path, replace=replace)
            except FileExistsError as exc:
                raise OutputError(_exists(path)) from exc
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            if not replace:
                claimed.append((path, st.st_dev, st.st_ino))
            _PENDING.discard(tmp_name)
            temps.pop(0)
    finally:
        if temps:  # failed: the names this call took are given back
            for path, dev, ino in claimed:
                try:
                    st = os.lstat(path)
                    if (st.st_dev, st.st_ino) == (dev, ino):
                        os.unlink(path)
                except OSError:
                    pass
        for tmp_name, _ in temps:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
            _PENDING.discard(tmp_name)
