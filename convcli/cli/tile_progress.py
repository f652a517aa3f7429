"""Progress of one long image computed in tiles: a Rich bar on a terminal, plain lines otherwise.

Nothing is shown until the first tile is done, so an image that runs whole
(the usual, small case) prints nothing. Plain lines read
``big.png: writing rows 4096/16384 (25%)`` about every tenth of the image.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Rich and the tile engine load only when a tiled run reports progress
    from rich.console import Console

    from convcli.pipeline.tiles import TileProgress

_PHASES = {"scan": "statistics", "write": "writing", "compute": "computing"}


class TileProgressBar:
    """A callback for :class:`~convcli.pipeline.tiles.TileProgress`, as a context manager."""

    def __init__(
        self, label: str, *, console: Console | None = None, enabled: bool = True,
        plain: bool | None = None,
    ) -> None:  # fmt: skip
        self.label = label
        self.enabled = enabled
        self._console = console
        self._plain = plain
        self._bar: Any = None
        self._task: Any = None
        self._phase = ""
        self._next_pct = 0
        self.updates = 0

    def __enter__(self) -> TileProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __call__(self, p: TileProgress) -> None:
        self.updates += 1
        if not self.enabled:
            return
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        if self._plain is None:
            self._plain = not self._console.is_terminal
        what = _PHASES.get(p.phase, p.phase)
        if self._plain:
            pct = 100 * p.rows_done // max(p.rows_total, 1)
            if p.phase != self._phase:
                self._phase, self._next_pct = p.phase, 0
            if pct >= self._next_pct:
                print(
                    f"{self.label}: {what} rows {p.rows_done}/{p.rows_total} ({pct}%),"
                    f" tile {p.tiles_done}/{p.tiles_total}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
                self._next_pct = pct // 10 * 10 + 10
            return
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[progress.description]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self._console, transient=True,
            )  # fmt: skip
            self._bar.start()
        if p.phase != self._phase or self._task is None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(f"{self.label} {what}", total=p.rows_total)
            self._phase = p.phase
        self._bar.update(self._task, completed=p.rows_done)
