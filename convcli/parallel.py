"""Both cores for numeric work that releases the GIL (OpenCV, numpy ufuncs, BLAS).

The numeric core splits big arrays into independent tasks (channel × row
band) and runs them on a small shared thread pool. ``CONVCLI_THREADS`` or
:func:`set_num_threads` caps it; batch worker processes set 1 so that
processes, not threads, share the cores.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: Below this many output values per call, threads cost more than they give.
MIN_PARALLEL_VALUES = 1 << 18

_threads: int | None = None
_pool: ThreadPoolExecutor | None = None


def num_threads() -> int:
    """Threads the core may use: ``set_num_threads``, else ``$CONVCLI_THREADS``, else the CPUs."""
    if _threads is not None:
        return _threads
    env = os.environ.get("CONVCLI_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return cpu_count()


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Cap the threads (None: back to the default)."""
    global _threads, _pool
    _threads = None if n is None else max(1, int(n))
    if _pool is not None:
        _pool.shutdown(wait=False)
        _pool = None


def run_tasks(fn: Callable[[Any], T], tasks: Sequence[Any], *, values: int) -> list[T]:
    """``[fn(t) for t in tasks]``, on the thread pool when ``values`` is large enough."""
    global _pool
    n = num_threads()
    if n <= 1 or len(tasks) <= 1 or values < MIN_PARALLEL_VALUES:
        return [fn(t) for t in tasks]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="convcli")
    with _opencv_unthreaded():
        return list(_pool.map(fn, tasks))


@contextmanager
def _opencv_unthreaded() -> Iterator[None]:
    """OpenCV's own threads off while the pool's tasks run (restored afterwards).

    The pool already splits the work over the cores; OpenCV splitting each task
    again oversubscribes them. Measured on 2 cores, a 7×7 ``filter2D`` over
    3×2048² float32 channels took 37 ms with both, 22 ms with the pool's alone.
    """
    cv2 = sys.modules.get("cv2")
    if cv2 is None or not hasattr(cv2, "setNumThreads"):
        yield
        return
    with _cv2_lock:
        before = cv2.getNumThreads()
        cv2.setNumThreads(1)
    try:
        yield
    finally:
        with _cv2_lock:
            cv2.setNumThreads(before)


_cv2_lock = threading.Lock()


def ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each made on a thread of its own while the caller uses the one before.

    A stream of tiles read and computed there, pictures encoded here: with the
    GIL released by both (deflate, OpenCV, numpy), the two halves share the
    cores. At most two items are alive at once: the one the caller holds and the
    next, being made (the next after that starts when the caller asks for it).
    An exception of the producer is raised here, in order; when the caller stops
    early (an error, Ctrl-C, closing the generator) the producer stops after the
    item it is making, and this waits for that.
    """
    done = object()
    box: queue.Queue[Any] = queue.Queue()
    slots = threading.Semaphore(2)  # the caller's item and the one being made
    stop = threading.Event()

    def produce() -> None:
        try:
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(items, done)
                box.put((item, None))
                if item is done:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put((done, exc))

    thread = threading.Thread(target=produce, name="convcli-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = box.get()
            if error is not None:
                raise error
            if item is done:
                break
            yield item
            slots.release()  # the caller is done with this one: make the one after next
    finally:
        stop.set()
        # wait for the item being made: it may read from a file (a memory map) that
        # the caller closes next, which must not happen under the producer's feet
        thread.join()


#: Scratch buffers up to this size are kept per thread and reused across calls
#: (a fresh large array costs a page fault per 4 KiB on first touch).
SCRATCH_KEEP_BYTES = 32 << 20
_local = threading.local()


def scratch(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A temporary array for this thread; its contents are garbage. Don't keep it."""
    dt = np.dtype(dtype)
    size = int(np.prod(shape)) * dt.itemsize
    if size > SCRATCH_KEEP_BYTES:
        return np.empty(shape, dtype=dt)
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < size:
        buf = np.empty(max(size, 1 << 20), dtype=np.uint8)
        _local.buf = buf
    return buf[:size].view(dt).reshape(shape)


def bands(n_rows: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n_rows)`` into at most ``parts`` contiguous, near-equal bands."""
    parts = max(1, min(parts, n_rows))
    edges = [round(i * n_rows / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]
