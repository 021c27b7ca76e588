"""Tiny randomly initialised models of the real architectures, loaded through the same code as real weights."""

from .depth import make_tiny_depth_model
from .lama import make_tiny_lama

__all__ = ["make_tiny_depth_model", "make_tiny_lama"]
