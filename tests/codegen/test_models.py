"""Whole small models built without TensorFlow: a depthwise-separable block with a residual ADD, average pool,
RESHAPE, FULLY_CONNECTED and SOFTMAX head. Checks bit-exactness (also under sanitizers), that the ADD runs in
place, that RESHAPE between kernels is an alias, and that the arena meets the lower bound, well under TFLM's.
(The int8 kernels one by one: tests/kernels.)"""
from __future__ import annotations

import numpy as np
import pytest
from formicary.codegen import lower_model, plan_memory
from formicary.bench.verify import verify_model

from tests.support.tfl_builder import Op, T, build


def residual_model(c: int = 8, hw: int = 10, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)

    def w(shape):
        return rng.integers(-127, 128, shape).astype(np.int8)

    def b(n):
        return rng.integers(-2000, 2000, n).astype(np.int32)

    ts = [T((1, hw, hw, 3), scale=[0.02], zero_point=[-10]),                                   # 0 input
          T((c, 3, 3, 3), scale=[0.01] * c, zero_point=[0] * c, data=w((c, 3, 3, 3))),        # 1
          T((c,), "int32", data=b(c)),                                                        # 2
          T((1, hw, hw, c), scale=[0.05], zero_point=[-128]),                                 # 3 conv
          T((1, 3, 3, c), scale=[0.01] * c, zero_point=[0] * c, axis=3, data=w((1, 3, 3, c))),  # 4
          T((c,), "int32", data=b(c)),                                                        # 5
          T((1, hw, hw, c), scale=[0.04], zero_point=[-128]),                                 # 6 depthwise
          T((c, 1, 1, c), scale=[0.01] * c, zero_point=[0] * c, data=w((c, 1, 1, c))),        # 7
          T((c,), "int32", data=b(c)),                                                        # 8
          T((1, hw, hw, c), scale=[0.06], zero_point=[3]),                                    # 9 pointwise
          T((1, hw, hw, c), scale=[0.08], zero_point=[-20]),                                  # 10 residual add
          T((1, 1, 1, c), scale=[0.08], zero_point=[-20]),                                    # 11 avg pool
          T((2,), "int32", data=np.array([1, c], np.int32)),                                  # 12
          T((1, c), scale=[0.08], zero_point=[-20]),                                          # 13 reshape
          T((5, c), scale=[0.02], zero_point=[0], data=w((5, c))),                            # 14
          T((5,), "int32", data=b(5)),                                                        # 15
          T((1, 5), scale=[0.1], zero_point=[2]),                                             # 16 logits
          T((1, 5), scale=[1 / 256], zero_point=[-128])]                                      # 17 softmax
    ops = [Op("CONV_2D", [0, 1, 2], [3], "Conv2DOptions", dict(Padding=0, StrideW=1, StrideH=1,
                                                              FusedActivationFunction=1)),
           Op("DEPTHWISE_CONV_2D", [3, 4, 5], [6], "DepthwiseConv2DOptions",
              dict(Padding=0, StrideW=1, StrideH=1, DepthMultiplier=1, FusedActivationFunction=3)),
           Op("CONV_2D", [6, 7, 8], [9], "Conv2DOptions", dict(Padding=0, StrideW=1, StrideH=1)),
           Op("ADD", [9, 3], [10], "AddOptions", dict(FusedActivationFunction=1)),
           Op("AVERAGE_POOL_2D", [10], [11], "Pool2DOptions",
              dict(Padding=1, StrideW=hw, StrideH=hw, FilterWidth=hw, FilterHeight=hw)),
           Op("RESHAPE", [11, 12], [13]),
           Op("FULLY_CONNECTED", [13, 14, 15], [16], "FullyConnectedOptions", {}),
           Op("SOFTMAX", [16], [17], "SoftmaxOptions", dict(Beta=1.0))]
    return build(ts, ops, [0], [17])


@pytest.mark.parametrize("sanitize", [False, True])
def test_residual_separable_model_bit_exact(sanitize, host_cc, tflm):
    r = verify_model(residual_model(), inputs=25, seed=4, sanitize=sanitize, measure_tflm_arena=not sanitize,
                     memory_plan="liveness")
    assert r["bit_exact"], r
    assert r["arena_bytes"] == r["arena_lower_bound_bytes"] == 2 * 10 * 10 * 8 + 10 * 10 * 8  # 3 maps at the ADD
    if not sanitize:
        assert r["arena_bytes"] <= 0.7 * r["tflm_arena_bytes"]


def test_residual_add_runs_in_place_and_reshape_aliases():
    lowered = lower_model(residual_model())
    _, owner, _, _ = plan_memory(lowered)
    assert owner[10] == owner[9]       # ADD writes over its dying input
    assert owner[10] != owner[3]       # one in-place partner only: the skip input keeps its own buffer
    assert owner[13] == owner[11]      # RESHAPE output is the pool output
    assert lowered.ops[5].call is None


def test_reshape_is_an_alias_between_kernels():
    """conv → RESHAPE → fully connected: the reshape costs no arena bytes and no copy."""
    rng = np.random.default_rng(1)
    wc = rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8)
    wf = rng.integers(-127, 128, (5, 64)).astype(np.int8)
    shape = np.array([1, 64], dtype=np.int32)
    tensors = [T((1, 4, 4, 2), scale=[0.1], zero_point=[0]),
               T(wc.shape, scale=[0.01] * 4, zero_point=[0] * 4, data=wc),
               T((1, 4, 4, 4), scale=[0.2], zero_point=[-10]),
               T((2,), "int32", data=shape),
               T((1, 64), scale=[0.2], zero_point=[-10]),
               T(wf.shape, scale=[0.02], zero_point=[0], data=wf),
               T((1, 5), scale=[0.5], zero_point=[3])]
    ops = [Op("CONV_2D", [0, 1, -1], [2], "Conv2DOptions", dict(Padding=0, StrideW=1, StrideH=1)),
           Op("RESHAPE", [2, 3], [4]),
           Op("FULLY_CONNECTED", [4, 5, -1], [6], "FullyConnectedOptions", {})]
    model = build(tensors, ops, [0], [6])
    r = verify_model(model, inputs=5, measure_tflm_arena=False)
    assert r["bit_exact"], r
    lowered = lower_model(model)
    assert lowered.ops[1].call is None
    _, owner, arena, bound = plan_memory(lowered)
    assert owner[2] == owner[4]
    assert arena == bound == 32 + 64  # input (32 B) + conv output (64 B) live together; reshape adds nothing
