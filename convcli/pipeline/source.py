"""A pipeline from a file: a pipeline YAML file, or an ONNX model's leading chain of layers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from convcli.errors import ParameterError

if TYPE_CHECKING:
    from convcli.pipeline.onnx import ModelPipeline
    from convcli.pipeline.yamlfile import PipelineFile

Normalize = tuple[tuple[float, ...], tuple[float, ...]]


def open_pipeline(
    path: str | Path,
    *,
    kernel_dirs: Iterable[str | Path] = (),
    until: str | None = None,
    normalize: Normalize | None = None,
) -> PipelineFile | ModelPipeline:
    """The pipeline in ``path``, by its suffix: ``.onnx`` is a model, anything else YAML.

    Both results have ``.pipeline`` and ``.plan(in_shape, channels)``; a YAML
    file's ``.output`` holds its output defaults. ``until`` (stop after a node)
    is for models only; ``normalize`` (mean, std) applies to both.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from convcli.pipeline.onnx import pipeline_from_onnx

        return pipeline_from_onnx(path, until=until, normalize=normalize)
    if until is not None:
        raise ParameterError("--until NODE goes with an ONNX model (a .onnx file)")
    from convcli.pipeline.yamlfile import read_pipeline

    pf = read_pipeline(path, kernel_dirs=kernel_dirs)
    if normalize is not None:
        pf = dataclasses.replace(pf, pipeline=dataclasses.replace(pf.pipeline, normalize=normalize))
    return pf
