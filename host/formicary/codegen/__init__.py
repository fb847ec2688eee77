"""Ahead-of-time compiler from .tflite to C for formicary-rt: lifetimes + arena planner, per-op lowering
registry (ops/), C emitter. Public API: `generate(model, out_dir) -> CodegenResult`."""
from formicary.codegen.generate import (
    FIRMWARE_DIR,
    CodegenResult,
    generate,
    lower_model,
    memory_plans,
    plan_memory,
)

__all__ = ["FIRMWARE_DIR", "CodegenResult", "generate", "lower_model", "memory_plans", "plan_memory"]
