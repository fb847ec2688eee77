/*
 * Pieces the kernels of every set may share (static inline, no state): TFLM's int8 output stage of the
 * convolution family, the float clamp of fused activations, the clipped window of pooling, the int8
 * LOGISTIC / TANH loop around a gemmlowp fixed-point function, and a word-at-a-time byte copy.
 */
#ifndef FM_KERNELS_COMMON_H
#define FM_KERNELS_COMMON_H

#include <string.h>

#include "fm_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED int8 output stage (TFLM reference_integer_ops): `dst` = the
 * accumulator plus the bias of output channel `oc`, MultiplyByQuantizedMultiplier with multiplier[ch] / shift[ch]
 * (ch: oc, or 0 for per-tensor FULLY_CONNECTED), plus the output offset, clamped to the fused activation. `p` is
 * any of the three parameter structs (same field names). A macro rather than an inline function, so that the
 * compiler schedules the hot loops of the kernels as if the statements were written out in them. */
#define FM_CONV_OUTPUT_S8(dst, acc_in, p, oc, ch)                                   \
    do {                                                                            \
        int32_t fm_acc_ = (acc_in);                                                 \
        if ((p)->bias) {                                                            \
            fm_acc_ += (p)->bias[oc];                                               \
        }                                                                           \
        const int32_t fm_ch_ = (ch);                                                \
        fm_acc_ = fm_mbqm(fm_acc_, (p)->multiplier[fm_ch_], (p)->shift[fm_ch_]);    \
        fm_acc_ += (p)->output_offset;                                              \
        (dst) = (int8_t)fm_clamp_i32(fm_acc_, (p)->act_min, (p)->act_max);          \
    } while (0)

/* ADD int8, one element (TFLM reference_integer_ops::AddElementwise): both inputs offset and shifted left by
 * left_shift, rescaled to the common scale, summed, rescaled to the output, offset and clamped. The reference
 * kernel is this in a loop; optimized sets use it where their vector form does not apply (broadcasting, rare
 * parameters). */
FM_INLINE int8_t fm_add_s8_one(const fm_add_s8_params_t *p, int32_t x, int32_t y)
{
    const int32_t in1 = (p->input1_offset + x) * ((int32_t)1 << p->left_shift);
    const int32_t in2 = (p->input2_offset + y) * ((int32_t)1 << p->left_shift);
    const int32_t s1 = fm_mbqm_smaller_than_one(in1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = fm_mbqm_smaller_than_one(in2, p->input2_multiplier, p->input2_shift);
    const int32_t raw = fm_mbqm_smaller_than_one(s1 + s2, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)fm_clamp_i32(raw, p->act_min, p->act_max);
}

/* Fused-activation clamp of the float kernels (NaN passes through, as in TFLM's ActivationFunctionWithMinMax). */
FM_INLINE float fm_clamp_f32(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* The float output stage of the convolution family: bias, then the fused-activation clamp, stored to `dst`. A macro
 * for the same reason as FM_CONV_OUTPUT_S8: as an inline function GCC 12 scheduled the float kernels' loops
 * differently (+0.25 % instructions on the digits CNN). */
#define FM_CONV_OUTPUT_F32(dst, acc_in, p, oc)                                                        \
    do {                                                                                          \
        float fm_accf_ = (acc_in);                                                                \
        if ((p)->bias) {                                                                          \
            fm_accf_ += (p)->bias[oc];                                                            \
        }                                                                                         \
        fm_accf_ = fm_accf_ < (p)->act_min ? (p)->act_min                                        \
                 : (fm_accf_ > (p)->act_max ? (p)->act_max : fm_accf_);                           \
        (dst) = fm_accf_;                                                                         \
    } while (0)

/* One dimension of a pooling window at output position `out_pos`: input coordinate `origin` of its first tap and
 * the taps [start, end) that fall inside the input (padding never counts). */
typedef struct {
    int32_t origin, start, end;
} fm_window_t;

FM_INLINE fm_window_t fm_pool_window(int32_t out_pos, int32_t stride, int32_t pad, int32_t filter, int32_t in_size)
{
    fm_window_t w;
    w.origin = out_pos * stride - pad;
    w.start = fm_max_i32(0, -w.origin);
    w.end = fm_min_i32(filter, in_size - w.origin);
    return w;
}

/* Copy n bytes between regions that do not overlap, a 4-byte word per step, then the tail: the firmware's
 * newlib-nano memcpy moves one byte per loop step (~5 instructions a byte), which dominated the layout kernels'
 * short runs. memcpy of a constant 4 bytes is one load/store pair, defined for any alignment. */
FM_INLINE void fm_copy_bytes(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    for (; n >= 4u; n -= 4u, d += 4u, s += 4u) memcpy(d, s, 4u);
    for (; n; --n) *d++ = *s++;
}

/* LOGISTIC / TANH int8 (TFLM reference_integer_ops::Logistic / Tanh): inputs beyond +-input_range_radius
 * saturate; the others are rescaled to gemmlowp Q4.27, mapped by `fn` to a raw Q0.31 value, and rounded to steps
 * of 2^-out_bits around out_zero_point. */
FM_INLINE int fm_sigmoid_like_s8(const fm_sigmoid_s8_params_t *p, const int8_t *input, int8_t *output,
                                 int32_t (*fn)(int32_t), int out_bits, int32_t out_zero_point)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        if (x <= -p->input_range_radius) {
            output[i] = INT8_MIN;
        } else if (x >= p->input_range_radius) {
            output[i] = INT8_MAX;
        } else {
            const int32_t x_q4 = fm_mbqm(x, p->input_multiplier, p->input_left_shift);
            const int32_t y = fm_rdbpot(fn(x_q4), 31 - out_bits) + out_zero_point;
            output[i] = (int8_t)fm_clamp_i32(y, INT8_MIN, INT8_MAX);
        }
    }
    return FM_OK;
}

#ifdef __cplusplus
}
#endif

/* QUANTIZE float32 -> int8 as TFLM's AffineQuantize: int32(std::round(x / scale)) + zero_point, the division in
 * float, rounding half away from zero without libm (truncate, then look at the exact remainder). Every set's
 * quantize_s8.c defines fm_quantize_f32_s8 with this; sets differ only in the int8 -> int8 requantize. */
static inline int64_t fm_round_half_away_f32(float x)
{
    if (x != x) return INT32_MIN; /* NaN: what the x86 conversion in TFLM yields */
    if (x >= 2147483520.0f) return INT32_MAX;
    if (x <= -2147483520.0f) return INT32_MIN;
    const int32_t t = (int32_t)x;      /* truncation toward zero; exact for |x| < 2^31 */
    const float frac = x - (float)t;   /* exact: x and t share the exponent range */
    return (int64_t)t + (frac >= 0.5f ? 1 : (frac <= -0.5f ? -1 : 0));
}

static inline int fm_quantize_f32_s8_common(const fm_quantize_f32_s8_params_t *p, const float *input,
                                            int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int64_t v = fm_round_half_away_f32(input[i] / p->scale) + p->zero_point;
        output[i] = (int8_t)(v < INT8_MIN ? INT8_MIN : (v > INT8_MAX ? INT8_MAX : v));
    }
    return FM_OK;
}

/* One step of a row-major walk over up to FM_BCAST_DIMS dims (`dims`, element `strides`): advances `idx` and the
 * element offset `*off` (reductions: the kept dims of fm_reduce_params_t, then the reduced dims of one output). */
FM_INLINE void fm_walk_next(const int32_t *dims, const int32_t *strides, int32_t *idx, int32_t *off)
{
    for (int d = FM_BCAST_DIMS - 1; d >= 0; --d) {
        *off += strides[d];
        if (++idx[d] < dims[d]) {
            return;
        }
        *off -= strides[d] * dims[d];
        idx[d] = 0;
    }
}

#endif /* FM_KERNELS_COMMON_H */
