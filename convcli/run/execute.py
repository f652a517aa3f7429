"""A pipeline on the command line's inputs: check everything, make the jobs, run them.

:func:`plan_run` does every check that needs no pixels (options, inputs,
output folders, file names) and returns the jobs, so bad usage stops the run
before any work (exit 2). :func:`execute` runs the jobs — in this process for
one input, else through :func:`convcli.run.batch.run_batch` — writes the
manifest and returns the outcomes. Nothing here prints: the command line is
told about each finished input through ``on_outcome``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convcli.errors import ExitCode, ParameterError
from convcli.pipeline import Pipeline
from convcli.run.jobs import Job, Outcome, OutputOptions
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

    @property
    def single(self) -> bool:
        return len(self.jobs) == 1


@dataclass
class RunSummary:
    """What a run did."""

    outcomes: list[Outcome]
    seconds: float

    @property
    def exit_code(self) -> ExitCode:
        failed = any(o.status == "failed" for o in self.outcomes)
        return ExitCode.SOME_FAILED if failed else ExitCode.OK


def plan_run(
    pipeline: Pipeline, inputs: Sequence[str], out: OutputOptions, batch: BatchOptions
) -> RunPlan:
    """Check the pipeline, the options and the inputs; make one job per input.

    Raises :class:`ParameterError` (exit 2) before any image is processed.
    """
    from convcli.run.batch import find_inputs, make_jobs

    pipeline.validate()
    if out.bit_depth not in (None, 8, 16):
        raise ParameterError(f"--bit-depth must be 8 or 16, got {out.bit_depth}")
    if list(inputs).count("-") > 1:
        raise ParameterError("stdin (-) can be read only once")
    if batch.executor is Executor.dask and not batch.scheduler:
        raise ParameterError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if batch.executor is not Executor.dask and batch.scheduler:
        raise ParameterError("--scheduler needs --executor dask")
    found = find_inputs(
        inputs, recursive=batch.recursive, include=batch.include, exclude=batch.exclude
    )
    if not found:
        exts = ", ".join(e.lstrip(".") for e in INPUT_EXTENSIONS if e != ".jpeg")
        raise ParameterError(f"no images found in {', '.join(inputs)} (extensions: {exts})")
    jobs = make_jobs(found, out.out)
    _check_folders(jobs, out.out, batch.manifest)
    if len(jobs) > 1:
        out = replace(out, protect=_named_like_outputs(pipeline, jobs))
    return RunPlan(pipeline, jobs, out, batch)


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
    else:
        b = run.batch
        outcomes = run_batch(
            run.pipeline, run.jobs, run.out, workers=b.workers, executor=b.executor.value,
            scheduler=b.scheduler, on_outcome=emit,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    if run.batch.manifest is not None:
        write_manifest(run.batch.manifest, outcomes, run.pipeline)
    return RunSummary(outcomes, seconds)


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
                raise ParameterError(f"{option}: {parent} is a file, not a folder")


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
