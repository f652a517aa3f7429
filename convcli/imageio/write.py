"""Writing feature maps: output planning, checks, encoders and atomic commits."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from convcli.errors import OutputError, ParameterError
from convcli.imageio._common import CHANNELS, index_labels
from convcli.imageio.atomic import RunStamp, claim, temp_name
from convcli.imageio.layout import Layout
from convcli.imageio.montage import montage_image
from convcli.imageio.pixels import MapImage, to_pixels
from convcli.imageio.png import write_png
from convcli.imageio.tone import Hint, RangeSpec, ToneMap, parse_range
from convcli.vocab import Compression, Format, RangeScope

#: Pillow's name of each TIFF compression.
_PILLOW_COMPRESSION = {"none": None, "lzw": "tiff_lzw", "deflate": "tiff_adobe_deflate"}


@dataclass
class WriteResult:
    """What :func:`write_feature_maps` wrote (or would write, for a dry run).

    Attributes
    ----------
    paths : list of Path
        Every file written, in order (empty for a dry run).
    mapping : ToneMap or None
        The float -> pixel mapping of the first picture (None for tiff/npy/npz).
    planned : list of Path
        The files of the call, written or not.
    mappings : list of ToneMap
        One mapping per picture, in the order of ``planned`` (empty for tiff/npy/npz).
    notes : list of str
        Options that did not apply to some pictures (a colour map on an RGB picture ...).
    fmt : str
        The format written (``png``, ``jpeg``, ... ; empty for a dry run).
    """

    paths: list[Path] = field(default_factory=list)
    mapping: MapImage | None = None
    planned: list[Path] = field(default_factory=list)
    mappings: list[ToneMap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fmt: str = ""


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


def _parse_layout(layout: Layout | str, n_maps: int) -> tuple[str, int]:
    """Return ('image'|'bank'|'maps', number of pictures)."""
    lay = Layout.parse(layout)
    return lay.kind, lay.pictures(n_maps)


def _labels(labels: Sequence[str], n: int, what: str) -> list[str]:
    if not labels:
        return index_labels(n)
    if len(labels) != n:
        raise ParameterError(f"{len(labels)} labels given for {n} {what}")
    return [_safe(str(label)) for label in labels]


def _format_of(fmt: str, single_file: Path | None) -> str:
    if single_file is not None and str(single_file) != "-":
        ext = single_file.suffix.lower()
        found = Format.of_extension(ext)
        if found is None:
            known = ", ".join(e for f in Format for e in f.extensions)
            raise ParameterError(
                f"{single_file}: cannot tell the output format from the extension "
                f"{ext or '(none)'!r} (use {known})"
            )
        return found.value
    found = Format.parse(fmt.lstrip("."))
    if found is Format.keep:
        raise ParameterError("format keep is decided per input; give the input's format")
    return found.value


def _is_stdout(out: Path | str | None) -> bool:
    return out is not None and str(out) == "-"


def plan_pictures(
    stem: str,
    name: str,
    n_maps: int,
    layout: Layout | str,
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
    if Format(fmt).is_picture and per > 4:
        raise ParameterError(
            f"{per} channels cannot form one {fmt} picture (1 to 4: grey, grey+alpha, RGB, RGBA);"
            " use the 'maps' layout, or tiff/npy/npz"
        )
    if fmt == "jpeg" and per in (2, 4):
        raise ParameterError(
            "jpeg has no transparency and this result has alpha; use png or webp, or --alpha drop"
        )
    ext = Format(fmt).extension.lstrip(".")
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
    layout: Layout | str,
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
    _, pictures, montage_path = plan_pictures(
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
    layout: Layout | str = "image",
    labels: Sequence[str] = (),
    file: Path | str | None = None,
    range_mode: str | RangeSpec = "auto",
    bit_depth: int | None = None,
    montage: bool = False,
    force: bool = False,
    inputs: Sequence[Path | str] = (),
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    hint: Hint | None = None,
    range_scope: str = "file",
    cmap: str | None = None,
    threshold: float | str | None = None,
    quality: int = 90,
    compression: str = "none",
    colorbar: bool = False,
    own: RunStamp | None = None,
) -> WriteResult:
    """Write a ``(C, H, W)`` stack of feature maps as image or array files.

    Files are named ``<out>/<stem>.<name>[.<label>].<ext>`` (ext: png, jpg, webp,
    tif, npy, npz). Each picture (png, jpeg, webp) gets its own float -> level
    mapping (see :func:`to_pixels`; the channels of one colour picture share
    one, so colours stay balanced); ``range_scope="input"`` gives all pictures
    of the call one mapping, so their brightness compares. Every output is
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
        ``png`` (default), ``jpeg`` / ``webp`` (8-bit, lossy, ``quality``),
        ``tiff`` (float32, lossless; a picture with several channels is a
        multi-page TIFF, one page per channel), ``npy`` (the whole stack) or
        ``npz`` (``maps``, ``labels``, ``params`` as a JSON string).
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
        Picture mapping (:func:`to_pixels`: ``auto``, ``clip``, ``minmax``,
        ``abs``, ``offset``, ``LO,HI``, ``pLO,pHI``); bit_depth 8 or 16 (png: 8 when
        None). A tiff is float32 unless ``bit_depth`` is given: then 8/16-bit integer
        samples, mapped as pictures are.
    montage : bool
        Also write ``<stem>.<name>.montage.png``: a grid of labelled tiles, one
        per map, mapped by the same rule as the files (with ``file``:
        ``<file stem>.montage.png`` beside it).
    force : bool
        Overwrite existing outputs (never an input).
    inputs : sequence of Path
        Files that must never be overwritten.
    params : mapping, optional
        Saved in npz files as JSON (non-JSON values as their ``str``).
    dry_run : bool
        Validate the parameters and return the plan; touch nothing.
    hint : {"image", "signed", "nonneg"}, optional
        What the maps are, for ``auto`` (:func:`convcli.pipeline.hint.hint_of_stages`).
    range_scope : {"file", "input"}
        One mapping per picture (default) or one for all pictures of the call.
    cmap : str, optional
        Colour map for one-channel pictures (:mod:`convcli.imageio.colormaps`);
        8-bit only. Pictures with more channels are written as they are.
    threshold : float or "otsu", optional
        Write binary pictures: values above the threshold white, the rest black.
        ``otsu`` picks the level per picture with Otsu's method on its mapped levels.
    quality : int
        jpeg / webp quality, 1 to 100.
    compression : {"none", "lzw", "deflate"}
        TIFF compression (lossless).
    colorbar : bool
        Add a colour bar with its values to the montage.
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
    (['cat.sobel.x.png', 'cat.sobel.y.png'], 'signed', (1, 3, 4))
    """
    arr = np.asarray(maps)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ParameterError(f"feature maps must be (C, H, W) or (H, W), got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ParameterError(f"cannot write empty maps of shape {arr.shape}")
    single = None if file is None else Path(file)
    fmt, pictures, montage_path = plan_pictures(
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
    spec, cmap, thr = check_picture_options(
        fmt, bit_depth=bit_depth or 8, range_mode=range_mode, range_scope=range_scope, cmap=cmap,
        threshold=threshold, quality=quality, compression=compression,
    )  # fmt: skip
    planned = [p.path for p in pictures] + ([montage_path] if montage_path else [])
    kind, _ = _parse_layout(layout, arr.shape[0])
    if dry_run:
        return WriteResult(paths=[], mapping=None, planned=planned)
    rendered: list[tuple[np.ndarray, ToneMap]] = []
    notes: list[str] = []
    integer_tiff = fmt == "tiff" and bit_depth is not None
    if Format(fmt).is_picture or integer_tiff:
        rendered = _render(
            arr, pictures, spec=spec, hint=hint, scope=range_scope, bit_depth=bit_depth or 8,
            threshold=thr, cmap=cmap,
        )  # fmt: skip
        if cmap and any(p.stop - p.start > 1 for p in pictures):
            notes.append(f"colour map {cmap} applies to one-channel pictures; colour ones kept")
    elif cmap or thr is not None:
        what = "a colour map" if cmap else "a threshold"
        notes.append(f"{what} applies to pictures (png, jpeg, webp), not to {fmt} files")
    mappings = [tone for _, tone in rendered]
    mapping: MapImage | None = mappings[0] if mappings else None

    encoders: list[tuple[Path, Callable[[BinaryIO], None]]] = []
    for i, pic in enumerate(pictures):
        if fmt == "png":
            encoders.append((pic.path, _png_encoder(rendered[i][0], bit_depth or 8)))
        elif fmt in ("jpeg", "webp"):
            encoders.append((pic.path, _pillow_encoder(rendered[i][0], fmt, quality)))
        elif fmt == "tiff" and bit_depth is not None:
            encoders.append((pic.path, _tiff_int_encoder(rendered[i][0])))
        elif fmt == "tiff":
            encoders.append((pic.path, _tiff_encoder(arr[pic.start : pic.stop], compression)))
        elif fmt == "npy":
            encoders.append((pic.path, _npy_encoder(arr)))
        else:
            tags = _tile_labels(kind, labels, arr.shape[0], layout)
            encoders.append((pic.path, _npz_encoder(arr, tags, params)))
    if montage_path is not None:
        tags = _tile_labels(kind, labels, arr.shape[0], layout)
        groups = (
            [(0, arr.shape[0])] if range_scope == "input"
            else [(p.start, p.stop) for p in pictures]
        )  # fmt: skip
        look = {"range_mode": spec, "hint": hint, "groups": groups, "cmap": cmap,
                "colorbar": colorbar}  # fmt: skip
        encoders.append((montage_path, _montage_encoder(arr, tags, look)))

    if planned == [Path("-")]:
        buf = io.BytesIO()
        encoders[0][1](buf)
        sys.stdout.buffer.write(buf.getvalue())
        sys.stdout.buffer.flush()
        return WriteResult([Path("-")], mapping, planned, mappings, notes, fmt)

    check_outputs(planned, force=force, inputs=inputs, own=own)
    _commit(encoders, force=force, own=own)
    return WriteResult(list(planned), mapping, planned, mappings, notes, fmt)


def check_picture_options(
    fmt: str,
    *,
    bit_depth: int,
    range_mode: str | RangeSpec,
    range_scope: str,
    cmap: str | None,
    threshold: float | str | None,
    quality: int,
    compression: str,
) -> tuple[RangeSpec, str | None, float | str | None]:
    """Check the picture options before anything is computed: (range, cmap name, threshold).

    Raises :class:`~convcli.errors.ParameterError` for a bad range, scope, colour
    map, threshold, quality or compression, or options that cannot go together
    (jpeg/webp or a colour map with 16 bits).
    """
    if bit_depth not in (8, 16):
        raise ParameterError(f"bit depth must be 8 or 16, not {bit_depth!r}")
    spec = parse_range(range_mode)
    RangeScope.parse(range_scope)
    if fmt in ("jpeg", "webp") and bit_depth != 8:
        raise ParameterError(f"{fmt} pictures are 8-bit; --bit-depth 16 is for png")
    name = None
    if cmap is not None:
        from convcli.imageio.colormaps import colormap_name

        name = colormap_name(cmap)
        if bit_depth != 8:
            raise ParameterError("a colour map gives 8-bit colour; it cannot go with bit depth 16")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ParameterError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    Compression.parse(compression)
    return spec, name, parse_threshold(threshold)


def parse_threshold(value: float | str | None) -> float | str | None:
    """``None``, a number (``"0.5"`` or ``0.5``) or ``"otsu"``.

    >>> parse_threshold("0.25"), parse_threshold("Otsu"), parse_threshold(None)
    (0.25, 'otsu', None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "otsu":
            return "otsu"
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"threshold must be a number or 'otsu', got {value!r}") from None
    number = float(value)
    if not np.isfinite(number):
        raise ParameterError(f"threshold must be finite, got {value!r}")
    return number


def _render(
    arr: np.ndarray,
    pictures: Sequence[_Picture],
    *,
    spec: RangeSpec,
    hint: Hint | None,
    scope: str,
    bit_depth: int,
    threshold: float | str | None,
    cmap: str | None,
) -> list[tuple[np.ndarray, ToneMap]]:
    """Levels and mapping of every picture: mapped per picture or once per call
    (``scope``), then thresholded, then coloured (one-channel pictures)."""
    shared = None
    if scope == "input" and len(pictures) > 1:
        shared = to_pixels(arr, range_mode=spec, bit_depth=bit_depth, hint=hint)
    out = []
    for pic in pictures:
        part = arr[pic.start : pic.stop]
        if shared is not None:
            px, tone = shared[0][pic.start : pic.stop], shared[1]
        else:
            px, tone = to_pixels(part, range_mode=spec, bit_depth=bit_depth, hint=hint)
        if threshold is not None:
            px, tone = binarize(part, px, tone, threshold)
        if cmap is not None and px.shape[0] == 1:
            from convcli.imageio.colormaps import apply_colormap

            px, tone = apply_colormap(px, cmap), replace(tone, cmap=cmap)
        out.append((px, tone))
    return out


def binarize(
    values: np.ndarray, levels: np.ndarray, tone: ToneMap, threshold: float | str
) -> tuple[np.ndarray, ToneMap]:
    """A binary picture: full level where ``values`` lie above the threshold, else 0.

    ``threshold`` is a value (compared with ``values``) or ``"otsu"``: Otsu's
    level (OpenCV) over all of ``levels`` (the picture mapped by ``tone``),
    reported back as a value through ``tone``.

    >>> v = np.array([[[0.1, 0.2, 0.8, 0.9]]])
    >>> px, m = to_pixels(v)
    >>> b, t = binarize(v, px, m, "otsu"); b.tolist(), round(t.threshold, 2), t.above_fraction
    ([[[0, 0, 255, 255]]], 0.2, 0.5)
    >>> binarize(v, px, m, 0.5)[0].tolist()
    [[[0, 0, 255, 255]]]
    """
    full = 255 if levels.dtype == np.uint8 else 65535
    if threshold == "otsu":
        from convcli.opencv import cv2_module

        cv2 = cv2_module()
        px8 = levels if full == 255 else (levels >> 8).astype(np.uint8)
        flat = np.ascontiguousarray(px8.reshape(-1, px8.shape[-1]))
        level, _ = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        above = px8 > level
        value = tone.lo + (level + 0.5) / 255 * (tone.hi - tone.lo)
        basis = f"Otsu, level {int(level)} of the {tone.kind} mapping"
    else:
        value = float(threshold)
        with np.errstate(invalid="ignore"):
            above = np.asarray(values) > value
        basis = "given"
    binary = np.where(above, full, 0).astype(levels.dtype)
    share = float(np.count_nonzero(above)) / max(above.size, 1)
    return binary, replace(
        tone, threshold=float(value), threshold_basis=basis, above_fraction=share, levels=2
    )


def _tile_labels(kind: str, labels: Sequence[str], n_maps: int, layout: Layout | str) -> list[str]:
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


def _pillow_encoder(pixels: np.ndarray, fmt: str, quality: int) -> Callable[[BinaryIO], None]:
    """jpeg / webp through Pillow, 8-bit (grey, RGB; webp also grey+alpha, RGBA)."""

    def encode(fh: BinaryIO) -> None:
        px = np.ascontiguousarray(np.moveaxis(np.asarray(pixels, dtype=np.uint8), 0, -1))
        mode = CHANNELS[px.shape[-1]]
        img = Image.fromarray(px[..., 0] if mode == "L" else px, mode=mode)
        if fmt == "webp" and mode in ("L", "LA"):
            img = img.convert("RGBA" if mode == "LA" else "RGB")
        if fmt == "jpeg":
            img.save(fh, format="JPEG", quality=quality)
        else:
            img.save(fh, format="WEBP", quality=quality)

    return encode


def _tiff_encoder(maps: np.ndarray, compression: str = "none") -> Callable[[BinaryIO], None]:
    how = _PILLOW_COMPRESSION[Compression.parse(compression).value]

    def encode(fh: BinaryIO) -> None:
        pages = [Image.fromarray(np.ascontiguousarray(m, dtype=np.float32)) for m in maps]
        if len(pages) == 1:
            pages[0].save(fh, format="TIFF", compression=how)
        else:
            pages[0].save(
                fh, format="TIFF", save_all=True, append_images=pages[1:], compression=how
            )

    return encode


def _tiff_int_encoder(pixels: np.ndarray) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        import tifffile

        c = pixels.shape[0]
        extra = {2: ["unassalpha"], 4: ["unassalpha"], 3: []}.get(c, ["unspecified"] * (c - 1))
        buf = io.BytesIO()
        tifffile.imwrite(
            buf, np.moveaxis(pixels, 0, -1) if c > 1 else pixels[0],
            photometric="rgb" if c in (3, 4) else "minisblack", extrasamples=extra or None,
            planarconfig="contig" if c > 1 else None, compression="zlib", metadata=None,
        )  # fmt: skip
        fh.write(buf.getvalue())

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


def _montage_encoder(
    maps: np.ndarray, labels: list[str], look: Mapping[str, Any]
) -> Callable[[BinaryIO], None]:
    def encode(fh: BinaryIO) -> None:
        montage_image(maps, labels, **look).save(fh, format="PNG")

    return encode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
#: The mode of a new output file: what the umask allows of rw-rw-rw-.
NEW_FILE_MODE = 0o666 & ~_UMASK


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


def new_temp(path: Path) -> tuple[str, BinaryIO]:
    """Create a temporary file beside ``path`` (see :func:`~convcli.imageio.atomic.temp_name`),
    registered in ``_PENDING`` first; :func:`publish` names it, :func:`discard_temps`
    removes it."""
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


def write_file(
    path: Path | str, encode: Callable[[BinaryIO], None], *, force: bool = False
) -> None:
    """Write one file atomically: ``encode`` fills a temporary file beside ``path``, which is
    renamed into place only when it is complete (no partial file on an error or Ctrl-C).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_file(Path(d, "a.bin"), lambda fh: fh.write(b"abc"))
    ...     Path(d, "a.bin").read_bytes(), len(list(Path(d).iterdir()))
    (b'abc', 1)
    """
    _commit([(Path(path), encode)], force=force)


def _commit(
    encoders: Sequence[tuple[Path, Callable[[BinaryIO], None]]],
    *,
    force: bool = False,
    own: RunStamp | None = None,
) -> None:
    """Encode every output to a temp file beside it, then :func:`publish` them all."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, encode in encoders:
            make_folder(path)
            try:
                tmp_name, tmp = new_temp(path)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
            temps.append((tmp_name, path))
            try:
                with tmp:
                    encode(tmp)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        discard_temps(temps)
        raise
    publish(temps, force=force, own=own)


def make_folder(path: Path) -> None:
    """Create the folder of output ``path`` (OutputError naming it when that fails)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputError(f"{path.parent}: is a file, not a folder") from exc
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create folder ({exc.strerror or exc})") from exc


def publish(
    temps: Sequence[tuple[str, Path]], *, force: bool = False, own: RunStamp | None = None
) -> None:
    """Give finished temporary files their names: all of them, or none.

    Each temp file gets the file mode of a new file (the umask's). Without
    ``force`` each name is claimed atomically (it must not exist, or be
    ``own``'s), in sorted order, so of two runs writing the same files at once
    the one that gets the first name gets them all; a name taken meanwhile
    fails the call (OutputError), gives back the names it had claimed and
    removes every temp file.
    """
    left = sorted(temps, key=lambda t: str(t[1]))
    claimed: list[tuple[Path, int, int]] = []  # (name, device, inode) linked by this call
    try:
        for tmp_name, path in left:
            try:
                os.chmod(tmp_name, NEW_FILE_MODE)
                if own is not None:
                    own.mark(tmp_name)
            except OSError as exc:
                raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        while left:
            tmp_name, path = left[0]
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
            left.pop(0)
    finally:
        if left:  # failed: the names this call took are given back
            for path, dev, ino in claimed:
                try:
                    st = os.lstat(path)
                    if (st.st_dev, st.st_ino) == (dev, ino):
                        os.unlink(path)
                except OSError:
                    pass
            discard_temps(left)


def discard_temps(temps: Sequence[tuple[str, Path]]) -> None:
    """Remove temporary files that will not be published."""
    for tmp_name, _ in temps:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        _PENDING.discard(tmp_name)
