"""Checks a run makes before any work: where it writes must not destroy anything.

Each raises :class:`~convcli.errors.ParameterError` (exit 2, one line) while
nothing has been read or written yet:

- :func:`check_manifest`: ``--manifest`` is never an input, never an image
  (or other output) file, and never an existing file unless the run may
  replace it (``--force``) or resume the run it records (``--skip-existing``).
- :func:`check_output_names`: the final output file names (after
  :func:`~convcli.imageio.safe_name` cleaning) of every input are distinct and
  at most 255 bytes long.
- :func:`skipped_paths`: what a folder search must not read back as input (the
  output folder when it lies inside an input folder, the manifest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convcli.errors import OutputError, ParameterError
from convcli.safety import NAME_MAX, name_bytes, printable, shorten

if TYPE_CHECKING:
    from convcli.pipeline import Pipeline
    from convcli.run.jobs import Job, OutputOptions

#: Extensions a manifest may not have: images convcli reads, files it writes.
_NOT_A_MANIFEST = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".npy",
                   ".npz")  # fmt: skip


def _real(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.realpath(path))


def check_manifest(
    manifest: str | os.PathLike[str],
    *,
    inputs: Sequence[str],
    force: bool = False,
    skip_existing: bool = False,
) -> list[dict[str, Any]]:
    """Refuse a ``--manifest`` path that would destroy a file; return the records it holds.

    The manifest may not be one of ``inputs`` (compared by real path, so
    links and ``..`` do not hide it), may not end in an image or output
    extension (``--manifest photos/*.png`` makes the shell pass a photo), and
    may not exist unless ``force`` (it is replaced) or ``skip_existing`` (the
    run resumes: an existing convcli manifest is updated, and its records are
    returned so inputs skipped now keep their earlier record).

    Examples
    --------
    >>> try:
    ...     check_manifest("photos/img0000.png", inputs=["photos/img0001.png"])
    ... except ParameterError as exc:
    ...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
    --manifest photos/img0000.png: names an image or output file;
    a manifest is JSON Lines (e.g. run.jsonl)
    """
    path = Path(manifest)
    shown = printable(os.fspath(manifest))
    real = _real(path)
    for item in inputs:
        if item != "-" and _real(item) == real:
            raise ParameterError(f"--manifest {shown}: is an input; refusing to overwrite it")
    if path.suffix.lower() in _NOT_A_MANIFEST:
        raise ParameterError(
            f"--manifest {shown}: names an image or output file; a manifest is JSON Lines"
            " (e.g. run.jsonl)"
        )
    if not os.path.lexists(path):
        return []
    if path.is_dir():
        raise ParameterError(f"--manifest {shown}: is a folder")
    if force:
        return []
    if not skip_existing:
        raise ParameterError(
            f"--manifest {shown}: exists (use --force to replace it, or --skip-existing to"
            " resume the run it records)"
        )
    records = read_manifest(path)
    if records is None:
        raise ParameterError(
            f"--manifest {shown}: exists and is not a convcli manifest; use --force to replace it"
        )
    return records


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]] | None:
    """The records of a convcli manifest (JSON Lines with ``input`` and ``status``), else None.

    An empty file is an empty manifest.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not all(isinstance(r, dict) and "input" in r and "status" in r for r in records):
        return None
    return records


def skipped_paths(out: str, manifest: str | os.PathLike[str] | None) -> list[str]:
    """Paths a folder search must not read as inputs: the output folder and the manifest.

    A folder search that meets the output folder (``-o photos/out`` while
    searching ``photos -r``) does not descend into it, so a run never reads
    its own (or an earlier run's) outputs back as inputs.
    """
    skip = []
    if out != "-":
        skip.append(out)
    if manifest is not None:
        skip.append(os.fspath(manifest))
    return skip


def check_output_names(pipeline: Pipeline, jobs: Sequence[Job], opts: OutputOptions) -> None:
    """Refuse output names that clash or are too long, for every input, before any work.

    The names are the final ones (after :func:`~convcli.imageio.safe_name`
    cleaning of stems, kernel and map names), planned as the writer plans
    them. Two inputs whose outputs would share a name (``a:b.png`` and
    ``a_b.png``), two outputs of one input with one name (bank members
    ``a/b`` and ``a:b``), and a name over 255 bytes each stop the run.
    When the file names depend on an image's channels they are checked per
    input instead (by the writer).
    """
    from convcli.run.jobs import planned_outputs

    owner: dict[str, str] = {}
    for job in jobs:
        if job.out_file == "-":
            continue
        try:
            planned = planned_outputs(pipeline, job, opts)
        except ParameterError as exc:
            raise ParameterError(f"{printable(job.source)}: {exc}") from None
        except OutputError:
            continue  # (several files for one -o FILE) the writer reports it for this input
        for path in planned or ():
            name = path.name
            if name_bytes(name) > NAME_MAX:
                raise ParameterError(
                    f"{printable(job.source)}: the output name {shorten(name)} is longer than file"
                    f" systems allow ({NAME_MAX} bytes); shorten the input's name or the"
                    " kernel's"
                )
            key = os.path.normcase(os.path.abspath(path))
            if key in owner and owner[key] != job.source:
                raise ParameterError(
                    f"{printable(owner[key])} and {printable(job.source)} would both write"
                    f" {printable(path)}; rename one or --exclude it"
                )
            owner[key] = job.source


__all__ = [
    "check_manifest",
    "check_output_names",
    "read_manifest",
    "skipped_paths",
]
