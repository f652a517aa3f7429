"""Progress of a batch on stderr: a Rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from convcli.run.jobs import Outcome


class BatchProgress:
    """Progress on stderr: a Rich bar (count, rate, ETA) on a terminal, else plain lines.

    Plain lines read ``[12/200] photo.png done 0.05 s``: one per input up to
    ``plain_every`` inputs, then about every hundredth (and every failure).
    ``enabled=False`` (``-q``) shows nothing.
    """

    def __init__(
        self,
        total: int,
        *,
        console: Console | None = None,
        enabled: bool = True,
        plain: bool | None = None,
        plain_every: int = 200,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.count = 0
        self._console = console
        self._plain = plain
        self._every = 1 if total <= plain_every else max(1, total // 100)
        self._bar: Any = None
        self._task: Any = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> BatchProgress:
        self._t0 = time.perf_counter()
        if not self.enabled:
            return self
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        if self._plain is None:
            self._plain = not self._console.is_terminal
        if not self._plain:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _rate_column(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._task = self._bar.add_task("images", total=self.total)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def advance(self, outcome: Outcome) -> None:
        """Count one finished input."""
        self.count += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.advance(self._task)
            return
        if (
            self._every == 1
            or self.count % self._every == 0
            or self.count == self.total
            or outcome.status == "failed"
        ):
            from convcli.safety import printable

            width = len(str(self.total))
            print(
                f"[{self.count:>{width}}/{self.total}] {printable(outcome.input)} {outcome.status}"
                f" {outcome.seconds:.2f} s",
                file=sys.stderr,
                flush=True,
            )


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- img/s" if speed is None else f"{speed:.1f} img/s")

    return RateColumn()
