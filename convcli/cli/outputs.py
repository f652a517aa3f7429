"""Run a pipeline for a command and print what happened.

Results go to stdout (the report, ``--json``); errors and progress go to
stderr. When ``-o -`` puts an image on stdout, the report moves to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from convcli.cli.console import error_line, traceback_wanted
from convcli.cli.options import OutputArgs
from convcli.errors import ParameterError
from convcli.safety import json_text, printable
from convcli.vocab import INPUT_EXTENSIONS, Colormap, Compression, Format, RangeScope

if TYPE_CHECKING:
    from rich.console import Console

    from convcli.pipeline import Pipeline
    from convcli.run.execute import RunPlan
    from convcli.run.jobs import Outcome


def read_ahead(inputs: Sequence[str], o: OutputArgs) -> None:
    """Start decoding a single input file now, while the command imports what it runs.

    Called first in a command's body (:mod:`convcli.imageio.prefetch`: the decode
    overlaps the imports, and a read that does not take it runs as before).
    Tiled runs (``--tile``, ``--memory-budget``) read by region, and dry runs and
    ``--skip-existing`` may not read at all: no prefetch for them.
    """
    if len(inputs) != 1 or o.tile is not None or o.memory_budget is not None:
        return
    if o.dry_run or o.skip_existing:
        return
    from convcli.imageio import prefetch

    prefetch.start(inputs[0], max_pixels=o.max_pixels)


def run_command(
    pipeline: Pipeline, inputs: Sequence[str], o: OutputArgs, *, save_stages: bool = False
) -> None:
    """Check, run and report; a failed input ends in exit code 1. Usage errors raise
    before any work."""
    from convcli.run.execute import BatchOptions, plan_run
    from convcli.run.jobs import OutputOptions

    fmt = _check_out(o)
    _check_terminals(inputs, o)
    from convcli.imageio.write import check_picture_options

    check_picture_options(
        fmt.value if fmt not in (None, Format.keep) else "png", bit_depth=o.bit_depth or 8,
        range_mode=o.range_mode, range_scope=o.range_scope.value,
        cmap=o.cmap.value if o.cmap else None, threshold=o.threshold, quality=o.quality,
        compression=o.compression.value,
    )  # fmt: skip
    out = OutputOptions(
        out=o.out, fmt=fmt.value if fmt else None, bit_depth=o.bit_depth,
        range_mode=o.range_mode, range_scope=o.range_scope.value,
        cmap=o.cmap.value if o.cmap else None, threshold=o.threshold, quality=o.quality,
        compression=o.compression.value, colorbar=o.colorbar, montage=o.montage,
        force=o.force, skip_existing=o.skip_existing, dry_run=o.dry_run,
        save_stages=save_stages, tile=o.tile, memory_budget=o.memory_budget,
        max_pixels=o.max_pixels, max_output_pixels=o.max_output_pixels,  # type: ignore[arg-type]
        keep_report=o.json or not o.quiet,
    )  # fmt: skip
    batch = BatchOptions(
        recursive=o.recursive, include=o.include, exclude=o.exclude, workers=o.workers,
        manifest=o.manifest, executor=o.executor, scheduler=o.scheduler,
    )  # fmt: skip
    plan = plan_run(pipeline, inputs, out, batch)
    if not o.quiet:
        warn_kernel_files(pipeline)
    _check_one_file(pipeline, o, fmt)
    code = _run_single(plan, o) if plan.single else _run_batch(plan, o)
    if code:
        raise click.exceptions.Exit(code)


def _check_out(o: OutputArgs) -> Format | None:
    """The output format, from --format or the -o file's extension; clashes are usage errors."""
    if o.out == "-" and o.montage:
        raise ParameterError("-o - writes one image to stdout; --montage needs a folder or a file")
    if o.out == "-" and o.json:
        raise ParameterError("-o - writes the image to stdout; --json cannot share it")
    if o.out == "-":
        return o.fmt
    ext = Path(o.out).suffix.lower()
    from_ext = Format.of_extension(ext)
    if from_ext is None and ext in INPUT_EXTENSIONS and not Path(o.out).is_dir():
        known = ", ".join(e for f in Format for e in f.extensions)
        raise ParameterError(
            f"-o {o.out}: cannot write {ext[1:]} files; name a {known} file, or a folder"
        )
    if o.fmt is not None and from_ext is not None and from_ext is not o.fmt:
        raise ParameterError(f"-o {o.out} and --format {o.fmt} disagree; give one of them")
    return o.fmt or from_ext


def _check_terminals(inputs: Sequence[str], o: OutputArgs) -> None:
    """No image bytes into a terminal, and no silent wait for an image typed at one."""
    if o.out == "-" and not o.dry_run and sys.stdout.isatty():
        raise ParameterError(
            "-o - would write image bytes to the terminal; redirect stdout (> out.png) or pipe it"
        )
    if "-" in inputs and sys.stdin.isatty():
        raise ParameterError(
            "- reads an image from stdin, which is the terminal; pipe or redirect one (< in.png)"
        )


def _check_one_file(pipeline: Pipeline, o: OutputArgs, fmt: Format | None) -> None:
    """``-o FILE`` (or ``-o -``) takes one picture: a run that writes several is refused now."""
    from convcli.pipeline.engine import stages_layout

    if o.out != "-" and Format.of_extension(Path(o.out).suffix) is None:
        return  # a folder
    if fmt in (Format.npy, Format.npz):
        return  # one array file holds every map
    layout, labels = stages_layout(pipeline.stages)
    n = layout.members if layout.kind == "bank" else len(labels)
    if layout.kind != "image" and n > 1:  # (a bank on maps: counted per input, later)
        raise ParameterError(
            f"-o {o.out}: names one file, but this run writes {n} maps (one file each);"
            " give a folder"
        )


def warn_kernel_files(pipeline: Pipeline) -> None:
    """Warnings found while reading kernel files (an unknown key, a duplicate key)."""
    from convcli.cli.console import warning_line

    seen: set[str] = set()
    for stage in pipeline.stages:
        kernel = getattr(stage, "kernel", None)
        for w in kernel.extra.get("warnings", ()) if kernel is not None else ():
            if w not in seen:
                seen.add(w)
                warning_line(w)


def _consoles(stdout_is_data: bool) -> tuple[Console, Console]:
    """(results console, errors/progress console)."""
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    out = err if stdout_is_data else Console(highlight=False)
    return out, err


def _run_single(plan: RunPlan, o: OutputArgs) -> int:
    from convcli.cli.tile_progress import TileProgressBar
    from convcli.run.execute import execute

    # no console yet: Rich loads only when something is printed (not under -q)
    with TileProgressBar(plan.jobs[0].source, enabled=not o.quiet) as bar:
        summary = execute(plan, on_progress=bar)
    outcome = summary.outcomes[0]
    if outcome.status == "failed":
        if outcome.exception is not None and traceback_wanted():
            raise outcome.exception
        error_line(outcome.error or "failed")
    elif o.json:
        print(json_text(outcome.report or {}, indent=2))
    elif not o.quiet and outcome.result is not None:
        con, _ = _consoles(o.out == "-")
        _print_single(con, outcome, o, plan.pipeline.stages)
    elif not o.quiet:  # skipped (--skip-existing): nothing was computed
        from rich.markup import escape

        con, _ = _consoles(o.out == "-")
        files = printable(", ".join(outcome.outputs))
        con.print(escape(f"{printable(outcome.input)}: {outcome.status} ({files})"))
    return int(summary.exit_code)


def _run_batch(plan: RunPlan, o: OutputArgs) -> int:
    from convcli.cli.progress import BatchProgress
    from convcli.run.execute import execute
    from convcli.run.records import summary_counts

    con, err = _consoles(o.out == "-")
    with BatchProgress(len(plan.jobs), console=err, enabled=not o.quiet) as progress:

        def on_outcome(outcome: Outcome) -> None:
            if outcome.status == "failed":
                error_line(outcome.error or f"{outcome.input}: failed")
            progress.advance(outcome)

        summary = execute(plan, on_outcome)
    outcomes = summary.outcomes
    if o.json:
        counts = {**summary_counts(outcomes), "seconds": round(summary.seconds, 4)}
        results = [x.report or _failed_json(x) for x in outcomes]
        print(json_text({"results": results, "summary": counts}, indent=2))
    elif not o.quiet:
        from convcli.cli.report import summary_table

        con.print(summary_table(outcomes, summary.seconds))
        written = sum(len(x.outputs) for x in outcomes if x.status == "done")
        if written:
            from rich.markup import escape

            where = "stdout" if o.out == "-" else escape(printable(o.out.rstrip("/")) + "/")
            con.print(f"wrote {written} file{'s' if written != 1 else ''} under {where}")
    if summary.lost is not None:
        error_line(str(summary.lost))
    return int(summary.exit_code)


def _failed_json(o: Outcome) -> dict[str, Any]:
    return {"input": o.input, "status": o.status, "error": o.error}


def _print_single(con: Console, outcome: Outcome, o: OutputArgs, stages: Sequence[Any]) -> None:
    from rich.markup import escape

    from convcli.cli.report import report

    assert outcome.result is not None
    con.print(report(outcome.result, outcome.write, dry_run=o.dry_run))
    stage_files = (outcome.report or {}).get("stage_outputs")
    if stage_files:  # --save-stages
        verb = "would write" if o.dry_run else "wrote"
        n = len(stage_files)
        con.print(f"[bold]{verb} {n} stage file{'s' if n != 1 else ''}:[/]")
        for f in stage_files:
            con.print(f"  {escape(printable(f))}")
    if o.preview:
        _print_preview(con, outcome, o, stages)


def _print_preview(con: Console, outcome: Outcome, o: OutputArgs, stages: Sequence[Any]) -> None:
    if not con.is_terminal:
        con.print("(--preview draws in a terminal; this output is not one)", style="dim")
        return
    _draw_preview(con, outcome, o, stages)


#: Most pictures ``--preview`` draws.
PREVIEW_MAX = 8


def _draw_preview(con: Console, outcome: Outcome, o: OutputArgs, stages: Sequence[Any]) -> None:
    """Every picture written (up to :data:`PREVIEW_MAX`), each under its file name; for
    array formats, every map mapped as a picture would be."""
    import numpy as np

    from convcli.cli.report import preview
    from convcli.imageio import to_pixels
    from convcli.run.records import map_names

    result = outcome.result
    if result is None or result.maps is None:
        return
    pictures: list[tuple[str, np.ndarray]] = []
    files = [
        p for p in getattr(outcome.write, "paths", [])
        if str(p) != "-" and (f := Format.of_extension(p.suffix)) is not None and f.is_picture
    ]  # fmt: skip
    if files:
        from PIL import Image

        for p in files[: PREVIEW_MAX + 1]:
            with Image.open(p) as img:
                px = np.asarray(img.convert("RGBA" if "A" in img.mode else "RGB"))
            pictures.append((p.name, np.moveaxis(px, -1, 0)))
    else:
        from convcli.pipeline.hint import hint_of_stages

        hint = hint_of_stages(stages)
        names = map_names(result)
        for i, m in enumerate(result.maps[: PREVIEW_MAX + 1]):
            pictures.append((names[i], to_pixels(m, range_mode=o.range_mode, hint=hint)[0]))
    n = min(len(pictures), PREVIEW_MAX)
    width = max(8, min(con.width, 100))
    height = max(8, 40 // max(1, (n + 1) // 2))
    for name, px in pictures[:PREVIEW_MAX]:
        con.print(name, style="bold", markup=False)
        con.print(preview(px, max_width=width, max_height=height))
    if len(pictures) > PREVIEW_MAX:
        con.print(f"(first {PREVIEW_MAX} pictures shown)", style="dim")


def with_pipeline_outputs(o: OutputArgs, defaults: dict[str, Any]) -> OutputArgs:
    """``o`` with a pipeline file's ``output:`` values for the options not given."""
    fields = {"format": "fmt", "range": "range_mode"}
    words: dict[str, Any] = {
        "fmt": Format, "range_scope": RangeScope, "cmap": Colormap, "compression": Compression
    }  # fmt: skip
    changes: dict[str, Any] = {}
    for key, value in defaults.items():
        name = fields.get(key, key)
        if name in o.given or name not in o.__dataclass_fields__:
            continue
        changes[name] = words[name].parse(value) if name in words else value
    return replace(o, **changes)
