"""Test models built without TensorFlow: the KWS flatbuffer and byte-patched copies of it."""
from __future__ import annotations

from pathlib import Path

import pytest
import tflite


@pytest.fixture(scope="session")
def kws_bytes(kws_model_path: Path) -> bytes:
    return kws_model_path.read_bytes()


def patch_opcode(data: bytes, old_code: int, new_code: int) -> bytes:
    """Rewrite the deprecated_builtin_code byte of the opcode-table entry holding `old_code`."""
    model = tflite.Model.GetRootAsModel(data, 0)
    buf = bytearray(data)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.DeprecatedBuiltinCode() == old_code:
            assert code._tab.Offset(10) == 0, "model stores the int32 builtin_code too; patch that as well"
            buf[code._tab.Pos + code._tab.Offset(4)] = new_code
            return bytes(buf)
    raise AssertionError(f"opcode {old_code} not in model")


@pytest.fixture(scope="session")
def unknown_op_model(kws_bytes: bytes, tmp_path_factory) -> Path:
    # SOFTMAX (25) → LSH_PROJECTION (15): a builtin TFLM does not register.
    path = tmp_path_factory.mktemp("models") / "kws_lsh.tflite"
    path.write_bytes(patch_opcode(kws_bytes, 25, 15))
    return path
