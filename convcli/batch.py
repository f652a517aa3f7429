"""Finding inputs and running many of them: local workers, progress, manifest, Dask.

:func:`find_inputs` turns the command line's INPUT arguments into jobs;
:func:`run_batch` runs :func:`convcli.runner.process_one` over them.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from convcli.errors import ParameterError
from convcli.pipeline import Pipeline
from convcli.runner import IMAGE_EXTENSIONS, Job, Outcome, OutputOptions, make_job, process_one


def find_inputs(
    inputs: Sequence[str],
    *,
    recursive: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[tuple[str, str | None]]:
    """``(path, root)`` for every input: files as given, folders searched by extension.

    ``root`` is the folder an image was found in (None for inputs named directly),
    so its sub-folders can be mirrored under the output folder. Hidden files and
    folders are skipped; symlinked folders are followed once (loops are skipped).
    """
    found: list[tuple[str, str | None]] = []
    for item in inputs:
        if item == "-" or not os.path.isdir(item):
            found.append((item, None))
            continue
        found.extend((p, item) for p in _walk(item, recursive, include, exclude))
    return found


def _walk(
    root: str, recursive: bool, include: Sequence[str], exclude: Sequence[str]
) -> Iterable[str]:
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            if include and not any(
                fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in include
            ):
                continue
            if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in exclude):
                continue
            yield os.path.join(folder, name)


def make_jobs(found: Sequence[tuple[str, str | None]], out: str) -> list[Job]:
    single = len(found) == 1
    if not single and (
        out == "-" or Path(out).suffix.lower() in (".png", ".tif", ".tiff", ".npy", ".npz")
    ):
        raise ParameterError(
            f"-o {out}: names one file, but there are {len(found)} inputs; give a folder"
        )
    return [make_job(src, out, root=root, single=single) for src, root in found]


def run_batch(
    pipeline: Pipeline,
    jobs: Sequence[Job],
    opts: OutputOptions,
    *,
    workers: int = 1,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every job; call ``on_outcome`` as each finishes. A failed input never stops the rest."""
    outcomes = []
    for job in jobs:
        outcome = process_one(pipeline, job, opts)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
