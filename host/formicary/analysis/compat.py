"""TFLite Micro compatibility: the real interpreter's verdict, plus a per-op look-up of what TFLM/formicary know."""
from __future__ import annotations

from formicary.errors import FormicaryError

# Builtin ops registered by TFLM's op resolver (tensorflow/lite/micro/micro_mutable_op_resolver.h), read from
# the TFLM sources. Only a hint per op: the verdict that counts is check_tflm() running the interpreter.
TFLM_BUILTIN_OPS = frozenset(["ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL", "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CONCATENATION", "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "IF", "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "LOG_SOFTMAX", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX", "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE"])
TFLM_CUSTOM_OPS = frozenset({"CUSTOM:TFLite_Detection_PostProcess", "CUSTOM:ethos-u"})


def op_support(opcode: str, rt_ops: set[str] | None) -> dict:
    return {"tflm": opcode in TFLM_BUILTIN_OPS or opcode in TFLM_CUSTOM_OPS,
            "formicary_rt": None if rt_ops is None else opcode in rt_ops}


def tflm_verdict(model_bytes: bytes) -> tuple[bool, dict | None]:
    """(compatible, error) from loading and invoking the model once in the TFLM interpreter."""
    from formicary.oracle.tflm import check_tflm  # imports tflite_micro: only when asked

    try:
        check_tflm(model_bytes)
    except FormicaryError as err:
        return False, {"cause": err.cause, "fix": err.fix}
    return True, None
