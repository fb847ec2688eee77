"""Keras → .tflite with the TFLite converter: full-integer int8, int16x8, or float32.

int8 is full-integer post-training quantization with int8 input and output (what TFLM and formicary-rt run),
its activation ranges calibrated on representative samples. int16x8 keeps 16-bit activations with 8-bit
weights. Both refuse float fallbacks, so a model that cannot be fully quantized fails here, not on the device.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from formicary.errors import FormicaryError

Quantize = Literal["int8", "int16x8", "float32"]
QUANTIZE_MODES = ("int8", "int16x8", "float32")
# Enough samples for stable activation ranges on small models without making conversion slow.
MAX_CALIB_SAMPLES = 500


def convert(model: Any, quantize: Quantize, calib: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model, a Keras 3 model or a keras3.GraphModel (SavedModel without Keras metadata).
    `calib` (float32, batch-first) is required for int8/int16x8: even a QAT model needs it, since the converter
    calibrates the int8 input/output tensors on it."""
    if quantize not in QUANTIZE_MODES:
        raise FormicaryError(f"unknown --quantize {quantize!r}", f"use one of {', '.join(QUANTIZE_MODES)}.")
    with _converter_for(model) as converter:
        return _convert(converter, quantize, calib)


@contextlib.contextmanager
def _converter_for(model: Any) -> Iterator[Any]:
    """The TFLite converter for `model`: tf_keras directly; Keras 3 through its inference call traced into a
    temporary SavedModel (what TF's from_keras_model does too, minus the endpoint listing it prints on stdout);
    a SavedModel without Keras metadata from its serving signature (both traced at batch 1)."""
    import tensorflow as tf

    from formicary.model import keras3

    if isinstance(model, keras3.GraphModel):
        yield model.converter()
    elif keras3.is_keras3_model(model):
        with keras3.exported(model) as folder:
            yield tf.lite.TFLiteConverter.from_saved_model(folder)
    else:
        yield tf.lite.TFLiteConverter.from_keras_model(model)


def _convert(converter: Any, quantize: Quantize, calib: np.ndarray | None) -> bytes:
    import tensorflow as tf

    if quantize != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if calib is None:
            raise FormicaryError(f"--quantize {quantize} needs calibration data", "pass --calib DATA.")
        samples = calib[:MAX_CALIB_SAMPLES].astype(np.float32, copy=False)

        def representative():
            # One sample per step, in a fixed order: the calibration (and so the bytes) is reproducible.
            for i in range(samples.shape[0]):
                yield [samples[i:i + 1]]

        converter.representative_dataset = representative
        if quantize == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
    from formicary.oracle.tflm import capture_c_stderr

    # The converter's C++ side chatters on fd 2; keep it for error details instead of the user's terminal.
    with capture_c_stderr() as chatter, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            return bytes(converter.convert())
        except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and others
            error = exc
    text = str(error)
    first = next((ln for ln in text.splitlines() if "error" in ln.lower()),
                 text.splitlines()[0] if text else type(error).__name__)
    raise FormicaryError(f"the TFLite converter failed ({quantize}): {first.strip()}",
                         "use layers with full-integer TFLite kernels, or try --quantize float32 to see "
                         "whether the float model converts.",
                         details={"converter": text[:4000], "stderr": chatter.text[-4000:]}) from error
