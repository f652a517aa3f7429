"""What the two YAML readers (kernel files, pipeline files) share: tags, lines, values, hints.

Both readers walk ``yaml.compose`` nodes, so every error can name its line.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import yaml

from convcli.errors import KernelError

TAG_BOOL = "tag:yaml.org,2002:bool"
TAG_INT = "tag:yaml.org,2002:int"
TAG_FLOAT = "tag:yaml.org,2002:float"
TAG_NULL = "tag:yaml.org,2002:null"


def line_of(node: yaml.Node | None) -> int | None:
    """1-based line where ``node`` starts (None without a node)."""
    return None if node is None else node.start_mark.line + 1


def construct(node: yaml.Node, error: type[KernelError] = KernelError) -> Any:
    """The Python value of a node; a value YAML cannot build (``!!int abc``, ``!!foo``)
    raises ``error`` at its line (the caller fills in the file)."""
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(
            f"cannot read this value: {' '.join(problem.split())}", line=line_of(node)
        ) from None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""``.

    >>> did_you_mean("gausian", ["gaussian", "box"])
    " (did you mean 'gaussian'?)"
    """
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
