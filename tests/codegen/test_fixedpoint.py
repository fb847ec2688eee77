"""TFLM fixed-point arithmetic in fm_runtime.h checked against independent Python definitions (exact integer
math), and quant.py against values TFLM computes."""
from __future__ import annotations

import ctypes
import math
import subprocess

import pytest
from formicary.codegen import FIRMWARE_DIR, quant
from hypothesis import example, given, settings
from hypothesis import strategies as st

I32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
WRAPPER = r"""
#include "fm_runtime.h"
int32_t t_srdhm(int32_t a, int32_t b) { return fm_srdhm(a, b); }
int32_t t_rdbpot(int32_t x, int e) { return fm_rdbpot(x, e); }
int32_t t_mbqm(int32_t x, int32_t m, int s) { return fm_mbqm(x, m, s); }
int32_t t_exp(int32_t a, int bits) { return fm_exp_on_negative_values(a, bits); }
int32_t t_recip(int32_t x, int bits, int *n) { return fm_get_reciprocal(x, bits, n); }
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory, host_cc):
    d = tmp_path_factory.mktemp("fx")
    (d / "w.c").write_text(WRAPPER)
    so = d / "libfx.so"
    subprocess.run([host_cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    f"-I{FIRMWARE_DIR / 'runtime' / 'include'}", str(d / "w.c"),
                    str(FIRMWARE_DIR / "runtime" / "src" / "fm_runtime.c"), "-o", str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    for name in ("t_srdhm", "t_rdbpot", "t_mbqm", "t_exp", "t_recip"):
        getattr(lib, name).restype = ctypes.c_int32
    lib.t_srdhm.argtypes = [ctypes.c_int32, ctypes.c_int32]
    lib.t_rdbpot.argtypes = [ctypes.c_int32, ctypes.c_int]
    lib.t_mbqm.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int]
    lib.t_exp.argtypes = [ctypes.c_int32, ctypes.c_int]
    lib.t_recip.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    return lib


def ref_srdhm(a: int, b: int) -> int:
    if a == b == -(2 ** 31):
        return 2 ** 31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)  # C division truncates toward zero
    return q if ab + nudge >= 0 else -q


def ref_rdbpot(x: int, e: int) -> int:
    # round half away from zero of x / 2^e
    q, r = divmod(abs(x), 1 << e)
    if 2 * r >= (1 << e) and e > 0:
        q += 1
    return q if x >= 0 else -q


def wrap32(v: int) -> int:
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


@settings(max_examples=400, deadline=None)
@given(I32, I32)
@example(-(2 ** 31), -(2 ** 31))
@example(-(2 ** 31), 2 ** 31 - 1)
@example(-3, 1 << 30)
def test_srdhm(lib, a, b):
    assert lib.t_srdhm(a, b) == ref_srdhm(a, b)


@settings(max_examples=400, deadline=None)
@given(I32, st.integers(0, 31))
@example(-1, 1)
@example(-3, 1)
@example(5, 1)
@example(-(2 ** 31), 31)
def test_rounding_divide_by_pot(lib, x, e):
    assert lib.t_rdbpot(x, e) == ref_rdbpot(x, e)


@settings(max_examples=400, deadline=None)
@given(I32, st.integers(1 << 30, 2 ** 31 - 1), st.integers(-31, 30))
def test_multiply_by_quantized_multiplier_double_rounding(lib, x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    expected = ref_rdbpot(ref_srdhm(wrap32(x * (1 << left)), m), right)
    assert lib.t_mbqm(x, m, shift) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2 ** 31) + 1, 0), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8, 12]))
def test_exp_on_negative_values_accuracy(lib, raw, bits):
    x = raw / float(1 << (31 - bits))
    got = lib.t_exp(raw, bits) / 2 ** 31
    # gemmlowp's polynomial is good to ~3e-7; bit-exactness itself is checked against TFLM softmax
    assert abs(got - math.exp(x)) < 1e-6 * (1 << max(bits - 5, 0))


def test_reciprocal(lib):
    n = ctypes.c_int()
    for value in (1.0, 1.25, 3.0, 7.5, 100.0, 2047.9):
        raw = int(value * (1 << 19))  # Q12.19 like the softmax sum
        r = lib.t_recip(raw, 12, ctypes.byref(n))
        assert abs(r / 2 ** 31 * 2.0 ** -n.value - 1 / value) < 1e-6 / value


def test_quantize_multiplier_known_values():
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.75) == (0x60000000, 0)
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(2.0 ** -40) == (0, 0)  # TFLM flushes shifts below -31 to zero
    # q rounds up to exactly 2^31: TFLM halves it and bumps the shift
    assert quant.quantize_multiplier(1.0 - 2.0 ** -33) == (1 << 30, 1)


@given(st.floats(1e-9, 1e6))
def test_quantize_multiplier_is_close(real):
    m, shift = quant.quantize_multiplier(real)
    if m:
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (shift - 31) - real) <= real * 2 ** -30


def test_tflite_round_is_half_away_from_zero():
    assert quant.tflite_round(2.5) == 3 and quant.tflite_round(-2.5) == -3 and quant.tflite_round(0.49) == 0


def test_softmax_params_match_tflm_formula():
    # beta=1, input scale 1/16: real = 1 * 0.0625 * 2^26 = 2^22 -> multiplier 2^30, left shift 23;
    # radius = floor(31 * 2^26 / 2^23) = 248.
    assert quant.softmax_int8_params(1.0, 0.0625) == (1 << 30, 23, -248)
