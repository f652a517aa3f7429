"""Typed errors and exit codes.

The library raises these; only :mod:`convcli.cli` turns them into exit codes.
Every parameter error is also a :class:`ValueError`, so library users can catch
the builtin type.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes (the README lists them)."""

    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    INTERNAL = 70  # a bug: "internal error", see --traceback
    INTERRUPTED = 130


class ConvcliError(Exception):
    """Base class of every error convcli raises on purpose.

    ``exit_code`` is what the command line exits with when this error ends a run.
    """

    exit_code: ExitCode = ExitCode.USAGE


class ParameterError(ConvcliError, ValueError):
    """A bad argument to a numeric function or a bad option value."""


class ShapeError(ParameterError):
    """Shapes that do not fit: a kernel larger than the padded input, c_in mismatch, ..."""


class SizeLimitError(ShapeError):
    """Sizes too large to compute: an array over ``--max-output-pixels``, or past any machine."""


class KernelError(ConvcliError, ValueError):
    """A bad kernel: unknown name, bad built-in parameter, or a broken YAML file.

    ``file`` and ``line`` (1-based) locate the problem when it comes from a file.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class PipelineError(KernelError):
    """A bad pipeline file (same file:line form as kernel errors)."""


class ImageError(ConvcliError):
    """An input image that cannot be read or processed (one input fails, the run goes on)."""

    exit_code = ExitCode.SOME_FAILED


class SchedulerLostError(ConvcliError):
    """The Dask scheduler went away mid-run. ``outcomes`` holds one outcome per input:
    the finished ones, and the rest marked failed (``--skip-existing`` finishes them)."""

    exit_code = ExitCode.SOME_FAILED

    def __init__(self, message: str, outcomes: list[Any]):
        super().__init__(message)
        self.outcomes = outcomes


class OutputError(ConvcliError):
    """An output that cannot or must not be written (exists, is an input, disk full, ...)."""

    exit_code = ExitCode.SOME_FAILED
