"""A pipeline on the command line's inputs: check everything, make the jobs, run them.

:func:`plan_run` does every check that needs no pixels (options, inputs,
output folders, file names) and returns the jobs, so bad usage stops the run
before any work (exit 2). :func:`execute` runs the jobs — in this process for
one input, else through :func:`convcli.run.batch.run_batch` — writes the
manifest and returns the outcomes. Nothing here prints: the command line is
told about each finished input through ``on_outcome``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from convcli.errors import ExitCode, ParameterError, SchedulerLostError, SizeLimitError
from convcli.pipeline import Pipeline
from convcli.run.jobs import Job, Outcome, OutputOptions
from convcli.safety import check_name_lengths, printable
from convcli.vocab import INPUT_EXTENSIONS, Executor


@dataclass(frozen=True)
class BatchOptions:
    """How inputs are found and where they run (the CLI's batch options)."""

    recursive: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    workers: int | None = None
    manifest: Path | None = None
    executor: Executor = Executor.local
    scheduler: str | None = None


@dataclass(frozen=True)
class RunPlan:
    """What a run will do: the checked pipeline, its jobs and options."""

    pipeline: Pipeline
    jobs: list[Job]
    out: OutputOptions
    batch: BatchOptions
    #: an existing manifest this run replaces (--force) or resumes (--skip-existing) ...
    replace_manifest: bool = False
    #: ... and its records, kept for the inputs this run skips
    earlier: list[dict[str, Any]] = field(default_factory=list)

    @property
    def single(self) -> bool:
        return len(self.jobs) == 1


@dataclass
class RunSummary:
    """What a run did (``lost``: the Dask scheduler went away mid-run)."""

    outcomes: list[Outcome]
    seconds: float
    lost: SchedulerLostError | None = None

    @property
    def too_large(self) -> bool:
        """One input whose arrays would pass ``--max-output-pixels``: a usage error."""
        return len(self.outcomes) == 1 and isinstance(self.outcomes[0].exception, SizeLimitError)

    @property
    def exit_code(self) -> ExitCode:
        if self.too_large:
            return ExitCode.USAGE
        failed = self.lost is not None or any(o.status == "failed" for o in self.outcomes)
        return ExitCode.SOME_FAILED if failed else ExitCode.OK


def plan_run(
    pipeline: Pipeline, inputs: Sequence[str], out: OutputOptions, batch: BatchOptions
) -> RunPlan:
    """Check the pipeline, the options and the inputs; make one job per input.

    Raises :class:`ParameterError` (exit 2) before any image is processed.
    """
    from convcli.run import preflight
    from convcli.run.batch import find_inputs, make_jobs

    pipeline.validate()
    if out.out != "-":
        check_name_lengths(out.out, "-o")
    if batch.manifest is not None:
        check_name_lengths(batch.manifest, "--manifest")
    for item in inputs:
        check_name_lengths(item, "input")
    if out.bit_depth not in (None, 8, 16):
        raise ParameterError(f"--bit-depth must be 8 or 16, got {out.bit_depth}")
    if list(inputs).count("-") > 1:
        raise ParameterError("stdin (-) can be read only once")
    if batch.executor is Executor.dask and not batch.scheduler:
        raise ParameterError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if batch.executor is not Executor.dask and batch.scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    found = find_inputs(
        inputs, recursive=batch.recursive, include=batch.include, exclude=batch.exclude,
        skip=preflight.skipped_paths(out.out, batch.manifest),
    )  # fmt: skip
    if not found:
        exts = ", ".join(e.lstrip(".") for e in INPUT_EXTENSIONS if e != ".jpeg")
        raise ParameterError(f"no images found in {', '.join(inputs)} (extensions: {exts})")
    jobs = make_jobs(found, out.out)
    _check_folders(jobs, out.out, batch.manifest)
    earlier: list[dict[str, Any]] = []  # an existing manifest's records (--skip-existing)
    replace_manifest = False
    if batch.manifest is not None:
        out = replace(out, keep_report=True)  # the manifest's records come from the reports
        replace_manifest = os.path.lexists(batch.manifest)
        earlier = preflight.check_manifest(
            batch.manifest, inputs=[p for p, _ in found], force=out.force,
            skip_existing=out.skip_existing,
        )  # fmt: skip
    if len(jobs) > 1:
        out = replace(out, protect=_named_like_outputs(pipeline, jobs))
    preflight.check_output_names(pipeline, jobs, out)
    if not out.dry_run:
        _sweep(jobs, out, batch.manifest)
        from convcli.imageio.atomic import RunStamp

        out = replace(out, stamp=RunStamp.new())
    if len(jobs) > 1:
        _check_first_input_size(pipeline, jobs, out)
    return RunPlan(pipeline, jobs, out, batch, replace_manifest, earlier)


def execute(
    run: RunPlan,
    on_outcome: Callable[[Outcome], None] | None = None,
    *,
    on_progress: Callable[[Any], None] | None = None,
) -> RunSummary:
    """Run every job; write the manifest; return the outcomes in input order.

    ``on_progress`` hears of every tile of a single input run in tiles (and with
    ``--executor dask`` its tiles run on the cluster).
    """
    from convcli.run.batch import run_batch
    from convcli.run.jobs import process_one
    from convcli.run.records import write_manifest

    emit = on_outcome or (lambda o: None)
    t0 = time.perf_counter()
    if run.single:
        dask = run.batch.scheduler if run.batch.executor is Executor.dask else None
        outcome = process_one(
            run.pipeline, run.jobs[0], replace(run.out, keep_result=True),
            on_progress=on_progress, scheduler=dask,
        )  # fmt: skip
        emit(outcome)
        outcomes = [outcome]
    lost: SchedulerLostError | None = None
    if not run.single:
        b = run.batch
        try:
            outcomes = run_batch(
                run.pipeline, run.jobs, run.out, workers=b.workers,
                executor=b.executor.value, scheduler=b.scheduler, on_outcome=emit,
            )  # fmt: skip
        except SchedulerLostError as exc:  # one line, the manifest, exit 1
            lost, outcomes = exc, exc.outcomes
    summary = RunSummary(outcomes, time.perf_counter() - t0, lost)
    if run.batch.manifest is not None and not summary.too_large:
        write_manifest(
            run.batch.manifest, outcomes, run.pipeline, replace=run.replace_manifest,
            earlier=run.earlier,
        )  # fmt: skip
    return summary


def _check_folders(jobs: list[Job], out: str, manifest: Path | None) -> None:
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


def _named_like_outputs(pipeline: Pipeline, jobs: list[Job]) -> tuple[str, ...]:
    """Inputs whose names look like this run's outputs (``a.box.png`` beside ``a.png``).

    Each input's writer refuses to overwrite its own input; these others must
    be refused too (with ``--force`` one input's output could be another input).
    Only names holding ``.<output name>.`` can clash, so the list stays short.
    """
    from convcli.imageio import safe_name
    from convcli.pipeline import output_name

    tag = f".{safe_name(output_name(pipeline.stages, pipeline.name))}."
    return tuple(j.source for j in jobs if j.source != "-" and tag in Path(j.source).name)


def _sweep(jobs: list[Job], out: OutputOptions, manifest: Path | None) -> None:
    """Remove temporary files that killed runs left in this run's output folders."""
    from convcli.imageio.atomic import sweep_stale_temps

    folders = [] if out.out == "-" else [j.out_dir for j in jobs]
    if manifest is not None:
        folders.append(str(Path(manifest).parent))
    sweep_stale_temps(folders)


def _check_first_input_size(pipeline: Pipeline, jobs: list[Job], out: OutputOptions) -> None:
    """A batch whose first input would already be over ``--max-output-pixels`` stops at once.

    (Exit 2 before any work, as for a single input; other inputs over the limit
    fail one by one.)
    """
    from convcli.errors import ConvcliError
    from convcli.pipeline import plan
    from convcli.run.limits import check_sizes, effective_limit
    from convcli.run.tiles import image_header

    first = next((j for j in jobs if j.source != "-"), None)
    if first is None or out.max_output_pixels is None:
        return
    header = image_header(first.source, pipeline.gray)  # the header only: no pixels decoded
    if header is None:
        return  # the run reports it for that input
    (c, h, w), channels = header
    try:
        if channels.endswith("A") and pipeline.alpha == "drop":
            c, channels = c - 1, channels[:-1]
        result = plan(pipeline, (c, h, w), channels)
        bound = effective_limit(out.max_output_pixels, c * h * w)
        check_sizes(result, limit=bound, montage=out.montage)
    except SizeLimitError as exc:
        raise SizeLimitError(f"{printable(first.source)}: {exc}") from None
    except ConvcliError:
        return  # the run reports it for that input
