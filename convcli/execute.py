"""Run a pipeline on the command line's inputs and print what happened.

Results go to stdout (the report, ``--json``); errors and progress go to
stderr. When ``-o -`` puts an image on stdout, the report moves to stderr.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from convcli.errors import ExitCode, OutputError, ParameterError, SchedulerLostError, SizeLimitError
from convcli.pipeline import Pipeline
from convcli.runner import Outcome, OutputOptions, pipeline_parameters
from convcli.safety import check_name_lengths, json_text, printable


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
    from convcli import preflight
    from convcli.batch import find_inputs, make_jobs, run_batch
    from convcli.cli import error_line, traceback_wanted

    pipeline.validate()
    if out.bit_depth not in (8, 16):
        raise ParameterError(f"--bit-depth must be 8 or 16, got {out.bit_depth}")
    if out.out == "-" and rep.json:
        raise ParameterError("-o - writes the image to stdout; --json cannot share it")
    if inputs.count("-") > 1:
        raise ParameterError("stdin (-) can be read only once")
    if out.out != "-":
        check_name_lengths(out.out, "-o")
    if batch.manifest is not None:
        check_name_lengths(batch.manifest, "--manifest")
    for item in inputs:
        check_name_lengths(item, "input")
    found = find_inputs(
        inputs, recursive=batch.recursive, include=batch.include, exclude=batch.exclude,
        skip=preflight.skipped_paths(out.out, batch.manifest),
    )  # fmt: skip
    if not found:
        raise ParameterError(
            f"no images found in {', '.join(inputs)} (extensions: png, jpg, tif, bmp, gif, webp)"
        )
    jobs = make_jobs(found, out.out)
    _check_folders(jobs, out.out, batch.manifest)
    earlier: list[dict[str, Any]] = []  # an existing manifest's records (--skip-existing)
    replace_manifest = False
    if batch.manifest is not None:
        replace_manifest = os.path.lexists(batch.manifest)
        earlier = preflight.check_manifest(
            batch.manifest, inputs=[p for p, _ in found], force=out.force,
            skip_existing=out.skip_existing,
        )  # fmt: skip
    if len(jobs) > 1:
        out = OutputOptions(**{**out.__dict__, "protect": _named_like_outputs(pipeline, jobs)})
    preflight.check_output_names(pipeline, jobs, out)
    if batch.executor == "dask" and not batch.scheduler:
        raise ParameterError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if batch.executor != "dask" and batch.scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    if not out.dry_run:
        _sweep(jobs, out, batch.manifest)
        from convcli.imageio.atomic import RunStamp

        out = OutputOptions(**{**out.__dict__, "stamp": RunStamp.new()})
    stdout_is_data = out.out == "-"
    con, err = consoles(stdout_is_data)

    def manifest(outcomes: list[Outcome]) -> None:
        if batch.manifest is not None:
            write_manifest(batch.manifest, outcomes, pipeline, replace=replace_manifest,
                           earlier=earlier)  # fmt: skip

    if len(jobs) == 1:
        opts = OutputOptions(**{**out.__dict__, "keep_result": True})
        from convcli.runner import process_one

        outcome = process_one(pipeline, jobs[0], opts)
        outcomes = [outcome]
        too_large = isinstance(outcome.exception, SizeLimitError)
        if not too_large:  # (too large: the options ask too much; nothing is written)
            manifest(outcomes)
        if outcome.status == "failed":
            if outcome.exception is not None and traceback_wanted():
                raise outcome.exception
            error_line(outcome.error or "failed")
            if too_large:
                return int(ExitCode.USAGE)
        elif rep.json:
            print(json_text(outcome.report or {}, indent=2))
        elif not rep.quiet and outcome.result is not None:
            _print_single(con, outcome, out, rep)
        elif not rep.quiet:  # skipped (--skip-existing): nothing was computed
            from rich.markup import escape

            files = escape(printable(", ".join(outcome.outputs)))
            con.print(f"{escape(printable(outcome.input))}: {outcome.status} ({files})")
        elif rep.preview and outcome.result is not None:
            _print_preview(con, outcome, out)
    else:
        import time

        from convcli.batch import BatchProgress

        _check_first_input_size(pipeline, jobs, out)
        t0 = time.perf_counter()
        lost: SchedulerLostError | None = None
        with BatchProgress(len(jobs), console=err, enabled=not rep.quiet) as progress:

            def on_outcome(o: Outcome) -> None:
                if o.status == "failed":
                    error_line(o.error or f"{o.input}: failed")
                progress.advance(o)

            try:
                outcomes = run_batch(
                    pipeline, jobs, out, workers=batch.workers, executor=batch.executor,
                    scheduler=batch.scheduler, on_outcome=on_outcome,
                )  # fmt: skip
            except SchedulerLostError as exc:  # one line, the manifest, exit 1
                lost, outcomes = exc, exc.outcomes
        wall = time.perf_counter() - t0
        manifest(outcomes)
        if rep.json:
            summary = {**summary_counts(outcomes), "seconds": round(wall, 4)}
            print(json_text({"results": [o.report or _failed_json(o) for o in outcomes],
                             "summary": summary}, indent=2))  # fmt: skip
        elif not rep.quiet:
            con.print(summary_table(outcomes, wall))
            written = sum(len(o.outputs) for o in outcomes if o.status == "done")
            if written:
                from rich.markup import escape

                where = "stdout" if out.out == "-" else escape(printable(out.out.rstrip("/")) + "/")
                con.print(f"wrote {written} file{'s' if written != 1 else ''} under {where}")
        if lost is not None:
            error_line(str(lost))
    failed = sum(o.status == "failed" for o in outcomes)
    return int(ExitCode.SOME_FAILED if failed else ExitCode.OK)


def _sweep(jobs: list, out: OutputOptions, manifest: Path | None) -> None:
    """Remove temporary files that killed runs left in this run's output folders."""
    from convcli.imageio.atomic import sweep_stale_temps

    folders = [] if out.out == "-" else [j.out_dir for j in jobs]
    if manifest is not None:
        folders.append(str(Path(manifest).parent))
    sweep_stale_temps(folders)


def _check_first_input_size(pipeline: Pipeline, jobs: list, out: OutputOptions) -> None:
    """A batch whose first input would already be over ``--max-output-pixels`` stops at once.

    (Exit 2 before any work, as for a single input; other inputs over the limit
    fail one by one.)
    """
    from convcli.errors import ConvcliError
    from convcli.imageio import load_image
    from convcli.limits import check_image

    first = next((j for j in jobs if j.source != "-"), None)
    if first is None or out.max_output_pixels is None:
        return
    try:
        image = load_image(first.source, gray=pipeline.gray, dtype=pipeline.dtype)
        check_image(pipeline, image, limit=out.max_output_pixels, montage=out.montage)
    except SizeLimitError as exc:
        raise SizeLimitError(f"{printable(first.source)}: {exc}") from None
    except ConvcliError:
        return  # the run reports it for that input


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
                raise ParameterError(
                    f"{printable(option)}: {printable(parent)} is a file, not a folder"
                )


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
            con.print(f"  {escape(printable(f))}")
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


def write_manifest(
    path: Path,
    outcomes: list[Outcome],
    pipeline: Pipeline,
    *,
    replace: bool = False,
    earlier: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """JSON Lines, one record per input, written atomically, with the outputs' file mode.

    Without ``replace`` the name is claimed only if no file has it (see
    :func:`convcli.imageio.atomic.claim`). Records of ``earlier`` (the
    manifest being resumed) are kept for inputs this run skipped.
    """
    from convcli import preflight
    from convcli.imageio.atomic import claim, temp_name
    from convcli.imageio.write import _UMASK

    params = pipeline_parameters(pipeline)
    records = [o.manifest_line(params) for o in outcomes]
    if earlier:
        records = preflight.merge_records(records, list(earlier))
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = Path(path)
    shown = printable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write the manifest ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)
        claim(tmp, path, replace=replace)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise OutputError(f"{shown}: cannot write the manifest (another process made"
                              " it meanwhile)") from exc  # fmt: skip
        if isinstance(exc, OSError):
            why = exc.strerror or exc
            raise OutputError(f"{shown}: cannot write the manifest ({why})") from exc
        raise
