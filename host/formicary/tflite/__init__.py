"""TensorFlow-free access to .tflite flatbuffers."""
from formicary.tflite.ir import ModelIR, Operator, Quantization, SubgraphIR, Tensor
from formicary.tflite.reader import read_model

__all__ = ["ModelIR", "Operator", "Quantization", "SubgraphIR", "Tensor", "read_model"]
