"""Worker processes that end when the process that started them dies.

A local batch runs its workers through multiprocessing's fork server, so a
worker's parent is the fork server, not the convcli process; and each worker
holds the write end of its own job queue, so it never sees end-of-file there.
When the convcli process is killed outright (``kill -9``, the OOM killer),
nothing would tell the workers: they, the fork server and the resource
tracker would wait forever.

The lifeline is a pipe whose only write end stays in the convcli process.
Each worker gets the read end and watches it from a daemon thread: the kernel
closes the write end when its process dies, however it dies, the read end
reports end-of-file, and the worker removes its temporary files and exits.
The fork server and the resource tracker then see their own pipes close and
exit too. As a second line, the thread checks every second that the convcli
process still exists (and is not a zombie).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_lifeline: tuple[Connection, Connection, int] | None = None


def lifeline() -> tuple[Connection, int]:
    """``(read end, pid)`` to hand to worker processes; made once per process.

    The write end never leaves this process (it is not inheritable, and only
    the read end is passed on), so its closing means this process has died.
    """
    global _lifeline
    import multiprocessing

    if _lifeline is None or _lifeline[2] != os.getpid():  # a fork of ours needs its own
        reader, writer = multiprocessing.Pipe(duplex=False)
        _lifeline = (reader, writer, os.getpid())
    return _lifeline[0], _lifeline[2]


def _alive(pid: int) -> bool:
    from convcli.imageio.atomic import pid_alive

    return pid_alive(pid)


def watch(reader: Connection, pid: int, on_death: Callable[[], Any], *, every: float = 1.0) -> None:
    """In a daemon thread: call ``on_death()`` once ``pid`` (the holder of the write end) is gone.

    ``on_death`` should not return (it exits the process).
    """

    def run() -> None:
        while True:
            try:
                if reader.poll(every):  # readable: end-of-file (nothing is ever sent)
                    break
            except (OSError, EOFError):
                break
            if not _alive(pid):
                break
        on_death()

    threading.Thread(target=run, name="convcli-lifeline", daemon=True).start()


__all__ = ["lifeline", "watch"]
