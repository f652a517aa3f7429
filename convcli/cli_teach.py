"""``convcli run``, ``convcli shape`` and ``convcli explain`` (registered on the main app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the pipeline and teaching commands to ``app``."""
