"""The .tflite flatbuffer builder the tests use: formicary.tflite.builder (moved there so that
`formicary kernels check` can build its random single-op models too)."""
from formicary.tflite.builder import Op, Subgraph, T, build

__all__ = ["Op", "Subgraph", "T", "build"]
