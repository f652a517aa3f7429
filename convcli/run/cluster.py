"""Reaching a Dask cluster: one timeout and one way to connect, for batches and tiled runs."""

from __future__ import annotations

from typing import Any

from convcli.errors import ParameterError

#: Seconds a Dask client waits for the scheduler.
DASK_CONNECT_TIMEOUT = 10


def connect(scheduler: str) -> Any:
    """A client of the Dask scheduler at ``scheduler`` (ParameterError when unreachable)."""
    try:
        from distributed import Client
    except ImportError:
        raise ParameterError(
            "--executor dask needs dask.distributed: pip install 'convcli[dask]'"
        ) from None
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ParameterError(
            f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})"
        ) from None
