"""Commands declared as annotated functions, built into click commands.

A command is a plain function; each parameter says what it is on the command
line with ``Annotated[T, Option(...)]`` or ``Annotated[T, Argument(...)]`` (the
declarations live once, in :mod:`convcli.cli.options`), and a parameter typed
:class:`click.Context` receives the context. :func:`command` reads the signature
and builds the :class:`click.Command`:

- ``bool`` is a flag (``"--x/--no-x"`` in the declaration makes a switch);
- ``list[T]`` is a repeatable option, or an argument taking one or more values;
- ``int``, ``float``, ``str`` and ``Path`` are click's own types; ``parser=``
  turns the text into anything, a :class:`~convcli.errors.ConvcliError` it raises
  becoming a usage error with convcli's message;
- the function's default is the option's default; no default makes it required.

Help reads as click's, with an ``Arguments:`` section, and an option that takes
one value and is given twice is a usage error, never a silent last-one-wins.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import click

F = TypeVar("F", bound=Callable[..., Any])


class Option:
    """An option's declaration: its names (default ``--param-name``) and settings."""

    def __init__(
        self,
        *decls: str,
        parser: Callable[[str], Any] | None = None,
        metavar: str | None = None,
        help: str | None = None,  # noqa: A002 - click's name
        show_default: bool = False,
        exists: bool = False,
        file_okay: bool = True,
        dir_okay: bool = True,
    ) -> None:
        self.decls = decls
        self.parser = parser
        self.metavar = metavar
        self.help = help
        self.show_default = show_default
        self.exists = exists
        self.file_okay = file_okay
        self.dir_okay = dir_okay


class Argument(Option):
    """A positional argument's declaration (its name shows as ``metavar``)."""


#: What to say when a single-valued option is repeated, by (command, parameter).
REPEAT_HINTS = {
    ("shape", "kernel_size"): "for several layers give one --layer spec each",
    ("shape", "out_channels"): "for several layers give one --layer spec each",
}


class Command(click.Command):
    """A click command with an ``Arguments:`` help section that refuses repeated options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, _Argument):
                args.append(param.help_record())
            elif record is not None:
                opts.append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)

    def format_arguments(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Nothing: the arguments have their section in :meth:`format_options`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            _refuse_repeats(self, ctx, args)
        return super().parse_args(ctx, args)


class _Argument(click.Argument):
    def __init__(self, *args: Any, help: str = "", **kwargs: Any) -> None:  # noqa: A002
        super().__init__(*args, **kwargs)
        self.help = help

    def help_record(self) -> tuple[str, str]:
        extra = "  [required]" if self.required else ""
        return self._name(), f"{self.help}{extra}"

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        usage = self._name() if self.required else f"[{self._name()}]"
        return [usage + ("..." if self.nargs != 1 else "")]

    def _name(self) -> str:
        return self.metavar or (self.name or "arg").upper()


class _Parsed(click.ParamType):
    """Text through a convcli parser; its error is the usage error's message."""

    def __init__(self, parse: Callable[[str], Any], name: str) -> None:
        self.parse = parse
        self.name = name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from convcli.errors import ConvcliError

        if not isinstance(value, str):  # a default that is already a value
            return value
        try:
            return self.parse(value)
        except ConvcliError as exc:
            self.fail(str(exc), param, ctx)


def command(fn: Callable[..., Any], name: str, short_help: str | None = None) -> Command:
    """The click command of ``fn`` (see the module docstring)."""
    sig = inspect.signature(fn, eval_str=True)
    params: list[click.Parameter] = []
    context_name = None
    defaults: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.annotation is click.Context:
            context_name = p.name
            continue
        params.append(_parameter(p))
        defaults[p.name] = None if p.default is inspect.Parameter.empty else p.default

    def callback(**values: Any) -> Any:
        for key, value in values.items():
            if isinstance(value, tuple) and _is_list(sig.parameters[key].annotation):
                values[key] = list(value) if value else defaults[key]
        if context_name is not None:
            values[context_name] = click.get_current_context()
        return fn(**values)

    return Command(name, callback=callback, params=params, help=fn.__doc__, short_help=short_help)


class Interrupted(BaseException):
    """Ctrl-C, carried past click's own handler (which would print a blank line first)."""


class Group(click.Group):
    """A group whose help lists its commands in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None


def group(name: str | None, help: str, **settings: Any) -> Group:  # noqa: A002
    """A group of commands; run without a command, it prints its help."""
    return Group(name, help=help, no_args_is_help=True, **settings)


def subcommand(parent: Group, name: str, short_help: str) -> Callable[[F], F]:
    """Decorator: add the function as command ``name`` of ``parent``."""

    def add(fn: F) -> F:
        parent.add_command(command(fn, name, short_help))
        return fn

    return add


def _parameter(p: inspect.Parameter) -> click.Parameter:
    base, spec = p.annotation, None
    if get_origin(base) is Annotated:
        base, *extras = get_args(base)
        spec = next((e for e in extras if isinstance(e, Option)), None)
    if spec is None:
        raise TypeError(f"parameter {p.name!r} has no Option or Argument declaration")
    required = p.default is inspect.Parameter.empty
    many = _is_list(base)
    kind = _type(_element(base), spec, p.name)
    # a required parameter has no default at all: click then reports it missing
    default: dict[str, Any] = {}
    if not required:
        default["default"] = () if many and p.default is None else p.default
    if isinstance(spec, Argument):
        return _Argument(
            [p.name], type=kind, required=required, nargs=-1 if many else 1,
            metavar=spec.metavar, help=spec.help or "", **default,
        )  # fmt: skip
    decls = [*(spec.decls or ("--" + p.name.rstrip("_").replace("_", "-"),)), p.name]
    flag = _element(base) is bool
    return click.Option(
        decls, type=None if flag else kind, is_flag=flag or None, multiple=many,
        required=required, metavar=spec.metavar, help=spec.help,
        show_default=spec.show_default, **default,
    )  # fmt: skip


def _type(t: Any, spec: Option, name: str) -> click.ParamType | None:
    if spec.parser is not None:
        return _Parsed(spec.parser, getattr(spec.parser, "__name__", name))
    if t is Path:
        return click.Path(
            exists=spec.exists, file_okay=spec.file_okay, dir_okay=spec.dir_okay, path_type=Path
        )
    simple: dict[Any, click.ParamType] = {int: click.INT, float: click.FLOAT, bool: click.BOOL}
    return simple.get(t, click.STRING)


def _optional(t: Any) -> Any:
    """``X`` of ``X | None``."""
    if get_origin(t) in (Union, types.UnionType):
        rest = [a for a in get_args(t) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return t


def _is_list(t: Any) -> bool:
    t = _optional(get_args(t)[0] if get_origin(t) is Annotated else t)
    return get_origin(t) is list


def _element(t: Any) -> Any:
    t = _optional(t)
    return get_args(t)[0] if get_origin(t) is list else t


def _refuse_repeats(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    """Fail when an option that keeps one value (not a flag, not repeatable) comes twice."""
    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except Exception:  # noqa: BLE001 - the real parse reports whatever is wrong
        return
    counts: dict[str, int] = {}
    for param in order:
        single = (
            isinstance(param, click.Option)
            and not param.multiple
            and not param.is_flag
            and not param.count
        )
        if single and param.name:
            counts[param.name] = counts.get(param.name, 0) + 1
    for param in command.params:
        n = counts.get(param.name or "", 0)
        if n > 1:
            opt = max(param.opts, key=len)
            hint = REPEAT_HINTS.get((command.name or "", param.name or ""), "give it once")
            ctx.fail(f"{opt} is given {n} times but takes one value; {hint}")
