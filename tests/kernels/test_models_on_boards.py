"""Whole networks on the virtual boards with each board's optimized kernel set, the real instructions: a
MobileNetV1-style depthwise-separable net (the VWW architecture, strided depthwise included) and a residual block
stay bit-exact with TFLM, and the optimized set runs them in a fraction of the reference set's instructions,
both measured in the same run. KWS on the boards: tests/hil, tests/device, tests/mlperf."""
from __future__ import annotations

import pytest

from tests.codegen.test_models import residual_model
from tests.support.netmodels import mobilenet_v1

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools")]

MODELS = {"mobilenet_v1": lambda: mobilenet_v1(hw=48), "residual": lambda: residual_model(c=16, hw=12, seed=3)}
BOARD_SETS = [("qemu-m4", "dsp"), ("qemu-m55", "helium")]
# Lower bound on reference / optimized instructions for these nets: far below what the sets reach (dsp ~6-10x,
# helium ~15-25x on the MobileNet), far above what a set silently falling back to reference loops gives (1x).
MIN_SPEEDUP = {"dsp": 3.0, "helium": 6.0}


def _bench(model, board: str, kernels: str, tmp_path) -> dict:
    from formicary.bench.runner import run_bench

    return run_bench(model, board, kernels=kernels, inputs=3, runs=3, warmup=0, profile=True, store=False,
                     out_dir=tmp_path / f"{board}-{kernels}")


@pytest.mark.parametrize("board,kernels", BOARD_SETS)
@pytest.mark.parametrize("name", list(MODELS))
def test_network_bit_exact_and_faster_than_reference(name, board, kernels, tmp_path):
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(MODELS[name]())
    fast = _bench(path, board, kernels, tmp_path)
    ref = _bench(path, board, "reference", tmp_path)
    for r in (fast, ref):
        assert r["bit_exact"] and r["mismatches"] == 0 and r["inputs"] == 3, (r["firmware"], r["mismatches"])
    assert fast["firmware"]["kernels"] == kernels and ref["firmware"]["kernels"] == "reference"
    speedup = ref["latency"]["median"] / fast["latency"]["median"]
    assert speedup >= MIN_SPEEDUP[kernels], (speedup, fast["latency"]["median"], ref["latency"]["median"])
    # every MAC-heavy layer gains, not only the whole: a kernel that fell back to reference would show as ~1x
    for lf, lr in zip(fast["layers"], ref["layers"]):
        if lf["macs"] >= 20_000:
            assert lr["median"] / lf["median"] >= 2.0, (lf["op"], lf["index"], lf["median"], lr["median"])
