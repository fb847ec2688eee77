"""The compile stage: a model file (Keras, SavedModel or .tflite) → shrunk, quantized, TFLM-checked .tflite with
a report. `compile_model` is the API; `pipeline` holds the steps."""
from formicary.compile.pipeline import CompileOptions, CompileResult, compile_model, to_tflite, validate_options

__all__ = ["CompileOptions", "CompileResult", "compile_model", "to_tflite", "validate_options"]
