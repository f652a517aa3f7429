"""Run a pipeline on the command line's inputs and print what happened.

Results go to stdout (the report, ``--json``); errors and progress go to
stderr. When ``-o -`` puts an image on stdout, the report moves to stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from convcli.errors import ExitCode, OutputError, ParameterError
from convcli.pipeline import Pipeline
from convcli.runner import Outcome, OutputOptions, pipeline_parameters


@dataclass(frozen=True)
class BatchOptions:
    recursive: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    workers: int | None = None
    manifest: Path | None = None
    executor: str = "local"
    scheduler: str | None = None


@dataclass(frozen=True)
class ReportOptions:
    json: bool = False
    quiet: bool = False
    preview: bool = False


def consoles(stdout_is_data: bool) -> tuple[Console, Console]:
    """(results console, errors/progress console)."""
    err = Console(stderr=True, highlight=False)
    out = err if stdout_is_data else Console(highlight=False)
    return out, err


def execute(
    pipeline: Pipeline,
    inputs: list[str],
    out: OutputOptions,
    batch: BatchOptions,
    rep: ReportOptions,
) -> int:
    """Run ``pipeline`` on ``inputs``; print reports; return the exit code."""
    from convcli.batch import find_inputs, make_jobs, run_batch
    from convcli.cli import error_line, traceback_wanted

    pipeline.validate()
    if out.bit_depth not in (None, 8, 16):
        raise ParameterError(f"--bit-depth must be 8 or 16, got {out.bit_depth}")
    if out.out == "-" and rep.json:
        raise ParameterError("-o - writes the image to stdout; --json cannot share it")
    if inputs.count("-") > 1:
        raise ParameterError("stdin (-) can be read only once")
    found = find_inputs(
        inputs, recursive=batch.recursive, include=batch.include, exclude=batch.exclude
    )
    if not found:
        raise ParameterError(
            f"no images found in {', '.join(inputs)} (extensions: png, jpg, tif, bmp, gif, webp)"
        )
    jobs = make_jobs(found, out.out)
    _check_folders(jobs, out.out, batch.manifest)
    if len(jobs) > 1:
        out = OutputOptions(**{**out.__dict__, "protect": _named_like_outputs(pipeline, jobs)})
    if batch.executor == "dask" and not batch.scheduler:
        raise ParameterError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if batch.executor != "dask" and batch.scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    stdout_is_data = out.out == "-"
    con, err = consoles(stdout_is_data)

    if len(jobs) == 1:
        opts = OutputOptions(**{**out.__dict__, "keep_result": True})
        from convcli.runner import process_one
        from convcli.tile_progress import TileProgressBar

        dask = batch.scheduler if batch.executor == "dask" else None
        with TileProgressBar(jobs[0].source, console=err, enabled=not rep.quiet) as bar:
            outcome = process_one(pipeline, jobs[0], opts, on_progress=bar, scheduler=dask)
        outcomes = [outcome]
        if batch.manifest is not None:
            write_manifest(batch.manifest, outcomes, pipeline)
        if outcome.status == "failed":
            if outcome.exception is not None and traceback_wanted():
                raise outcome.exception
            error_line(outcome.error or "failed")
        elif rep.json:
            print(json.dumps(outcome.report or {}, indent=2, ensure_ascii=False))
        elif not rep.quiet and outcome.result is not None:
            _print_single(con, outcome, out, rep)
        elif not rep.quiet:  # skipped (--skip-existing): nothing was computed
            con.print(f"{outcome.input}: {outcome.status} ({', '.join(outcome.outputs)})")
        elif rep.preview and outcome.result is not None:
            _print_preview(con, outcome, out)
    else:
        import time

        from convcli.batch import BatchProgress

        t0 = time.perf_counter()
        with BatchProgress(len(jobs), console=err, enabled=not rep.quiet) as progress:

            def on_outcome(o: Outcome) -> None:
                if o.status == "failed":
                    error_line(o.error or f"{o.input}: failed")
                progress.advance(o)

            outcomes = run_batch(
                pipeline, jobs, out, workers=batch.workers, executor=batch.executor,
                scheduler=batch.scheduler, on_outcome=on_outcome,
            )  # fmt: skip
        wall = time.perf_counter() - t0
        if batch.manifest is not None:
            write_manifest(batch.manifest, outcomes, pipeline)
        if rep.json:
            summary = {**summary_counts(outcomes), "seconds": round(wall, 4)}
            print(json.dumps({"results": [o.report or _failed_json(o) for o in outcomes],
                              "summary": summary}, indent=2, ensure_ascii=False))  # fmt: skip
        elif not rep.quiet:
            con.print(summary_table(outcomes, wall))
            written = sum(len(o.outputs) for o in outcomes if o.status == "done")
            if written:
                from rich.markup import escape

                where = "stdout" if out.out == "-" else escape(out.out.rstrip("/") + "/")
                con.print(f"wrote {written} file{'s' if written != 1 else ''} under {where}")
    failed = sum(o.status == "failed" for o in outcomes)
    return int(ExitCode.SOME_FAILED if failed else ExitCode.OK)


def _check_folders(jobs: list, out: str, manifest: Path | None) -> None:
    """A file where an output folder must be stops the run before any work (exit 2).

    Otherwise every input would fail with the same message, or (the manifest)
    the run would end in a crash after all the work was done.
    """
    wanted = [("-o " + out, Path(d)) for d in sorted({j.out_dir for j in jobs}) if out != "-"]
    if manifest is not None:
        wanted.append((f"--manifest {manifest}", Path(manifest).parent))
    for option, folder in wanted:
        for parent in [folder, *folder.parents]:
            if parent.exists() and not parent.is_dir():
                raise ParameterError(f"{option}: {parent} is a file, not a folder")


def _named_like_outputs(pipeline: Pipeline, jobs: list) -> tuple[str, ...]:
    """Inputs whose names look like this run's outputs (``a.box.png`` beside ``a.png``).

    Each input's writer refuses to overwrite its own input; these others must
    be refused too (with ``--force`` one input's output could be another input).
    Only names holding ``.<output name>.`` can clash, so the list stays short.
    """
    from convcli.imageio import safe_name
    from convcli.pipeline import output_name

    tag = f".{safe_name(output_name(pipeline.stages, pipeline.name))}."
    return tuple(j.source for j in jobs if j.source != "-" and tag in Path(j.source).name)


def _failed_json(o: Outcome) -> dict[str, Any]:
    return {"input": o.input, "status": o.status, "error": o.error}


def _print_single(con: Console, outcome: Outcome, out: OutputOptions, rep: ReportOptions) -> None:
    from convcli.report import report

    assert outcome.result is not None
    con.print(report(outcome.result, outcome.write, dry_run=out.dry_run))
    stage_files = (outcome.report or {}).get("stage_outputs")
    if stage_files:  # --save-stages
        from rich.markup import escape

        verb = "would write" if out.dry_run else "wrote"
        n = len(stage_files)
        con.print(f"[bold]{verb} {n} stage file{'s' if n != 1 else ''}:[/]")
        for f in stage_files:
            con.print(f"  {escape(f)}")
    if rep.preview:
        _print_preview(con, outcome, out)


def _print_preview(con: Console, outcome: Outcome, out: OutputOptions) -> None:
    if not con.is_terminal:
        con.print("(--preview draws in a terminal; this output is not one)", style="dim")
        return
    _draw_preview(con, outcome, out)


def _draw_preview(con: Console, outcome: Outcome, out: OutputOptions) -> None:
    from convcli.imageio import to_pixels
    from convcli.report import preview

    result = outcome.result
    if result is None or result.maps is None:
        return
    maps = result.maps
    if result.layout == "image" and maps.shape[0] <= 4:
        picture = maps
    elif result.layout.startswith("bank:"):
        n = int(result.layout.split(":")[1])
        picture = maps[: maps.shape[0] // n]
    else:
        picture = maps[:1]
    pixels, _ = to_pixels(picture, range_mode=out.range_mode)
    width = max(8, min(con.width, 100))
    con.print(preview(pixels, max_width=width, max_height=40))


def summary_counts(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "planned")
    }
    return {**counts, "inputs": len(outcomes)}


def summary_table(outcomes: list[Outcome], wall: float | None = None):  # noqa: ANN201
    from rich.table import Table

    counts = summary_counts(outcomes)
    table = Table(title="batch summary", title_justify="left")
    for col in ("inputs", "done", "skipped", "failed"):
        table.add_column(col, justify="right")
    row = [str(counts[c]) for c in ("inputs", "done", "skipped", "failed")]
    if wall is not None:
        table.add_column("wall time", justify="right")
        table.add_column("images/s", justify="right")
        done = counts["done"]
        row += [f"{wall:.2f} s", f"{done / wall:.1f}" if wall > 0 else "-"]
    table.add_row(*row)
    return table


def write_manifest(path: Path, outcomes: list[Outcome], pipeline: Pipeline) -> None:
    """JSON Lines, one record per input, written atomically."""
    import os
    import tempfile

    params = pipeline_parameters(pipeline)
    text = "".join(json.dumps(o.manifest_line(params)) + "\n" for o in outcomes)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the manifest ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            why = exc.strerror or exc
            raise OutputError(f"{path}: cannot write the manifest ({why})") from exc
        raise
