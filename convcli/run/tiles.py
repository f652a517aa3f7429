"""One large image end to end in tiles: read by region → tiled pipeline → streamed files.

:func:`convcli.run.jobs.process_one` hands an input here (:func:`tiled_reader`
says when) if its whole-image run would need more than twice the memory
budget, or when a tile size is forced; small images keep the whole-image path.
On a Dask cluster (:func:`dask_tiles`) the tiles become tasks over the
workers and come back in order to be written here; the numbers are those of
the local run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.errors import ConvcliError, ParameterError
from convcli.pipeline import Pipeline, output_name
from convcli.pipeline.tiles import (
    ProgressCallback,
    Rect,
    TiledRun,
    budget_from_env,
)
from convcli.run import cluster
from convcli.vocab import Format

if TYPE_CHECKING:
    from convcli.imageio.regions import _Reader
    from convcli.run.jobs import Job, Outcome, OutputOptions

#: An image runs whole when its whole-image estimate is at most this many budgets.
WHOLE_FACTOR = 2


def image_header(path: str, gray: bool) -> tuple[tuple[int, int, int], str] | None:
    """``(C, H, W)`` and channel names from the header, without decoding pixels."""
    from PIL import Image

    from convcli.imageio.limits import pillow_limit
    from convcli.imageio.zarrin import is_zarr, zarr_header

    try:
        if is_zarr(path):
            shape, channels = zarr_header(path)
            if gray:
                channels = {"RGB": "L", "RGBA": "LA"}.get(channels, channels)
            return (len(channels), shape[1], shape[2]), channels
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                h, w = page.imagelength, page.imagewidth  # type: ignore[union-attr]
                spp = page.samplesperpixel  # type: ignore[union-attr]
            channels = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(spp, "RGB")
        else:
            with pillow_limit(None), Image.open(path) as img:
                w, h = img.size
                bands = img.getbands()
                alpha = "A" in bands or "transparency" in img.info
                colour = img.mode not in (
                    "1",
                    "L",
                    "LA",
                    "La",
                    "I",
                    "F",
                ) and not img.mode.startswith("I;16")
            channels = ("RGB" if colour else "L") + ("A" if alpha else "")
    except Exception:  # noqa: BLE001 - the whole-image path reports a bad file
        return None
    if gray:
        channels = {"RGB": "L", "RGBA": "LA"}.get(channels, channels)
    return (len(channels), h, w), channels


def whole_estimate(pipeline: Pipeline, shape: tuple[int, int, int], channels: str) -> int:
    """Bytes the whole-image run is estimated to need (arrays only), from shapes alone.

    The decoded input, its float copy and the prepared copy; every stage's input
    and output twice (engine temporaries); the output's pixels. The same rule as
    :meth:`TiledRun.tile_bytes` over one tile covering the image, without arrays.
    """
    from convcli.pipeline import plan

    item = 8 if pipeline.dtype == "float64" else 4
    result = plan(pipeline, shape, channels)
    total = 3 * int(np.prod(shape)) * item
    for r in result.records:
        total += 2 * (int(np.prod(r.geometry.in_shape)) + int(np.prod(r.geometry.out_shape))) * item
    return total + int(np.prod(result.out_shape)) * (item + 4)


def tiled_reader(pipeline: Pipeline, job: Job, opts: OutputOptions) -> _Reader | None:
    """A region reader when this input runs in tiles, else None (the whole-image path).

    Tiles are used when ``opts.tile`` is set, or when the whole-image estimate
    exceeds ``WHOLE_FACTOR`` × the memory budget. Outputs that need the whole
    result at once (a montage, ``--save-stages``, npz, stdout) keep the
    whole-image path; with a forced tile they are refused.
    """
    from convcli.imageio.zarrin import is_zarr

    if job.source == "-" or not (os.path.isfile(job.source) or is_zarr(job.source)):
        return None  # stdin, a pipe, a folder, nothing: the whole-image path says what is wrong
    whole_only = []
    if opts.montage:
        whole_only.append("--montage")
    if opts.save_stages:
        whole_only.append("--save-stages")
    fmt = opts.fmt or "png"
    if fmt == "keep":
        fmt = Format.kept_for(job.source).value
    if fmt in ("npz", "jpeg", "webp"):
        whole_only.append(f"{fmt} output")
    if opts.cmap or opts.threshold is not None or opts.colorbar:
        whole_only.append("--cmap, --threshold and --colorbar")
    if job.out_file == "-":
        whole_only.append("-o -")
    if opts.tile is None:
        header = image_header(job.source, pipeline.gray)
        if header is None or whole_only:
            return None
        budget = opts.memory_budget or budget_from_env()
        try:
            if whole_estimate(pipeline, *header) <= WHOLE_FACTOR * budget:
                return None
        except ConvcliError:
            return None  # the whole-image path reports it
    elif whole_only:
        raise ParameterError(
            f"--tile computes the image in tiles; {', '.join(whole_only)} needs the whole result"
        )
    from convcli.imageio.regions import open_regions

    return open_regions(
        job.source, gray=pipeline.gray, dtype=pipeline.dtype, max_pixels=opts.max_pixels
    )


def unit_input(pipeline: Pipeline, reader: _Reader) -> bool:
    """Whether stage 1 sees values in [0, 1]: integer samples (1, 8 or 16 bits, scaled
    by their type's maximum) and no ``normalize``. Float (``F``, float TIFF) and raw
    32-bit integer (``I``) images are taken as they are, so they may hold anything.
    Alpha (premultiplied or not) and ``gray`` (luma weights summing to 1) keep [0, 1].
    """
    return pipeline.normalize is None and reader.bit_depth in (1, 8, 16)


def process_tiled(
    pipeline: Pipeline,
    job: Job,
    opts: OutputOptions,
    reader: _Reader,
    *,
    t0: float,
    resume: bool,
    on_progress: ProgressCallback | None = None,
    scheduler: str | None = None,
) -> Outcome:
    """Run and write one input in tiles; the same outcome, files and report as the whole path."""
    from convcli import imageio
    from convcli.imageio.write import WriteResult
    from convcli.pipeline.hint import bounded_unit, hint_of_stages
    from convcli.run.limits import check_sizes, effective_limit
    from convcli.run.records import Outcome, pipeline_parameters, result_json
    from convcli.run.stream import write_tiled

    name = output_name(pipeline.stages, pipeline.name)
    fmt = opts.fmt or "png"
    if fmt == "keep":
        fmt = Format.kept_for(job.source).value
    hint = hint_of_stages(pipeline.stages)
    # an output known to lie in [0, 1]: auto needs no statistics pass (run.stream)
    bounded = unit_input(pipeline, reader) and bounded_unit(pipeline.stages)
    budget = opts.memory_budget or budget_from_env()
    protect = [job.source, *opts.protect]
    with reader:
        run = TiledRun(pipeline, reader, tile=opts.tile, memory_budget=budget)
        result = run.result
        result.input = job.source
        if opts.max_output_pixels is not None:
            c, h, w = result.in_shape
            bound = effective_limit(opts.max_output_pixels, c * h * w)
            check_sizes(result, limit=bound, montage=opts.montage)
        single = Path(job.out_file) if job.out_file is not None else None
        planned = imageio.plan_outputs(
            job.stem, name, result.out_shape[0], result.layout, out=job.out_dir, fmt=fmt,
            labels=result.labels, single_file=single,
        )  # fmt: skip
        redo = False
        if resume:
            present = [os.path.isfile(p) for p in planned]
            if all(present):
                files = [str(p) for p in planned]
                return Outcome(job.source, "skipped", files, seconds=time.perf_counter() - t0)
            redo = any(present)
        force = opts.force or redo
        tiles_info = {"tile": list(run.tile), "count": len(run.rects()), "memory_budget": budget}
        if opts.dry_run:
            imageio.check_outputs(planned, force=force, inputs=protect, own=opts.stamp)
            write = WriteResult([], None, list(planned))
            report = result_json(result, write, dry_run=True) if opts.keep_report else None
            if report is not None:
                report["tiles"] = tiles_info
            keep = opts.keep_result
            return Outcome(
                job.source, "planned", [str(p) for p in planned], None,
                time.perf_counter() - t0, report, result if keep else None,
                write if keep else None,
            )  # fmt: skip
        if not run.streams:  # a global pool: one value per map, written as usual
            result = run.run(on_progress=on_progress)
            assert result.maps is not None
            write = imageio.write_feature_maps(
                result.maps, out=job.out_dir, stem=job.stem, name=name, fmt=fmt,
                layout=result.layout, labels=result.labels, file=job.out_file,
                range_mode=opts.range_mode, bit_depth=opts.bit_depth, force=force,
                inputs=protect, params=pipeline_parameters(pipeline), hint=hint,
                range_scope=opts.range_scope, compression=opts.compression,
            )  # fmt: skip
        else:
            source = None
            client = None
            if scheduler:
                client = cluster.connect(scheduler)
                source = dask_tiles(client, run, pipeline, job.source, opts)
            try:
                streamed = write_tiled(
                    run, out=job.out_dir, stem=job.stem, name=name, fmt=fmt,
                    layout=result.layout, labels=result.labels, file=job.out_file,
                    range_mode=opts.range_mode, bit_depth=opts.bit_depth, hint=hint,
                    bounded=bounded, range_scope=opts.range_scope, force=force, inputs=protect,
                    own=opts.stamp, tiles=source, on_progress=on_progress,
                )  # fmt: skip
            finally:
                if client is not None:
                    client.close()
            write = streamed.write
            result.stats = streamed.stats.map_stats()
            tiles_info["passes"] = streamed.passes
        report = result_json(result, write) if opts.keep_report else None
        if report is not None:
            report["tiles"] = tiles_info
        keep = opts.keep_result
        return Outcome(
            job.source, "done", [str(p) for p in write.paths], None, time.perf_counter() - t0,
            report, result if keep else None, write if keep else None,
        )  # fmt: skip


# --------------------------------------------------------------------------- dask


def dask_tiles(
    client: Any, run: TiledRun, pipeline: Pipeline, source: str, opts: OutputOptions
) -> Any:
    """A tile source computing ``run``'s tiles as tasks on the cluster, returned in order.

    Each worker opens the input itself (the same path: shared storage), keeps its
    reader and tiled run for the tasks that follow, and computes exactly what
    :meth:`TiledRun.compute` computes here. At most a window of tasks (two per
    worker thread, at least 4) is in flight, so memory stays bounded on both sides.
    """
    token = uuid.uuid4().hex
    spec = {
        "token": token, "pipeline": pipeline, "path": os.path.abspath(source),
        "max_pixels": opts.max_pixels, "tile": run.tile,
    }  # fmt: skip
    window = max(4, 2 * sum(client.nthreads().values()))

    def tiles() -> Iterator[tuple[Rect, np.ndarray]]:
        rects = iter(run.rects())
        live: deque[tuple[Rect, Any]] = deque()

        def submit(rect: Rect) -> None:
            live.append((rect, client.submit(_tile_task, spec, rect, pure=False)))

        for rect in rects:
            submit(rect)
            if len(live) >= window:
                break
        try:
            while live:
                rect, fut = live.popleft()
                tile = fut.result()
                fut.release()
                nxt = next(rects, None)
                if nxt is not None:
                    submit(nxt)
                yield rect, tile
        finally:
            if live:
                client.cancel([f for _, f in live], force=True)

    return tiles


_WORKER: dict[str, TiledRun] = {}


def _tile_task(spec: dict[str, Any], rect: Rect) -> np.ndarray:
    """One tile on a Dask worker (the run is opened once per worker and kept)."""
    from convcli.imageio.regions import open_regions

    run = _WORKER.get(spec["token"])
    if run is None:
        for old in _WORKER.values():
            close = getattr(old.reader, "close", None)
            if close is not None:
                close()
        _WORKER.clear()
        p: Pipeline = spec["pipeline"]
        reader = open_regions(
            spec["path"], gray=p.gray, dtype=p.dtype, max_pixels=spec["max_pixels"]
        )
        run = TiledRun(p, reader, tile=spec["tile"])
        _WORKER[spec["token"]] = run
    return run.compute(rect)
