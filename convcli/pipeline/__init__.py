"""One image through the stages, and the pipeline files that describe them.

:mod:`convcli.pipeline.engine` holds the stages, the plan (every size without
pixels) and the run; :mod:`convcli.pipeline.yamlfile` reads pipeline files.
"""

from convcli.pipeline.engine import (
    IMAGENET_MEAN_STD,
    CombineStage,
    ConvStage,
    Pipeline,
    PoolStage,
    Result,
    Stage,
    StageRecord,
    bank_of,
    output_name,
    parse_bias,
    parse_normalize,
    plan,
    prepare,
    run,
)

__all__ = [
    "IMAGENET_MEAN_STD",
    "CombineStage",
    "ConvStage",
    "Pipeline",
    "PoolStage",
    "Result",
    "Stage",
    "StageRecord",
    "bank_of",
    "output_name",
    "parse_bias",
    "parse_normalize",
    "plan",
    "prepare",
    "run",
]
