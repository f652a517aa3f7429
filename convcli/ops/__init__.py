"""The pure numeric core: arrays in, arrays out. Nothing here knows about files or the CLI."""

from convcli.ops.activations import activate, parse_activation
from convcli.ops.conv import conv2d
from convcli.ops.padding import pad2d
from convcli.ops.pool import pool2d

__all__ = ["activate", "conv2d", "pad2d", "parse_activation", "pool2d"]
