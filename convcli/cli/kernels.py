"""``convcli kernels list | show | validate``.

Only click is imported at module level, so ``convcli --help`` stays fast; numpy,
Rich and the kernel code are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click

from convcli.cli.declare import Argument, Option, group, subcommand
from convcli.cli.options import KernelDirs, word_parser
from convcli.vocab import GridScale

app = group("kernels", help="List, show and validate kernels.")


def _console():  # noqa: ANN202 - Rich is imported lazily
    from rich.console import Console

    return Console(highlight=False)


@subcommand(app, "list", short_help="The built-in kernels and the kernel files found.")
def list_kernels(kernel_dirs: KernelDirs = None) -> None:
    """List the built-in kernels and the YAML kernel files in the search folders."""
    from rich.text import Text

    from convcli.errors import KernelError
    from convcli.kernels import (
        BUILTINS,
        Kernel,
        builtin_kernel,
        find_kernel_files,
        read_kernel_file,
    )

    console = _console()
    rows = []
    for name, b in BUILTINS.items():
        rows.append((b.signature, builtin_kernel(name), b.summary))
    console.print(_fitting("Built-in kernels (defaults shown)", rows))

    files = find_kernel_files(kernel_dirs or ())
    file_rows: list[tuple[str, Kernel | Exception, str | Text]] = []
    for path in files:
        try:
            kernel, _ = read_kernel_file(path)
            description = Text(kernel.description)
            description.append(f" ({path})" if kernel.description else str(path), style="dim")
            file_rows.append((path.stem, kernel, description))
        except KernelError as exc:
            file_rows.append((path.stem, exc, ""))
    if file_rows:
        console.print()
        console.print(_fitting("Kernel files (use the name with -k)", file_rows))
    else:
        console.print("\nNo kernel files found (searched --kernel-dir, $CONVCLI_KERNEL_PATH, "
                      "./kernels).", style="dim")  # fmt: skip


def _fitting(title: str, rows: list) -> object:  # noqa: ANN001 - Rich is imported lazily
    """The kernel table, in its compact form when the wide one would wrap."""
    from convcli.cli.kernels_view import kernel_list_table
    from convcli.cli.narrow import ByWidth

    wide = kernel_list_table(title, rows)
    return ByWidth(wide, kernel_list_table(title, rows, compact=True))


#: More 2-D slices than this and ``kernels show`` draws the filter grid instead of heatmaps.
MAX_HEATMAPS = 64


@subcommand(app, "show", short_help="A kernel's weights, sum, rank and symmetry.")
def show(
    name: Annotated[
        str,
        Argument(
            help="Built-in (gaussian:7:1.5), file, NAME.yaml stem, or weights: FILE.npy,"
            " FILE.npz:NAME, FILE.safetensors:NAME, FILE.onnx[:NODE].",
            metavar="NAME",
        ),
    ],
    kernel_dirs: KernelDirs = None,
    png: Annotated[
        Path | None,
        Option(
            "--png",
            metavar="FILE",
            dir_okay=False,
            show_default=False,
            help="Write the filters as a picture: a grid of tiles (RGB tiles for a layer on 3"
            " channels), each weight a square, mid-grey = 0.",
        ),
    ] = None,
    scale: Annotated[
        GridScale,
        Option(
            "--scale",
            parser=word_parser(GridScale, "--scale"),
            metavar="filter|layer",
            show_default=False,
            help="Picture contrast: each filter scaled by its own largest |w|, or one scale"
            " for the whole layer [default: filter].",
        ),
    ] = GridScale.filter,
    force: Annotated[bool, Option("--force", help="Overwrite the --png file.")] = False,
) -> None:
    """Show a kernel's weights as a heatmap, with its sum, rank and symmetry.

    A kernel with more than 64 2-D slices (a trained layer) is drawn as a picture of
    its filters instead, in the terminal; --png writes that picture to a file.

    \b
    Example:
      convcli kernels show model.onnx:conv1 --png conv1.png
    """
    from rich.text import Text

    from convcli.cli.kernels_view import kernel_header, kernel_view
    from convcli.imageio.filtergrid import filter_grid, grid_layout, save_png
    from convcli.kernels import load_kernel

    kernel = load_kernel(name, kernel_dirs=kernel_dirs or ())
    console = _console()
    n_slices = len(kernel.members())
    if png is not None:
        pixels = filter_grid(kernel.weights, scale=scale.value)
        save_png(png, pixels, force=force)
        console.print(kernel_header(kernel))
        caption = grid_layout(kernel.shape).describe()
        console.print(Text(f"wrote {png}: {caption}, scaled per {scale.value}"))
        return
    if n_slices <= MAX_HEATMAPS:
        console.print(kernel_view(kernel))
        return
    console.print(kernel_header(kernel))
    layout = grid_layout(kernel.shape, zoom=1, gap=1) if console.is_terminal else None
    if layout is not None:
        from convcli.cli.report import preview

        pixels = filter_grid(kernel.weights, scale=scale.value, zoom=1, gap=1)  # 1 px a weight
        console.print(preview(pixels, max_width=min(console.width, 100), max_height=40))
        console.print(Text(f"{layout.describe()}, scaled per {scale.value}", style="dim"))
    else:
        console.print(
            Text(
                f"{n_slices} 2-D slices: too many to print as numbers; --png FILE draws"
                f" them ({grid_layout(kernel.shape).describe()})"
            )
        )


@subcommand(app, "validate", short_help="Check kernel files: one line per finding.")
def validate(
    files: Annotated[list[Path], Argument(help="YAML kernel files to check.", metavar="FILE")],
    quiet: Annotated[
        bool, Option("--quiet", "-q", help="Only errors and warnings, no info lines.")
    ] = False,
    strict: Annotated[bool, Option("--strict", help="Exit 2 on warnings too.")] = False,
) -> None:
    """Lint kernel files: one line per finding, file:line: severity: message.

    Exits 2 if any file has an error (or, with --strict, a warning), else 0.
    """
    from rich.console import Console

    from convcli.cli.kernels_view import findings_table, findings_text
    from convcli.kernels import lint_kernel_file

    console = _console()
    counts = {"error": 0, "warning": 0, "info": 0}
    for path in files:
        findings = lint_kernel_file(path)
        for f in findings:
            counts[f.severity] += 1
        shown = [f for f in findings if not (quiet and f.severity == "info")]
        if shown and console.is_terminal:
            # a terminal gets long findings wrapped under their message
            console.print(findings_table(shown))
        elif shown:
            console.print(findings_text(shown), soft_wrap=True)
    n = len(files)
    summary = (
        f"{n} file{'s' * (n != 1)} checked: {counts['error']} error(s), "
        f"{counts['warning']} warning(s)"
    )
    Console(stderr=True, highlight=False).print(summary, style="dim")
    if counts["error"] or (strict and counts["warning"]):
        raise click.exceptions.Exit(code=2)
