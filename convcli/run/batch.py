"""Finding inputs and running many of them: local workers, progress, manifest, Dask.

:func:`find_inputs` turns the command line's INPUT arguments into ``(path, root)``
pairs and :func:`make_jobs` into :class:`~convcli.run.jobs.Job` s; :func:`run_batch`
runs :func:`convcli.run.jobs.process_one` over them in this process, in worker
processes, or on a Dask cluster (:func:`run_dask`). Every executor returns the
outcomes in job order, and calls ``on_outcome`` as each input finishes (in
completion order). The command line's
progress display is fed from there.

Interrupts: while a batch runs, SIGTERM is turned into ``KeyboardInterrupt`` in
the calling process. Worker processes ignore SIGINT (the parent coordinates);
on an interrupt the parent drops the inputs not started yet and sends SIGTERM
to its workers, which abandon the input at hand — the writers' temporary files
are removed on the way out — and exit. What was written is complete; the
interrupted inputs have no files, or (killed between two renames) some of
theirs, which ``--skip-existing`` redoes.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from convcli.errors import ParameterError, SchedulerLostError
from convcli.imageio.zarrin import is_zarr
from convcli.parallel import cpu_count
from convcli.pipeline import Pipeline
from convcli.run import cluster
from convcli.run.jobs import (
    Job,
    Outcome,
    OutputOptions,
    make_job,
    process_one,
)
from convcli.vocab import INPUT_EXTENSIONS, Format

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor


OnOutcome = Callable[[Outcome], None]

#: Start method of local worker processes. ``forkserver`` costs ~0.3 s once per
#: run over ``fork``, but is safe with threads in the parent (Rich's refresh
#: thread, an embedding application's) and is Python 3.14's default on Linux.
START_METHOD = "forkserver"
#: Modules the fork server imports once, so every worker starts warm.
_PRELOAD = ["convcli.run.jobs", "convcli.imageio", "convcli.run.records", "convcli.run.batch"]
#: Jobs queued per worker beyond the one it is running (bounded submission).
_QUEUE_PER_WORKER = 2


# --------------------------------------------------------------------------- inputs


def find_inputs(
    inputs: Sequence[str],
    *,
    recursive: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip: Sequence[str] = (),
) -> list[tuple[str, str | None]]:
    """``(path, root)`` for every input: files as given, folders searched by extension.

    A Zarr folder (``*.zarr``, :func:`~convcli.imageio.zarrin.is_zarr`) is one
    image, named or found in a folder, never searched itself.

    ``root`` is the folder an image was found in (None for inputs named directly),
    so its sub-folders can be mirrored under the output folder. Hidden files and
    folders are skipped; symlinked folders are followed once (loops are skipped).
    ``include`` / ``exclude`` globs match the path relative to the folder
    (``sub/*.png``) or the file name (``*.png``); they filter folder searches only.
    A file reached twice (named twice, or by a folder and by name) is kept once.
    A folder search never enters a folder of ``skip`` nor takes a file of it
    (the run's output folder and manifest), unless that folder is the one searched.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in ("a.png", "b.jpg", ".hidden.png", "notes.txt", "sub/c.png"):
    ...         Path(d, name).parent.mkdir(exist_ok=True)
    ...         Path(d, name).touch()
    ...     [os.path.relpath(p, d) for p, _ in find_inputs([d], recursive=True)]
    ['a.png', 'b.jpg', 'sub/c.png']
    """
    found: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    avoid = {os.path.realpath(p) for p in skip}
    for item in inputs:
        if item == "-" or not os.path.isdir(item) or is_zarr(item):  # a Zarr folder is one image
            pairs: Iterable[tuple[str, str | None]] = [(item, None)]
        else:
            walk = _walk(item, recursive, include, exclude, avoid - {os.path.realpath(item)})
            pairs = ((p, item) for p in walk)
        for path, root in pairs:
            key = path if path == "-" else os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append((path, root))
    return found


def _walk(
    root: str,
    recursive: bool,
    include: Sequence[str],
    exclude: Sequence[str],
    avoid: Collection[str] = (),
) -> Iterable[str]:
    seen: set[tuple[int, int]] = set()
    avoid_names = {os.path.basename(p) for p in avoid}
    for folder, dirs, files in os.walk(root, followlinks=True):
        if avoid and os.path.realpath(folder) in avoid:
            dirs[:] = []
            continue
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # a symlink back to a folder already searched
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        zarrs = [d for d in dirs if not d.startswith(".") and is_zarr(os.path.join(folder, d))]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in zarrs)
        if not recursive:
            dirs[:] = []
        for name in sorted([*files, *zarrs]):
            if name.startswith(".") or (
                Path(name).suffix.lower() not in INPUT_EXTENSIONS and name not in zarrs
            ):
                continue
            rel = os.path.relpath(os.path.join(folder, name), root)
            if include and not any(
                fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in include
            ):
                continue
            if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in exclude):
                continue
            if name in avoid_names and os.path.realpath(os.path.join(folder, name)) in avoid:
                continue
            yield os.path.join(folder, name)


def make_jobs(found: Sequence[tuple[str, str | None]], out: str) -> list[Job]:
    """One :class:`Job` per input; folder inputs mirror their sub-folders under ``out``.

    Raises :class:`ParameterError` when ``out`` names one file but there are
    several inputs, or when two inputs would write the same files (``a.png`` and
    ``a.jpg`` in one folder share the stem ``a``; ``a:b.png`` and ``a_b.png``
    share it once cleaned for a file name).
    """
    from convcli.imageio.write import safe_name
    from convcli.safety import printable

    single = len(found) == 1
    if not single and (out == "-" or Format.of_extension(Path(out).suffix) is not None):
        raise ParameterError(
            f"-o {out}: names one file, but there are {len(found)} inputs; give a folder"
        )
    jobs = [make_job(src, out, root=root, single=single) for src, root in found]
    first: dict[tuple[str, str], str] = {}
    for job in jobs:
        key = (os.path.normpath(job.out_dir), safe_name(job.stem))
        if key in first:
            raise ParameterError(
                f"{printable(first[key])} and {printable(job.source)} would write the same files "
                f"({printable(os.path.join(job.out_dir, key[1]))}.*); rename one or --exclude it"
            )
        first[key] = job.source
    return jobs


# --------------------------------------------------------------------------- running


def run_batch(
    pipeline: Pipeline,
    jobs: Sequence[Job],
    opts: OutputOptions,
    *,
    workers: int | None = 1,
    executor: str = "local",
    scheduler: str | None = None,
    on_outcome: OnOutcome | None = None,
) -> list[Outcome]:
    """Run every job; call ``on_outcome`` as each finishes. A failed input never stops the rest.

    ``workers``: processes for the local executor (None: the CPU count; 1: this
    process). ``executor="dask"`` runs on the cluster at ``scheduler`` instead.
    Returns the outcomes in job order. Interrupted (Ctrl-C, SIGTERM): raises
    ``KeyboardInterrupt`` once the workers are stopped.
    """
    emit = on_outcome or (lambda o: None)
    if executor not in ("local", "dask"):
        raise ParameterError(f"unknown executor {executor!r} (choose local or dask)")
    n = min(workers or cpu_count(), len(jobs))
    if executor == "local" and n <= 1:
        with _sigterm_interrupts():
            return _run_here(pipeline, jobs, opts, emit)
    # stdin is this process's: an image read from it is filtered here, first
    here = [i for i, job in enumerate(jobs) if job.source == "-"]
    away = [i for i, job in enumerate(jobs) if job.source != "-"]
    results: list[Outcome | None] = [None] * len(jobs)
    with _sigterm_interrupts():
        mine = _run_here(pipeline, [jobs[i] for i in here], opts, emit)
        for i, outcome in zip(here, mine, strict=True):
            results[i] = outcome
        rest = [jobs[i] for i in away]
        if executor == "dask":
            done = run_dask(pipeline, rest, opts, scheduler=scheduler, on_outcome=emit)
        else:
            done = _run_pool(pipeline, rest, opts, n, emit) if rest else []
    for i, outcome in zip(away, done, strict=True):
        results[i] = outcome
    return [o for o in results if o is not None]


def _guarded(pipeline: Pipeline, job: Job, opts: OutputOptions) -> Outcome:
    """:func:`process_one`; an unexpected exception (a bug) becomes this input's failure."""
    try:
        return process_one(pipeline, job, opts)
    except Exception as exc:  # noqa: BLE001 - one input's bug must not end the batch
        return _failed(job, f"internal error: {type(exc).__name__}: {exc}")


def _failed(job: Job, why: str) -> Outcome:
    return Outcome(job.source, "failed", error=f"{job.source}: {why}")


def _run_here(
    pipeline: Pipeline, jobs: Sequence[Job], opts: OutputOptions, emit: OnOutcome
) -> list[Outcome]:
    outcomes = []
    for job in jobs:
        outcome = _guarded(pipeline, job, opts)
        outcomes.append(outcome)
        emit(outcome)
    return outcomes


def _run_pool(
    pipeline: Pipeline, jobs: Sequence[Job], opts: OutputOptions, n: int, emit: OnOutcome
) -> list[Outcome]:
    """Jobs on ``n`` worker processes, at most ``n * (1 + _QUEUE_PER_WORKER)`` in flight.

    A worker that dies (the OOM killer, a crash in a decoder) breaks the pool:
    the inputs in flight then are retried one at a time in a new pool, and one
    that kills its worker while running alone is reported failed.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    results: list[Outcome | None] = [None] * len(jobs)
    todo = deque(range(len(jobs)))
    suspects: deque[int] = deque()  # in flight when a worker died
    window = n * (1 + _QUEUE_PER_WORKER)
    running: dict[Future[Outcome], int] = {}
    alone = False  # the job running is a suspect, alone in the pool
    since = time.time()
    pool = _new_pool(n)
    try:
        while todo or suspects or running:
            if suspects and not running:
                i = suspects.popleft()
                running[pool.submit(_work, pipeline, jobs[i], opts, since)] = i
                alone = True
            while not suspects and todo and len(running) < window:
                i = todo.popleft()
                running[pool.submit(_work, pipeline, jobs[i], opts)] = i
                alone = False
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                i = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    lost.append(i)
                    continue
                results[i] = outcome
                emit(outcome)
            if lost:
                lost.extend(running.values())
                running.clear()
                _stop(pool)
                pool = _new_pool(n)
                if alone and len(lost) == 1:
                    outcome = _failed(jobs[lost[0]], "its worker process died (out of memory?)")
                    results[lost[0]] = outcome
                    emit(outcome)
                else:
                    suspects.extend(sorted(lost))
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    return [o for o in results if o is not None]


def _new_pool(n: int) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)  # type: ignore[attr-defined]
    from convcli.run.lifeline import lifeline

    threads = max(1, cpu_count() // n)  # processes share the cores, not threads on top
    return ProcessPoolExecutor(
        max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(threads, *lifeline())
    )


def _stop(pool: ProcessPoolExecutor) -> None:
    """Drop queued jobs, SIGTERM the workers (they clean up and exit), reap them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1)


# --------------------------------------------------------------------------- workers

_busy = False


def _init_worker(threads: int = 1, lifeline: Any = None, parent: int = 0) -> None:
    """Worker start-up: the parent handles Ctrl-C; SIGTERM abandons the input at hand.

    ``threads`` caps the numeric core's thread pool in this process. With
    ``lifeline`` (see :mod:`convcli.run.lifeline`) the worker removes its temporary
    files and exits as soon as the process ``parent`` dies, even by ``kill -9``.
    """
    from convcli.parallel import set_num_threads

    set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if lifeline is not None:
        from convcli.run.lifeline import watch

        watch(lifeline, parent, lambda: _exit_clean(128 + signal.SIGKILL))


def _on_sigterm(signum: int, frame: Any) -> None:
    # One SIGTERM is enough: a second one (the pool terminates all workers once
    # one has died) must not interrupt the cleanup that the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _busy:
        raise KeyboardInterrupt  # unwinds through the writer, which removes its temp files
    _exit_clean(128 + signum)


def _exit_clean(code: int) -> NoReturn:
    """Leave the worker at once, after removing any temporary output file still pending."""
    from convcli.imageio.write import remove_pending_temps

    remove_pending_temps()
    os._exit(code)


def _work(pipeline: Pipeline, job: Job, opts: OutputOptions, since: float | None = None) -> Outcome:
    """What a worker process runs for one job.

    ``since``: this is a retry, after a pool broke at a time the first attempt
    may have written its files; it may overwrite them if every file of this
    input's name in its folder was written after ``since`` (the batch's start).
    """
    global _busy
    try:
        _busy = True
        if since is not None and not opts.force and _written_since(pipeline, job, since):
            opts = replace(opts, force=True)
        return _guarded(pipeline, job, opts)
    except KeyboardInterrupt:
        _exit_clean(128 + signal.SIGTERM)
    finally:
        _busy = False


def _written_since(pipeline: Pipeline, job: Job, since: float) -> bool:
    from convcli.imageio import safe_name
    from convcli.pipeline import output_name

    prefix = f"{safe_name(job.stem)}.{safe_name(output_name(pipeline.stages, pipeline.name))}."
    try:
        with os.scandir(job.out_dir) as entries:
            mine = [e for e in entries if e.name.startswith(prefix)]
            return all(e.stat().st_mtime >= since for e in mine)
    except OSError:
        return False


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises ``KeyboardInterrupt`` (main thread only), as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------- dask


def run_dask(
    pipeline: Pipeline,
    jobs: Sequence[Job],
    opts: OutputOptions,
    *,
    scheduler: str | None,
    on_outcome: OnOutcome | None = None,
    window: int | None = None,
) -> list[Outcome]:
    """Run the jobs on a Dask distributed cluster; outcomes in job order.

    Workers read and write the files themselves, so every path is made absolute
    (workers must see the same file system, e.g. shared storage mounted at the
    same place). Outcomes come back with the paths as given, so the manifest and
    the summary match a local run. At most ``window`` tasks are queued at once
    (default: 4 per worker thread, at least 64).

    distributed's own log messages are silenced while the run lasts. When the
    scheduler is lost mid-run, raises :class:`~convcli.errors.SchedulerLostError`
    holding an outcome for every job: those that finished, those whose files
    are complete on disk and carry ``opts.stamp`` (done, though the result
    never came back), and the rest (failed: not run).
    """
    emit = on_outcome or (lambda o: None)
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ParameterError(
            "--executor dask needs dask.distributed: pip install 'convcli[dask]'"
        ) from None
    with _quiet_distributed():
        return _run_dask(pipeline, jobs, opts, scheduler, emit, window, Client, as_completed)


def _run_dask(
    pipeline: Pipeline,
    jobs: Sequence[Job],
    opts: OutputOptions,
    scheduler: str | None,
    emit: OnOutcome,
    window: int | None,
    Client: Any,  # noqa: N803 - distributed's class, imported by the caller
    as_completed: Any,
) -> list[Outcome]:
    if not scheduler:
        raise ParameterError("--executor dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    try:  # a malformed address would otherwise leave a half-made client hanging at exit
        from distributed.comm.addressing import parse_address, parse_host_port

        protocol, location = parse_address(scheduler)
        if protocol in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location, default_port=8786)
    except ValueError as exc:
        raise ParameterError(f"--scheduler {scheduler}: not a scheduler address ({exc})") from None
    try:
        client = Client(scheduler, timeout=cluster.DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ParameterError(
            f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})"
        ) from None
    results: list[Outcome | None] = [None] * len(jobs)
    remote = [_absolute(job) for job in jobs]
    live: dict[Any, int] = {}  # future -> job index

    def submit(i: int) -> Any:
        fut = client.submit(_guarded, pipeline, remote[i], opts, pure=False)
        live[fut] = i
        return fut

    lost = False
    try:
        with _sigterm_interrupts():
            try:
                if window is None:
                    window = max(64, 4 * sum(client.nthreads().values()))
                todo = iter(range(len(jobs)))
                futures = as_completed(
                    [submit(i) for _, i in zip(range(window), todo, strict=False)],
                    loop=client.loop,
                )
                for fut in futures:
                    i = live[fut]
                    try:
                        outcome = _localise(fut.result(), jobs[i], remote[i])
                    except Exception as exc:  # noqa: BLE001 - a killed worker, a lost task
                        if _connection_lost(client, exc):
                            raise
                        outcome = _failed(jobs[i], f"dask task failed: {type(exc).__name__}: {exc}")
                    del live[fut]
                    fut.release()
                    results[i] = outcome
                    emit(outcome)
                    nxt = next(todo, None)
                    if nxt is not None:
                        futures.add(submit(nxt))
            except Exception as exc:
                if not _connection_lost(client, exc):
                    raise
                lost = True
    except BaseException:
        try:  # tasks already running finish (their writes are atomic); queued ones are dropped
            client.cancel(list(live), force=True)
        except Exception:  # noqa: BLE001, S110 - best effort on the way out
            pass
        raise
    finally:
        try:
            client.close(timeout=2 if lost else 10)
        except Exception:  # noqa: BLE001, S110 - the scheduler is gone already
            pass
    if lost:
        raise _scheduler_lost(pipeline, jobs, opts, scheduler, results, set(live.values()))
    return [o for o in results if o is not None]


def _connection_lost(client: Any, exc: BaseException) -> bool:
    """Whether ``exc`` (from a future or the client) means the scheduler is gone."""
    from concurrent.futures import CancelledError

    if isinstance(exc, CancelledError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and type(exc).__name__ == "CommClosedError":
        return True
    return getattr(client, "status", "running") not in ("running", "newly-created")


def _scheduler_lost(
    pipeline: Pipeline,
    jobs: Sequence[Job],
    opts: OutputOptions,
    scheduler: str | None,
    results: list[Outcome | None],
    in_flight: set[int],
) -> SchedulerLostError:
    """The error for a scheduler lost mid-run, with an outcome for every job.

    A job whose result never came back is done if every file it would write
    exists and carries this run's stamp (its task finished, the answer was
    lost). Workers finish the task at hand after the scheduler is gone, so
    the files of tasks in flight are waited for a little (three times the
    longest task seen, 1 to 30 s). Any other job failed (not run, or cut
    short: ``--skip-existing`` finishes it).
    """
    from convcli.run.jobs import planned_outputs

    plans: dict[int, list[Path]] = {}
    if opts.stamp is not None and not opts.dry_run:
        for i, outcome in enumerate(results):
            if outcome is None:
                try:
                    planned = planned_outputs(pipeline, jobs[i], opts)
                except Exception:  # noqa: BLE001 - cannot tell: counted as not run
                    planned = None
                if planned:
                    plans[i] = planned
    longest = max((o.seconds for o in results if o is not None), default=0.0)
    deadline = time.monotonic() + min(30.0, max(1.0, 3 * longest))
    while True:
        for i, planned in list(plans.items()):
            if all(opts.stamp.owns(p) for p in planned):  # type: ignore[union-attr]
                results[i] = Outcome(jobs[i].source, "done", [str(p) for p in planned])
                del plans[i]
        if not in_flight & plans.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    finished = sum(o is not None for o in results)
    outcomes = [
        o if o is not None else _failed(job, "not run: lost the Dask scheduler")
        for job, o in zip(jobs, results, strict=True)
    ]
    return SchedulerLostError(
        f"lost the Dask scheduler at {scheduler} after {finished} of {len(jobs)} inputs",
        outcomes,
    )


@contextmanager
def _quiet_distributed() -> Iterator[None]:
    """Silence distributed's (and its event loop's) log messages while a run lasts.

    A lost scheduler would otherwise print hundreds of lines of tracebacks;
    convcli reports what matters itself, in one line.
    """
    import logging

    prefixes = ("distributed", "tornado", "asyncio")
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in prefixes]
    loggers = [logging.getLogger(n) for n in dict.fromkeys([*prefixes, *names])]
    saved = [(lg, lg.disabled) for lg in loggers]
    drop = logging.Filter("convcli.nothing")  # passes no record of these loggers
    handlers = {h for lg in loggers for h in lg.handlers}
    for lg in loggers:
        lg.disabled = True
    for h in handlers:
        h.addFilter(drop)
    try:
        yield
    finally:
        for lg, disabled in saved:
            lg.disabled = disabled
        for h in handlers:
            h.removeFilter(drop)


def _absolute(job: Job) -> Job:
    return replace(
        job,
        source=job.source if job.source == "-" else os.path.abspath(job.source),
        out_dir=os.path.abspath(job.out_dir),
        out_file=None if job.out_file in (None, "-") else os.path.abspath(job.out_file),
    )


def _localise(outcome: Outcome, job: Job, remote: Job) -> Outcome:
    """An outcome computed on absolute paths, with the paths as the user gave them."""

    def back(path: str) -> str:
        for absolute, given in ((remote.out_dir, job.out_dir), (remote.source, job.source)):
            if path == absolute or path.startswith(absolute + os.sep):
                return given + path[len(absolute) :]
        return path

    outcome.input = job.source
    outcome.outputs = [back(p) for p in outcome.outputs]
    if outcome.error:
        outcome.error = outcome.error.replace(remote.source, job.source)
        outcome.error = outcome.error.replace(remote.out_dir + os.sep, job.out_dir + os.sep)
    if outcome.report:
        outcome.report = {**outcome.report, "input": job.source}
        if "outputs" in outcome.report:
            outcome.report["outputs"] = [back(p) for p in outcome.report["outputs"]]
    return outcome
