"""``convcli run``: a multi-stage pipeline file on images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click

from convcli.cli.declare import Argument, Option
from convcli.cli.options import (
    Inputs,
    KernelDirs,
    NormalizeOpt,
    OutputArgs,
    Until,
    given,
    with_output_options,
)

PipelineArg = Annotated[
    Path,
    Argument(
        help="A pipeline YAML file (name, gray, stages, output), or an ONNX model (.onnx):"
        " its leading chain of supported layers.",
        exists=True, dir_okay=False, show_default=False, metavar="PIPELINE",
    ),
]  # fmt: skip
SaveStages = Annotated[
    bool,
    Option(
        "--save-stages",
        help="Also write every stage's maps as <stem>.<name>.stage<i>-<stage>.<ext>.",
    ),
]


@with_output_options
def run(
    ctx: click.Context,
    pipeline_file: PipelineArg,
    inputs: Inputs,
    kernel_dir: KernelDirs = None,
    until: Until = None,
    normalize: NormalizeOpt = None,
    save_stages: SaveStages = False,
    *,
    outputs: OutputArgs,
) -> None:
    """Run a pipeline file (conv, activation, pool, conv ...) on images.

    The file's output: section gives defaults; options on the command line win.
    An ONNX model runs its leading chain of supported layers (Conv, BatchNormalization,
    Add, Relu, LeakyRelu, Sigmoid, Tanh, MaxPool, AveragePool, global pools) and says
    where and why it stopped.

    \b
    Example:
      convcli run kernels/pipelines/tiny-edge-cnn.yaml samples/camera.png
    """
    from convcli.cli.outputs import read_ahead, run_command, with_pipeline_outputs

    read_ahead(inputs, outputs)
    from convcli.errors import ParameterError
    from convcli.pipeline.source import open_pipeline

    pf = open_pipeline(
        pipeline_file, kernel_dirs=kernel_dir or (), until=until, normalize=normalize
    )
    from convcli.pipeline.yamlfile import PipelineFile

    defaults: dict[str, object] = {}
    if isinstance(pf, PipelineFile):
        pf.require_weights()
        defaults = dict(pf.output)
    if not given(ctx, "save_stages"):
        save_stages = bool(defaults.get("save_stages", save_stages))
    defaults.pop("save_stages", None)
    o = with_pipeline_outputs(outputs, defaults)
    if save_stages and o.out == "-":
        raise ParameterError("--save-stages writes files; it cannot be used with -o -")
    _check_first_input(pf, inputs, o)
    run_command(pf.pipeline, inputs, o, save_stages=save_stages)


def _check_first_input(pf: Any, inputs: list[str], o: OutputArgs) -> None:
    """Plan the pipeline on the first input's shape, so a stage that cannot fit (a 4-D
    kernel expecting other maps, a kernel larger than the map) stops the run before any
    image is processed, with the stage and its line named."""
    from convcli.errors import ImageError
    from convcli.imageio import load_image
    from convcli.pipeline import prepare
    from convcli.run.batch import find_inputs

    found = find_inputs(inputs, recursive=o.recursive, include=o.include, exclude=o.exclude)
    first = next((path for path, _ in found if path != "-"), None)
    if first is None:
        return
    try:
        image = load_image(first, gray=pf.pipeline.gray, dtype=pf.pipeline.dtype)
    except ImageError:
        return  # the run reports it, and goes on with the other inputs
    x, channels, _ = prepare(image, pf.pipeline)
    pf.plan(x.shape, channels)
