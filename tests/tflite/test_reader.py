"""The TensorFlow-free flatbuffer reader on the real KWS model and on bad input."""
import os

import numpy as np
import pytest

from formicary.errors import FormicaryError
from formicary.tflite import read_model


def test_reads_kws_model(kws_model_path):
    m = read_model(kws_model_path)
    assert [op.opcode for op in m.operators][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert m.input_tensors[0].shape == (1, 49, 10, 1) and m.input_tensors[0].dtype == "int8"
    assert m.output_tensors[0].shape == (1, 12)
    conv = m.operators[0]
    assert conv.options["padding"] == "SAME" and conv.options["stride_h"] == 2
    assert conv.options["fused_activation_function"] == "RELU"
    weights = m.tensor(conv.inputs[1])
    assert weights.data is not None and weights.data.dtype == np.int8 and weights.quant.per_channel
    assert weights.quant.scale.size == weights.shape[0]


@pytest.mark.parametrize("blob", [b"", b"TFL3", os.urandom(4096), b"\x00\x00\x00\x00TFL3" + os.urandom(200)])
def test_bad_bytes_give_one_clear_error(blob):
    with pytest.raises(FormicaryError) as info:
        read_model(blob)
    assert "flatbuffer" in info.value.cause


def test_truncated_model(kws_model_path):
    data = kws_model_path.read_bytes()
    with pytest.raises(FormicaryError, match="corrupt or truncated|not a TFLite"):
        read_model(data[: len(data) // 3])


def test_missing_file(tmp_path):
    with pytest.raises(FormicaryError, match="does not exist"):
        read_model(tmp_path / "nope.tflite")
