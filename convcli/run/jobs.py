"""One input, end to end: read → pipeline → write, returning a small, picklable outcome.

:func:`process_one` is what every executor runs (in-process, worker
processes, Dask workers): it never raises for a bad input, it reports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convcli.errors import ConvcliError, ImageError, OutputError
from convcli.imageio.zarrin import is_zarr, zarr_stem
from convcli.pipeline import Pipeline, Result, output_name, run
from convcli.run.records import Outcome
from convcli.vocab import Format

if TYPE_CHECKING:
    from convcli.imageio.atomic import RunStamp
    from convcli.run.limits import Limit


@dataclass(frozen=True)
class OutputOptions:
    """Where and how results are written (the CLI's output options)."""

    out: str = "convcli-out"  # a folder, a file name (one input, one output) or "-" (stdout)
    fmt: str | None = None  # None: from the -o file's extension, else png; "keep": the input's
    bit_depth: int | None = None  # png: 8 when None; tiff: float32 when None
    range_mode: str = "auto"  # auto, clip, minmax, abs, offset, LO,HI or pLO,pHI
    range_scope: str = "file"  # one mapping per file, or "input": one for all files of an input
    cmap: str | None = None  # colour map of one-channel pictures
    threshold: float | str | None = None  # binary pictures: a value or "otsu"
    quality: int = 90  # jpeg / webp
    compression: str = "none"  # tiff: none, lzw, deflate
    colorbar: bool = False  # a colour bar on the montage
    montage: bool = False
    force: bool = False
    skip_existing: bool = False
    dry_run: bool = False
    keep_result: bool = False  # keep arrays in the outcome (single in-process runs: preview)
    #: Make the outcome's report (the --json record, the manifest's shapes and map
    #: statistics, the stage files listed). False when nothing reads it (-q without
    #: --json): the per-map statistics and warnings are then never computed, and
    #: ``Outcome.report`` is None. A run with a manifest makes it regardless.
    keep_report: bool = True
    save_stages: bool = False  # also write every stage's maps (convcli run --save-stages)
    tile: int | None = (
        None  # force a tiled run with tiles of this size (see convcli.pipeline.tiles)
    )
    memory_budget: int | None = None  # bytes a tiled run aims for (None: the default)
    max_pixels: int | str | None = "default"  # decompression-bomb guard; None lifts it
    #: Other inputs of the batch that an output could be named like (never overwritten).
    protect: tuple[str, ...] = ()
    #: This run's mark on its files: a task run again may replace what it wrote itself.
    stamp: RunStamp | None = None
    #: Most values any one array of the run may hold: "auto", a number, or None (no limit).
    max_output_pixels: Limit = "auto"


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go (``out_dir`` mirrors the input tree)."""

    source: str  # a path or "-"
    stem: str
    out_dir: str
    out_file: str | None = None  # -o naming the file itself


def make_job(source: str, out: str, *, root: str | None = None, single: bool = False) -> Job:
    """Decide the output place of one input.

    ``root`` is the folder the input was found in (its sub-folders are mirrored
    under ``out``). With ``single`` (one input) an ``out`` that ends in an output
    extension names the file itself.
    """
    stem = "stdin" if source == "-" else Path(source).stem
    if source != "-" and is_zarr(source):
        stem = zarr_stem(source)
    if out == "-":
        return Job(source, stem, out, "-")
    if single and Format.of_extension(Path(out).suffix) is not None:
        return Job(source, stem, str(Path(out).parent), out)
    out_dir = Path(out)
    if root is not None and source != "-":
        rel = Path(source).parent.relative_to(root)
        out_dir = out_dir / rel
    return Job(source, stem, str(out_dir))


def process_one(
    pipeline: Pipeline,
    job: Job,
    opts: OutputOptions,
    *,
    on_progress: Any = None,
    scheduler: str | None = None,
) -> Outcome:
    """Read, run and write one input; every failure becomes an ``Outcome`` with an error.

    An image too large for the memory budget (or any image, with ``opts.tile``)
    runs in tiles and streams its output (:mod:`convcli.run.tiles`);
    ``on_progress`` then hears of every tile, and with ``scheduler`` the tiles
    run on that Dask cluster.
    """
    from convcli import imageio
    from convcli.run.limits import check_image
    from convcli.run.records import pipeline_parameters, result_json

    t0 = time.perf_counter()
    name = output_name(pipeline.stages, pipeline.name)
    fmt = Format.kept_for(job.source).value if opts.fmt == "keep" else (opts.fmt or "png")
    try:
        resume = opts.skip_existing and job.out_file != "-" and not opts.dry_run
        found = _existing_outputs(pipeline, job, name, fmt, opts) if resume else None
        if found is not None and found[0]:
            return Outcome(job.source, "skipped", found[0], seconds=time.perf_counter() - t0)
        from convcli.run.tiles import process_tiled, tiled_reader

        reader = tiled_reader(pipeline, job, opts)
        if reader is not None:
            from convcli.imageio import prefetch

            prefetch.drop()  # read by region: a decoded whole image is not wanted
            return process_tiled(
                pipeline, job, opts, reader, t0=t0, resume=resume, on_progress=on_progress,
                scheduler=scheduler,
            )  # fmt: skip
        image = imageio.load_image(
            job.source, gray=pipeline.gray, dtype=pipeline.dtype, max_pixels=opts.max_pixels
        )
        check_image(pipeline, image, limit=opts.max_output_pixels, montage=opts.montage)
        if resume and found is None:  # the file names depend on the image's channels
            found = _existing_outputs(pipeline, job, name, fmt, opts, image)
            if found is not None and found[0]:
                return Outcome(job.source, "skipped", found[0], seconds=time.perf_counter() - t0)
        redo = found is not None and found[1]  # some outputs exist, not all: rewrite them
        result = (
            run(pipeline, image, keep_stages=opts.save_stages)
            if not opts.dry_run
            else _plan_only(pipeline, image)
        )
        del image  # only the maps are needed from here: keep peak memory down
        assert result.maps is not None or opts.dry_run
        stage_force = opts.force or resume  # resuming redoes this input's stage files too
        if opts.save_stages and not opts.dry_run:  # check every stage file before writing any
            stage_plan = OutputOptions(**{**opts.__dict__, "dry_run": True})
            planned = write_stages(result, name, job, stage_plan, fmt, stages=pipeline.stages)
            imageio.check_outputs(
                [Path(p) for p in planned],
                force=stage_force, inputs=[job.source, *opts.protect], own=opts.stamp,
            )  # fmt: skip
        maps = result.maps
        if maps is None:  # dry run: an empty stand-in of the right shape
            import numpy as np

            maps = np.zeros((result.out_shape[0], 1, 1), np.float32)
        write = imageio.write_feature_maps(
            maps,
            out=job.out_dir,
            stem=job.stem,
            name=name,
            fmt=fmt,
            layout=result.layout,
            labels=result.labels,
            file=job.out_file,
            range_mode=opts.range_mode,
            bit_depth=opts.bit_depth,
            montage=opts.montage,
            force=opts.force or redo,
            inputs=[job.source, *opts.protect],
            params=pipeline_parameters(pipeline),
            dry_run=opts.dry_run,
            **picture_options(pipeline, opts),
            own=opts.stamp,
        )
        if opts.dry_run:  # say now what the real run would refuse
            imageio.check_outputs(
                [p for p in write.planned if str(p) != "-"],
                force=opts.force or redo, inputs=[job.source, *opts.protect], own=opts.stamp,
            )  # fmt: skip
        report = result_json(result, write, dry_run=opts.dry_run) if opts.keep_report else None
        status = "planned" if opts.dry_run else "done"
        files = [str(p) for p in (write.planned if opts.dry_run else write.paths)]
        if opts.save_stages:
            stage_files = write_stages(
                result, name, job, opts, fmt, stage_force, stages=pipeline.stages
            )
            if report is not None:
                report["stage_outputs"] = stage_files
            files += stage_files
        keep = opts.keep_result
        return Outcome(
            job.source, status, files, None, time.perf_counter() - t0, report,
            result if keep else None, write if keep else None,
        )  # fmt: skip
    except ConvcliError as exc:
        message = str(exc)
        if not isinstance(exc, ImageError | OutputError) and not message.startswith(job.source):
            message = f"{job.source}: {message}"
        return Outcome(
            job.source, "failed", error=message, seconds=time.perf_counter() - t0,
            exception=exc if opts.keep_result else None,
        )  # fmt: skip
    except MemoryError:
        return Outcome(job.source, "failed", error=f"{job.source}: out of memory", seconds=0.0)


def picture_options(pipeline: Pipeline, opts: OutputOptions) -> dict[str, Any]:
    """Picture keywords of :func:`convcli.imageio.write_feature_maps` for a pipeline's result."""
    from convcli.pipeline.hint import hint_of_stages

    return {**picture_options_of(opts), "hint": hint_of_stages(pipeline.stages)}


def _plan_only(pipeline: Pipeline, image: Any) -> Result:
    from convcli.pipeline import plan, prepare

    x, channels, _ = prepare(image, pipeline)
    result = plan(pipeline, x.shape, channels)
    result.input = image.path
    return result


def _existing_outputs(
    pipeline: Pipeline, job: Job, name: str, fmt: str, opts: OutputOptions, image: Any = None
) -> tuple[list[str], bool] | None:
    """``(outputs, partial)`` of an earlier run of this input (``--skip-existing``).

    ``outputs`` lists the files :func:`imageio.write_feature_maps` would write when
    every one of them exists (the input is done), else it is empty; ``partial`` says
    some but not all exist (the input must be redone, overwriting them). The
    file names are planned exactly as the writer plans them: from the stages alone
    when they fix the layout (one picture, a bank, a 4-D layer), else from
    ``image`` (a bank applied to maps: the map count depends on the channels).
    None when that cannot be told (no ``image`` yet, or options the run will reject).
    """
    try:
        planned = _planned(pipeline, job, name, fmt, opts, image)
    except (ConvcliError, ValueError):
        return None  # the run itself will report the problem
    if planned is None:
        return None
    present = [os.path.isfile(p) for p in planned]
    if all(present):
        return [str(p) for p in planned], False
    return [], any(present)


def planned_outputs(
    pipeline: Pipeline, job: Job, opts: OutputOptions, image: Any = None
) -> list[Path] | None:
    """The files :func:`process_one` would write for ``job``, touching nothing.

    Planned from the stages alone when they fix the layout (one picture, a
    bank, a 4-D layer), else from ``image`` (a bank applied to maps: the map
    count depends on the channels); None when that cannot be told without the
    image. Raises :class:`~convcli.errors.ParameterError` for names the writer
    would refuse (two outputs with one name).
    """
    name = output_name(pipeline.stages, pipeline.name)
    fmt = Format.kept_for(job.source).value if opts.fmt == "keep" else (opts.fmt or "png")
    return _planned(pipeline, job, name, fmt, opts, image)


def _planned(
    pipeline: Pipeline, job: Job, name: str, fmt: str, opts: OutputOptions, image: Any
) -> list[Path] | None:
    from convcli.imageio import plan_outputs
    from convcli.pipeline.engine import plan, prepare, stages_layout

    if image is None:
        layout, labels = stages_layout(pipeline.stages)
        if layout.kind == "image":
            n_maps = 1
        elif layout.kind == "bank":
            n_maps = layout.members
        elif labels:
            n_maps = len(labels)
        else:
            return None
    else:
        x, channels, _ = prepare(image, pipeline)
        result = plan(pipeline, x.shape, channels)  # type: ignore[arg-type]
        n_maps, layout, labels = result.out_shape[0], result.layout, result.labels
    return plan_outputs(
        job.stem, name, n_maps, layout, out=job.out_dir, fmt=fmt, labels=labels,
        single_file=Path(job.out_file) if job.out_file is not None else None,
        montage=opts.montage,
    )  # fmt: skip


def write_stages(
    result: Result,
    name: str,
    job: Job,
    opts: OutputOptions,
    fmt: str,
    force: bool = False,
    *,
    stages: Sequence[Any] = (),
) -> list[str]:
    """Write every stage's maps (``--save-stages``) as ``<stem>.<name>.stage<i>-<stage>.<ext>``.

    The maps are those :func:`convcli.pipeline.run` kept with ``keep_stages``; a
    dry run plans the names only. ``stages`` (the pipeline's) give each stage's
    maps the ``auto`` mapping of what they are. Returns the files written (or planned).
    """
    import numpy as np

    from convcli import imageio
    from convcli.pipeline.hint import hint_of_stages

    files: list[str] = []
    for record in result.records:
        look = {**picture_options_of(opts), "hint": hint_of_stages(stages[: record.index])}
        maps = record.maps
        if maps is None:  # dry run: names only
            maps = np.zeros((record.geometry.out_shape[0], 1, 1), np.float32)
        write = imageio.write_feature_maps(
            maps, out=job.out_dir, stem=job.stem, name=f"{name}.stage{record.index}-{record.name}",
            fmt=fmt, layout=record.layout, labels=record.labels, range_mode=opts.range_mode,
            bit_depth=opts.bit_depth, montage=opts.montage, force=opts.force or force,
            inputs=[job.source, *opts.protect], dry_run=opts.dry_run, own=opts.stamp, **look,
        )  # fmt: skip
        files += [str(p) for p in (write.planned if opts.dry_run else write.paths)]
    return files


def picture_options_of(opts: OutputOptions) -> dict[str, Any]:
    """The picture keywords that come from the output options alone (no hint)."""
    return {
        "range_scope": opts.range_scope, "cmap": opts.cmap, "threshold": opts.threshold,
        "quality": opts.quality, "compression": opts.compression, "colorbar": opts.colorbar,
    }  # fmt: skip
