"""What the two YAML readers (kernel files, pipeline files) share: tags, lines, values, hints.

Both readers walk ``yaml.compose`` nodes, so every error can name its line, and
both read their scalars with :class:`NodeReader`, so a value is spelled the same
way in a kernel file and in a pipeline file.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import yaml

from convcli.errors import KernelError, ParameterError
from convcli.vocab import Word, parse_activation

W = TypeVar("W", bound=Word)

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


def is_null(node: yaml.Node) -> bool:
    """``key:`` with nothing after it, ``~`` or ``null``."""
    return isinstance(node, yaml.ScalarNode) and (node.tag == TAG_NULL or node.value == "")


def _shown(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"


class NodeReader:
    """Scalar readers shared by the kernel and pipeline readers.

    Subclasses say how an error is made (:meth:`error`: with the file, line and
    context they know) and how a node's value is built (:meth:`construct`).
    """

    def error(self, message: str, node: yaml.Node | None = None) -> KernelError:
        raise NotImplementedError

    def construct(self, node: yaml.Node) -> Any:
        return construct(node)

    def text(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or is_null(node):
            got = "nothing" if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            raise self.error(f"{what} must be text, got {got}", node)
        return str(node.value)

    def word(self, node: yaml.Node, what: str, words: type[W]) -> W:
        """A word of a :mod:`convcli.vocab` set, with its accepted spellings."""
        try:
            return words.parse(self.text(node, what), what=what)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None

    def boolean(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_BOOL:
            raise self.error(f"{what} must be true or false, got {_shown(node)}", node)
        return bool(self.construct(node))

    def number(self, node: yaml.Node, what: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (TAG_INT, TAG_FLOAT):
            raise self.error(f"{what} must be a number, got {_shown(node)}", node)
        value = float(self.construct(node))
        if not math.isfinite(value):
            raise self.error(f"{what} must be a finite number, got {node.value}", node)
        return value

    def whole(self, node: yaml.Node, what: str, *, minimum: int) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != TAG_INT:
            raise self.error(f"{what} must be a whole number, got {_shown(node)}", node)
        value = int(self.construct(node))
        if value < minimum:
            raise self.error(f"{what} must be >= {minimum}, got {value}", node)
        return value

    def bias(self, node: yaml.Node, what: str = "bias") -> float | tuple[float, ...]:
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise self.error(f"{what} is an empty list", node)
            return tuple(self.number(n, f"{what} item {i + 1}") for i, n in enumerate(node.value))
        return self.number(node, what)

    def plain(self, node: yaml.Node, what: str) -> Any:
        """A scalar or a flat list of scalars, as Python values (lists become tuples)."""
        if isinstance(node, yaml.SequenceNode):
            if any(not isinstance(n, yaml.ScalarNode) for n in node.value):
                raise self.error(f"{what} must be a number or a flat list of numbers", node)
            return tuple(self.construct(n) for n in node.value)
        if isinstance(node, yaml.MappingNode):
            raise self.error(f"{what} must be a number or a list, got a mapping", node)
        value = self.construct(node)
        if value is None:
            raise self.error(f"{what} has no value", node)
        if isinstance(value, float) and not value.is_integer():
            raise self.error(f"{what} must hold whole numbers, got {value}", node)
        return int(value) if isinstance(value, float) else value

    def pair(self, node: yaml.Node, what: str) -> tuple[int, int]:
        from convcli.shapes import as_pair

        value = self.plain(node, what)
        try:
            return as_pair(value, what)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None

    def padding(self, node: yaml.Node, *, conv: bool = True) -> Any:
        """``valid``/``same``/``full`` or 1, 2 or 4 whole numbers (``full`` for conv only)."""
        from convcli.shapes import parse_padding

        value = self.plain(node, "padding")
        try:
            spec = parse_padding(value)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None
        if spec == "full" and not conv:
            raise self.error("pool padding must be P, PH,PW, valid or same; got 'full'", node)
        return spec

    def activation(self, node: yaml.Node) -> str:
        """An activation with its spelling checked (``leaky_relu:0.2`` → ``leaky-relu:0.2``)."""
        if is_null(node):
            return "none"
        text = self.text(node, "activation")
        try:
            act, slope = parse_activation(text)
        except ParameterError as exc:
            raise self.error(str(exc), node) from None
        return f"{act.value}:{slope:g}" if ":" in text else act.value
