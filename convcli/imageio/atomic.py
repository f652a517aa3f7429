"""Owning output names: short temporary files, atomic claims, a run's stamp, stale-temp sweeps.

Every output is encoded to a temporary file in its folder, then *claimed*:
``os.link(temp, final)`` makes the finished file appear under its name only if
no file has that name yet (the kernel checks and creates in one step), so of
two runs writing the same name at once exactly one gets it and the other is
told the name exists. ``--force`` replaces instead (``os.replace``).

Temporary names are short and fixed-length, ``.convcli-<host>-<pid>-<random>.tmp``
(38 bytes), so an output name of up to 255 bytes always has room beside it,
and a temp left by a killed process says who made it: :func:`sweep_stale_temps`
removes the ones whose process is gone.

A :class:`RunStamp` marks the files one run writes (in the sub-millisecond
digits of their modification time), so a task that is run again — a Dask task
whose worker died after it wrote its files, a local retry — knows those files
for its own and may replace them, while a file another run wrote is never taken.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: How old (seconds) a temporary file made on another machine must be before a sweep removes it.
FOREIGN_TEMP_AGE = 3600.0

_TEMP = re.compile(r"^\.convcli-([0-9a-f]{8})-(\d{1,10})-([0-9a-f]{8})\.tmp$")
# the pattern of earlier versions: .<output name>.<8 hex>.tmp
_OLD_TEMP = re.compile(r"^\..+\.(png|tif|tiff|npy|npz)\.[0-9a-f]{8}\.tmp$")


def _machine_tag() -> str:
    """8 hex digits naming this host and PID namespace (pids mean nothing elsewhere)."""
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = ""
    return hashlib.sha1(f"{socket.gethostname()}/{ns}".encode()).hexdigest()[:8]


MACHINE = _machine_tag()


def temp_name(folder: str | os.PathLike[str]) -> str:
    """A fresh temporary file name in ``folder`` (not created).

    >>> name = os.path.basename(temp_name("out"))
    >>> len(name), temp_owner(name) == (MACHINE, os.getpid())
    (38, True)
    """
    return os.path.join(folder, f".convcli-{MACHINE}-{os.getpid():07d}-{secrets.token_hex(4)}.tmp")


def temp_owner(name: str) -> tuple[str, int] | None:
    """``(machine tag, pid)`` of one of this tool's temporary file names, else None.

    >>> temp_owner(".convcli-0123abcd-0004242-89abcdef.tmp")
    ('0123abcd', 4242)
    >>> temp_owner("photo.png") is None
    True
    """
    m = _TEMP.match(name)
    return (m.group(1), int(m.group(2))) if m else None


# --------------------------------------------------------------------------- claiming

#: errno values of file systems without hard links (FAT, some network mounts).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}


def claim(tmp: str, final: str | os.PathLike[str], *, replace: bool = False) -> None:
    """Give the finished temporary file ``tmp`` its final name; ``tmp`` is gone after.

    Without ``replace`` the name is taken only if nothing has it: raises
    :class:`FileExistsError` otherwise (``tmp`` is then left for the caller to
    remove). With ``replace`` an existing file is replaced atomically. On a
    file system without hard links, falls back to check-then-rename.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for text in ("first", "second"):
    ...         t = temp_name(d)
    ...         _ = Path(t).write_text(text)
    ...         try:
    ...             claim(t, os.path.join(d, "out.txt"))
    ...         except FileExistsError:
    ...             os.unlink(t)
    ...     Path(d, "out.txt").read_text(), sorted(os.listdir(d))
    ('first', ['out.txt'])
    """
    if replace:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


# --------------------------------------------------------------------------- run stamp


@dataclass(frozen=True)
class RunStamp:
    """A run's mark on the files it writes, kept in their modification time.

    ``token`` (1..999999) is written into the sub-millisecond digits of each
    file's mtime (it moves the time by less than a millisecond); ``since_ns``
    is when the run started. A file is this run's own when its mtime carries
    the token and is not older than the run. On a file system that keeps
    times to the second or coarser the mark is lost and no file is recognised
    (a task run twice then reports its files as existing, as before).
    """

    token: int
    since_ns: int

    @classmethod
    def new(cls) -> RunStamp:
        return cls(1 + secrets.randbelow(999_999), time.time_ns())

    def mark(self, path: str | os.PathLike[str]) -> None:
        """Set ``path``'s mtime to now, carrying the token."""
        now = time.time_ns()
        mtime = now - now % 1_000_000 + self.token
        os.utime(path, ns=(now, mtime))

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is a file this run wrote (False when it does not exist).

        >>> import tempfile
        >>> stamp, other = RunStamp(4242, 0), RunStamp(77, 0)
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     stamp.mark(f.name)
        ...     stamp.owns(f.name), other.owns(f.name)
        (True, False)
        """
        try:
            st = os.lstat(path)
        except OSError:
            return False
        mtime = st.st_mtime_ns
        return mtime % 1_000_000 == self.token and mtime >= self.since_ns - 1_000_000


# --------------------------------------------------------------------------- sweeping


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie does not count)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _started_after(pid: int, when: float) -> bool:
    """Whether process ``pid`` started after the time ``when`` (its pid was reused); Linux only."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK") > when + 1.0
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def is_stale(name: str, mtime: float, *, now: float | None = None) -> bool:
    """Whether a file called ``name`` (modified at ``mtime``) is a temp left by a dead process.

    One of this tool's temporary files is stale when it was made on this
    machine by a process that no longer runs (or whose pid now belongs to a
    younger process), or — made elsewhere, where its process cannot be asked —
    when it is older than :data:`FOREIGN_TEMP_AGE`. Temporary files of earlier
    versions (``.<name>.<8 hex>.tmp``) carry no owner and follow the age rule.

    >>> is_stale(".convcli-%s-%07d-0123abcd.tmp" % (MACHINE, os.getpid()), time.time())
    False
    >>> is_stale("notes.tmp", 0.0), is_stale(".convcli-ffffffff-0000001-0123abcd.tmp", 0.0)
    (False, True)
    """
    now = time.time() if now is None else now
    owner = temp_owner(name)
    if owner is None:
        return bool(_OLD_TEMP.match(name)) and now - mtime > FOREIGN_TEMP_AGE
    machine, pid = owner
    if machine != MACHINE:
        return now - mtime > FOREIGN_TEMP_AGE
    return not pid_alive(pid) or _started_after(pid, mtime)


def sweep_stale_temps(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Remove stale temporary files (see :func:`is_stale`) directly in each of ``folders``.

    Only this tool's temporary-file patterns are touched, only in the folders
    given (not below them); folders that do not exist are skipped. Returns the
    files removed.
    """
    removed: list[Path] = []
    now = time.time()
    for folder in dict.fromkeys(os.fspath(f) for f in folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(".") or not entry.name.endswith(".tmp"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if is_stale(entry.name, entry.stat(follow_symlinks=False).st_mtime, now=now):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:
                continue  # gone already, or not ours to remove
    return removed


__all__ = [
    "FOREIGN_TEMP_AGE",
    "MACHINE",
    "RunStamp",
    "claim",
    "is_stale",
    "pid_alive",
    "sweep_stale_temps",
    "temp_name",
    "temp_owner",
]
