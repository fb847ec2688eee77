/*
 * formicary-rt public runtime header: types shared by generated models, kernels and firmware, and the
 * fixed-point arithmetic of TensorFlow Lite Micro (gemmlowp / tflite::MultiplyByQuantizedMultiplier),
 * re-implemented so that every int8 kernel is bit-exact with the TFLM reference kernels.
 *
 * C99/C11, no dynamic memory, no libc beyond <stdint.h>/<stddef.h>/<string.h>.
 */
#ifndef FM_RUNTIME_H
#define FM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_RUNTIME_VERSION "0.1.0"

/* TFLM's default build uses the double-rounding MultiplyByQuantizedMultiplier (TFLITE_SINGLE_ROUNDING=0);
 * verified against the tflite-micro wheel (see docs/runtime.md). Define FM_SINGLE_ROUNDING=1 to follow a
 * TFLM built with -DTFLITE_SINGLE_ROUNDING=1; codegen must then emit multipliers for that mode too. */
#ifndef FM_SINGLE_ROUNDING
#define FM_SINGLE_ROUNDING 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FM_ALIGNED(n) __attribute__((aligned(n)))
#define FM_INLINE static inline __attribute__((always_inline))
#else
#define FM_ALIGNED(n) _Alignas(n)
#define FM_INLINE static inline
#endif

/* Status codes returned by kernels and fm_invoke(). */
#define FM_OK 0
#define FM_ERR_PARAM 1 /* a kernel found parameters it cannot handle (codegen should have refused them) */
#define FM_ERR_RANGE 2 /* a run-time index (GATHER positions) lies outside its tensor, as TFLM refuses it */

#define FM_MAX_DIMS 6

/* Element types; values equal TFLite's TensorType enum so tables can be compared with the .tflite. */
typedef enum {
    FM_FLOAT32 = 0,
    FM_INT32 = 2,
    FM_UINT8 = 3,
    FM_INT64 = 4,
    FM_BOOL = 6,
    FM_INT16 = 7,
    FM_INT8 = 9
} fm_dtype_t;

/* Metadata of a model input or output (const tables in the generated model). */
typedef struct {
    const char *name;
    fm_dtype_t dtype;
    int32_t ndim;
    int32_t dims[FM_MAX_DIMS];
    size_t bytes;
    float scale;        /* 0 when the tensor is not quantized */
    int32_t zero_point;
} fm_tensor_info_t;

/* Per-operator metadata for profiling builds: index in fm_op_info == op index in the .tflite. */
typedef struct {
    const char *name;    /* output tensor name from the .tflite */
    const char *op_type; /* builtin name, e.g. "CONV_2D" */
    uint32_t macs;       /* multiply-accumulates of the op (0 for data movement) */
} fm_op_info_t;

/* NHWC shape used by kernels; lower-rank tensors pad leading dims with 1. */
typedef struct {
    int32_t n, h, w, c;
} fm_dims4_t;

/* Per-tensor affine quantization: real = scale * (q - zero_point). Kernels receive zero points (offsets)
 * and precomputed multipliers only; scales are for metadata. */
typedef struct {
    float scale;
    int32_t zero_point;
} fm_quant_t;

/* A requantization multiplier in TFLM form: real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31). */
typedef struct {
    int32_t multiplier;
    int32_t shift;
} fm_requant_t;

/* ---------------------------------------------------------------------------------------------------------
 * Fixed-point helpers, exactly as gemmlowp/TFLM define them (including behaviour on negative values and
 * saturation). All arithmetic avoids signed-overflow UB by going through int64 or uint32 where TFLM wraps.
 * ------------------------------------------------------------------------------------------------------- */

FM_INLINE int32_t fm_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
FM_INLINE int32_t fm_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
FM_INLINE int32_t fm_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* Wrapping int32 add/sub/shift (gemmlowp's raw FixedPoint ops wrap on two's complement hardware). */
FM_INLINE int32_t fm_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
FM_INLINE int32_t fm_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
FM_INLINE int32_t fm_wrap_shl(int32_t a, int s) { return (int32_t)((uint32_t)a << s); }

/* gemmlowp::SaturatingRoundingDoublingHighMul: (a*b*2 + 2^31 nudge) >> 32 with round half away from zero
 * via a truncating division, saturating the single overflow case a == b == INT32_MIN. */
FM_INLINE int32_t fm_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (int64_t)(1 << 30) : (int64_t)(1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp::RoundingDivideByPOT: arithmetic shift right with round half away from zero; 0 <= exponent <= 31. */
FM_INLINE int32_t fm_rdbpot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* gemmlowp::SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift for exponent > 0,
 * RoundingDivideByPOT for exponent < 0. */
FM_INLINE int32_t fm_srmbpot(int32_t x, int exponent)
{
    if (exponent > 0) {
        int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
        if (x > threshold) return INT32_MAX;
        if (x < -threshold) return INT32_MIN;
        return fm_wrap_shl(x, exponent);
    }
    if (exponent < 0) {
        return fm_rdbpot(x, -exponent);
    }
    return x;
}

/* tflite::MultiplyByQuantizedMultiplier(x, multiplier, shift). */
FM_INLINE int32_t fm_mbqm(int32_t x, int32_t multiplier, int shift)
{
#if FM_SINGLE_ROUNDING
    int64_t total_shift = 31 - shift;
    int64_t round = (int64_t)1 << (total_shift - 1);
    int64_t result = (int64_t)x * (int64_t)multiplier + round;
    return (int32_t)(result >> total_shift);
#else
    int left_shift = shift > 0 ? shift : 0;
    int right_shift = shift > 0 ? 0 : -shift;
    return fm_rdbpot(fm_srdhm(fm_wrap_shl(x, left_shift), multiplier), right_shift);
#endif
}

/* tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0). */
FM_INLINE int32_t fm_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int shift)
{
#if FM_SINGLE_ROUNDING
    return fm_mbqm(x, multiplier, shift);
#else
    return fm_rdbpot(fm_srdhm(x, multiplier), -shift);
#endif
}

/* tflite::MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0). */
FM_INLINE int32_t fm_mbqm_greater_than_one(int32_t x, int32_t multiplier, int left_shift)
{
#if FM_SINGLE_ROUNDING
    return fm_mbqm(x, multiplier, left_shift);
#else
    return fm_srdhm(fm_wrap_shl(x, left_shift), multiplier);
#endif
}

/* gemmlowp::RoundingHalfSum for int32. */
FM_INLINE int32_t fm_rounding_half_sum(int32_t a, int32_t b)
{
    int64_t sum = (int64_t)a + (int64_t)b;
    int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* Count leading zeros of a uint32 (32 for 0), as tflite::CountLeadingZeros. */
FM_INLINE int fm_clz_u32(uint32_t x)
{
    if (x == 0) return 32;
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clz(x);
#else
    int n = 0;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
#endif
}

/* Larger gemmlowp functions (fm_runtime.c). Raw int32 values of gemmlowp::FixedPoint<int32_t, k>. */

/* exp(a) for a <= 0 given in Q(integer_bits).(31-integer_bits); result in Q0.31
 * (gemmlowp::exp_on_negative_values). 0 <= integer_bits <= 31. */
int32_t fm_exp_on_negative_values(int32_t a, int integer_bits);

/* exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp::exp_on_interval_between_negative_one_quarter_and_0_excl). */
int32_t fm_exp_on_interval_neg_quarter_0(int32_t a);

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (gemmlowp::one_over_one_plus_x_for_x_in_0_1). */
int32_t fm_one_over_one_plus_x_for_x_in_0_1(int32_t a);

/* tflite::GetReciprocal: reciprocal of x in Q(x_integer_digits); returns Q0.31 scale, sets *num_bits_over_unit. */
int32_t fm_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit);

/* gemmlowp::Rescale<dst_integer_bits>(FixedPoint<int32, src_integer_bits>). */
FM_INLINE int32_t fm_rescale(int32_t raw, int src_integer_bits, int dst_integer_bits)
{
    return fm_srmbpot(raw, src_integer_bits - dst_integer_bits);
}

#ifdef __cplusplus
}
#endif

#endif /* FM_RUNTIME_H */
