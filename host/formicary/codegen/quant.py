"""Python twins of TFLM's quantization helpers (tensorflow/lite/kernels/internal/quantization_util.cc and
kernel_util.cc), computed exactly as TFLM's Prepare functions do so that generated constants equal the values
TFLM computes at run time: same float/double promotions, same frexp-based rounding.

Only the default TFLM build (TFLITE_SINGLE_ROUNDING=0) is followed; `SINGLE_ROUNDING` must match
FM_SINGLE_ROUNDING in fm_runtime.h.
"""
from __future__ import annotations

import math

import numpy as np

SINGLE_ROUNDING = False

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
_QRANGE = {"int8": (INT8_MIN, INT8_MAX), "int16": (INT16_MIN, INT16_MAX), "uint8": (0, 255),
           "int32": (-(2 ** 31), 2 ** 31 - 1)}


def tflite_round(x: float) -> float:
    """TfLiteRound = std::round: half away from zero (Python's round() is half to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real (a double) -> (int32 multiplier in [2^30, 2^31), shift) with
    real ~= multiplier * 2^(shift - 31)."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed > (1 << 31):
        raise ValueError(f"quantize_multiplier({real}): q_fixed overflow")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:  # TFLM flushes such tiny multipliers to zero
        shift, q_fixed = 0, 0
    if SINGLE_ROUNDING and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplierGreaterThanOne: like quantize_multiplier with a non-negative left shift."""
    m, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real} is not > 1")
    return m, shift


def f32(x: float) -> float:
    """Round a Python float to float32 (TFLM keeps scales as float)."""
    return float(np.float32(x))


def conv_per_channel_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float,
                                 num_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """tflite::PopulateConvolutionQuantizationParams (per-channel path used for int8 CONV/DEPTHWISE and
    per-channel FULLY_CONNECTED): effective = double(input_scale) * double(filter_scale) / double(output_scale).
    A single filter scale is broadcast over `num_channels`."""
    scales = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    mults = np.zeros(num_channels, dtype=np.int32)
    shifts = np.zeros(num_channels, dtype=np.int32)
    for i in range(num_channels):
        fs = float(scales[i] if scales.size > 1 else scales[0])
        eff = float(np.float32(input_scale)) * fs / float(np.float32(output_scale))
        mults[i], shifts[i] = quantize_multiplier(eff)
    return mults, shifts


def per_tensor_conv_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """tflite::GetQuantizedConvolutionMultipler as used by per-tensor FULLY_CONNECTED: the input*filter
    product is computed in float (float * float), then promoted to double and divided by the output scale."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / float(np.float32(output_scale)))


def activation_range(activation: str, scale: float, zero_point: int, dtype: str = "int8") -> tuple[int, int]:
    """tflite::CalculateActivationRangeQuantized: clamp bounds of a fused activation on the output."""
    qmin, qmax = _QRANGE[dtype]
    s = np.float32(scale)

    def quantize(f: float) -> int:
        # TFLM: `float tmp = TfLiteRound(f / scale)` in float, then zero_point + int(tmp).
        return int(zero_point) + int(tflite_round(float(np.float32(np.float32(f) / s))))  # noqa: RUF046

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ValueError(f"fused activation {activation} has no quantized range")


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """tflite::CalculateInputRadius."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
                          / float(1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


def preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int) -> tuple[int, int]:
    """tflite::PreprocessSoftmaxScaling -> (input_multiplier, input_left_shift)."""
    max_real = float((1 << 30) - 1) if SINGLE_ROUNDING else float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)), max_real)
    return quantize_multiplier_greater_than_one(real)


def softmax_int8_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """What TFLM's CalculateSoftmaxParams computes for int8 input: (input_multiplier, input_left_shift, diff_min),
    with kScaledDiffIntegerBits = 5. beta and input_scale are floats in TFLM, promoted to double."""
    k_scaled_diff_integer_bits = 5
    mult, left_shift = preprocess_softmax_scaling(f32(beta), f32(input_scale), k_scaled_diff_integer_bits)
    diff_min = -1 * calculate_input_radius(k_scaled_diff_integer_bits, left_shift)
    return mult, left_shift, diff_min


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """tflite::ComputePadding (the leading pad; TFLM puts any odd extra pad at the end)."""
    effective = (filter_size - 1) * dilation + 1
    pad = ((out_size - 1) * stride + effective - in_size) // 2
    return max(pad, 0)


def compute_out_size(padding: str, image: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """tflite::ComputeOutSize for SAME/VALID."""
    effective = (filter_size - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding == "SAME":
        return (image + stride - 1) // stride
    if padding == "VALID":
        return (image + stride - effective) // stride
    return 0


# ---- ADD, MUL, LOGISTIC, TANH, RELU, RELU6, MEAN ----------------------------------------------------------------

ADD_LEFT_SHIFT_INT8 = 20


def add_int8_params(scale1: float, scale2: float, out_scale: float) -> dict[str, int]:
    """TFLM add_common.cc CalculateOpDataAdd (int8): inputs rescaled to twice the larger input scale, all in
    double; the max is taken between the float scales."""
    s1, s2, so = float(np.float32(scale1)), float(np.float32(scale2)), float(np.float32(out_scale))
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / (float(1 << ADD_LEFT_SHIFT_INT8) * so))
    return {"left_shift": ADD_LEFT_SHIFT_INT8, "input1_multiplier": m1, "input1_shift": sh1,
            "input2_multiplier": m2, "input2_shift": sh2, "output_multiplier": mo, "output_shift": sho}


def mul_int8_multiplier(scale1: float, scale2: float, out_scale: float) -> tuple[int, int]:
    """TFLM mul_common.cc CalculateOpDataMul: double(s1) * double(s2) / double(s_out)."""
    return quantize_multiplier(float(np.float32(scale1)) * float(np.float32(scale2)) / float(np.float32(out_scale)))


def sigmoid_int8_input_params(input_scale: float) -> tuple[int, int, int]:
    """LOGISTIC/TANH int8 Prepare (logistic_common.cc, tanh.cc): input rescaled to Q4.27 with frexp directly
    (not QuantizeMultiplier). Returns (input_multiplier, input_left_shift, input_range_radius)."""
    k_input_integer_bits = 4
    real = float(np.float32(input_scale)) * float(1 << (31 - k_input_integer_bits))
    q, left_shift = math.frexp(real)
    mult = int(tflite_round(q * (1 << 31)))
    if mult >= (1 << 31):
        # static_cast<int32_t>(2^31) is platform-dependent in TFLM; refuse rather than guess.
        raise ValueError(f"input scale {input_scale} rounds the LOGISTIC/TANH multiplier to 2^31")
    return mult, left_shift, calculate_input_radius(k_input_integer_bits, left_shift, 31)


def float_to_quantized_int8(value: float, scale: float, zero_point: int) -> int:
    """tflite::FloatToQuantizedType<int8_t> (micro_utils.h): round(value / scale) in float, + zero point, clamp."""
    q = int(tflite_round(float(np.float32(np.float32(value) / np.float32(scale))))) + int(zero_point)
    return max(INT8_MIN, min(INT8_MAX, q))


def mean_int8_multiplier(input_scale: float, output_scale: float, num_elements: int) -> tuple[int, int]:
    """TFLM reduce: QuantizeMultiplier(double(in_scale) / double(out_scale)) in Prepare, then
    reference_ops::QuantizedMeanOrSum folds 1/num_elements into it at run time (shift limited to 32 and to
    31 + output_shift)."""
    mult, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    n = int(num_elements)
    if n <= 0:
        return mult, shift
    s = n.bit_length() - 1            # 63 - CountLeadingZeros(uint64 n)
    s = min(s, 32)
    s = min(s, 31 + shift)
    mult = (mult << s) // n            # positive operands: C++ truncation == floor
    return int(mult), shift - s


# ---- SQUARED_DIFFERENCE, SUM (SUB: add_int8_params) ------------------------------------------------------------

def _smaller_than_one_exp(real: float, what: str) -> tuple[int, int]:
    """tflite::QuantizeMultiplierSmallerThanOneExp: TFLM aborts (TFLITE_CHECK) unless 0 < real < 1."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"{what} multiplier {real!r} is not in (0, 1)")
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"{what} multiplier {real!r} rounds to 1")
    return m, shift


SQUARED_DIFFERENCE_LEFT_SHIFT_INT8 = 7


def squared_difference_int8_params(scale1: float, scale2: float, out_scale: float) -> dict[str, int]:
    """TFLM squared_difference.cc PrepareQuantized (int8, left shift 7): input ratios in double against twice the
    larger float scale; output multiplier (2 * max)^2 / double((1 << 14) * output scale), the product taken in
    float, quantized with QuantizeMultiplier (it may exceed one)."""
    s1, s2, so = np.float32(scale1), np.float32(scale2), np.float32(out_scale)
    if not (s1 > 0 and s2 > 0 and so > 0):
        raise ValueError(f"scales {float(s1)!r}, {float(s2)!r}, {float(so)!r} must be positive")
    twice_max = 2.0 * float(max(s1, s2))
    m1, sh1 = _smaller_than_one_exp(float(s1) / twice_max, "input 1")
    m2, sh2 = _smaller_than_one_exp(float(s2) / twice_max, "input 2")
    shift2 = 2 * SQUARED_DIFFERENCE_LEFT_SHIFT_INT8
    mo, sho = quantize_multiplier((twice_max * twice_max) / float(np.float32(np.float32(1 << shift2) * so)))
    return {"left_shift": SQUARED_DIFFERENCE_LEFT_SHIFT_INT8, "input1_multiplier": m1, "input1_shift": sh1,
            "input2_multiplier": m2, "input2_shift": sh2, "output_multiplier": mo, "output_shift": sho}


def sum_int8_multiplier(input_scale: float, output_scale: float) -> tuple[int, int]:
    """TFLM reduce PrepareMeanOrSum: QuantizeMultiplier(double(in_scale) / double(out_scale)); SUM folds nothing
    into it (QuantizedMeanOrSum with compute_sum)."""
    return quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))


# ---- HARD_SWISH, LEAKY_RELU, PRELU ----------------------------------------------------------------------------


def downscale_int32_to_int16_multiplier(multiplier: int) -> int:
    """tflite::DownScaleInt32ToInt16Multiplier: round a Q0.31 multiplier to Q0.15, saturating at INT16_MAX."""
    if multiplier >= (2 ** 31 - 1) - (1 << 15):
        return INT16_MAX
    return (int(multiplier) + (1 << 15)) >> 16


def hard_swish_int8_params(input_scale: float, output_scale: float) -> dict[str, int]:
    """TFLM HardSwishPrepare (int8): the scale ratios are divided in float (hires input scale = input scale / 128,
    reluish scale = 3 / 32768), promoted to double, QuantizeMultiplier'd and rounded to int16 multipliers.
    Raises ValueError where TFLM's Prepare fails (output exponent > 0)."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(input_scale))
    reluish_scale = np.float32(np.float32(3.0) / np.float32(32768.0))
    out_mult, out_exp = quantize_multiplier(float(np.float32(hires / np.float32(output_scale))))
    if out_exp > 0:
        raise ValueError(f"output scale {output_scale} is below input scale / 128 ({input_scale}): the HARD_SWISH "
                         f"output multiplier exponent is {out_exp} > 0, which TFLM's Prepare refuses")
    relu_mult, relu_exp = quantize_multiplier(float(np.float32(hires / reluish_scale)))
    return {"reluish_multiplier": downscale_int32_to_int16_multiplier(relu_mult), "reluish_exponent": relu_exp,
            "output_multiplier": downscale_int32_to_int16_multiplier(out_mult), "output_exponent": out_exp}


def leaky_relu_int8_params(input_scale: float, output_scale: float, alpha: float) -> dict[str, int]:
    """TFLM CalculateOpDataLeakyRelu: double(in) * double(alpha) / double(out) and double(in) / double(out)
    (alpha is the float option; negative alphas give negative multipliers, as in TFLM)."""
    si, so, a = f32(input_scale), f32(output_scale), f32(alpha)
    am, ash = quantize_multiplier(si * a / so)
    im, ish = quantize_multiplier(si / so)
    return {"identity_multiplier": im, "identity_shift": ish, "alpha_multiplier": am, "alpha_shift": ash}


def prelu_int8_params(input_scale: float, alpha_scale: float, output_scale: float) -> dict[str, int]:
    """TFLM CalculatePreluParams: double(in) / double(out) and double(in) * double(alpha) / double(out)."""
    si, sa, so = f32(input_scale), f32(alpha_scale), f32(output_scale)
    m1, s1 = quantize_multiplier(si / so)
    m2, s2 = quantize_multiplier(si * sa / so)
    return {"multiplier_1": m1, "shift_1": s1, "multiplier_2": m2, "shift_2": s2}
