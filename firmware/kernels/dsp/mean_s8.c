/*
 * MEAN int8 for Armv7E-M DSP, bit-exact with TFLM's integer QuantizedMeanOrSum: the raw sum of each reduced group,
 * minus red_count * input zero point, rescaled by MultiplyByQuantizedMultiplier (the multiplier already folds
 * input_scale / output_scale / red_count, as the code generator computes it), plus the output zero point, clamped.
 *
 * Fast path, the GlobalAveragePooling case: the innermost input dimension (channels, C) is kept and the reduced
 * dimensions are the ones right above it, so an output group of C channels sums R = red_count pixels C bytes
 * apart. Channels go 4 at a time: one word load per pixel, SXTAB16 and SXTAB16 ROR 8 add bytes 0/2 and 1/3 into
 * two words of 16-bit lane sums, flushed into int32 every 256 pixels (256 * -128 = -32768 still fits a lane).
 * The last C % 4 channels are summed one by one (a word load there could read past the tensor).
 * Second fast path, a reduction over the innermost axes (layer-norm statistics, SUM/MEAN over features): each
 * output's group is one contiguous run of red_count bytes, summed a word at a time with the same SXTAB16 pair
 * (flushed every 256 words), the last red_count % 4 bytes one by one.
 * Any other axis set: the general walk over kept and reduced dimensions, as the reference kernel does.
 */
#include "fm_kernels_common.h"
#include "fm_acle.h"

#define MEAN_LANE_PIXELS 256 /* pixels a 16-bit lane sum takes without overflow */

/* The output of one reduced group from its raw sum. */
static int8_t mean_out(const fm_mean_params_t *p, int32_t sum)
{
    const int32_t shifted = (int32_t)((uint32_t)sum - (uint32_t)p->input_zero_point * (uint32_t)p->red_count);
    const int32_t v = fm_mbqm(shifted, p->multiplier, p->shift) + p->output_zero_point;
    return (int8_t)fm_clamp_i32(v, INT8_MIN, INT8_MAX);
}

/* C channels (whose group starts at src) summed over r pixels `ch` bytes apart, into out[0..C). */
static void mean_channels(const fm_mean_params_t *p, const int8_t *src, int32_t ch, int32_t r, int8_t *out)
{
    int32_t c = 0;
    for (; c + 4 <= ch; c += 4) {
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const int8_t *q = src + c;
        for (int32_t k = 0; k < r;) {
            int32_t n = fm_min_i32(MEAN_LANE_PIXELS, r - k);
            k += n;
            uint32_t a02 = 0, a13 = 0;
            for (; n > 1; n -= 2, q += 2 * ch) {
                const uint32_t v = fm_load_u32(q), u = fm_load_u32(q + ch);
                a02 = fm_sxtab16(a02, v);
                a13 = fm_sxtab16_ror8(a13, v);
                a02 = fm_sxtab16(a02, u);
                a13 = fm_sxtab16_ror8(a13, u);
            }
            if (n) {
                const uint32_t v = fm_load_u32(q);
                a02 = fm_sxtab16(a02, v);
                a13 = fm_sxtab16_ror8(a13, v);
                q += ch;
            }
            s0 += fm_lo16(a02);
            s2 += fm_hi16(a02);
            s1 += fm_lo16(a13);
            s3 += fm_hi16(a13);
        }
        out[c] = mean_out(p, s0);
        out[c + 1] = mean_out(p, s1);
        out[c + 2] = mean_out(p, s2);
        out[c + 3] = mean_out(p, s3);
    }
    for (; c < ch; ++c) {
        int32_t s = 0;
        const int8_t *q = src + c;
        for (int32_t k = 0; k < r; ++k, q += ch) {
            s += *q;
        }
        out[c] = mean_out(p, s);
    }
}

/* Steps the index idx over dims (innermost last, the first `n` of FM_BCAST_DIMS) and returns the offset change. */
static int32_t mean_step(int32_t *idx, const int32_t *dims, const int32_t *strides, int n)
{
    int32_t delta = 0;
    for (int d = n - 1; d >= 0; --d) {
        delta += strides[d];
        if (++idx[d] < dims[d]) {
            break;
        }
        delta -= strides[d] * dims[d];
        idx[d] = 0;
    }
    return delta;
}

/* The channel count C when the fast path applies (see the file comment), else 0. */
static int32_t mean_channels_last(const fm_mean_params_t *p)
{
    const int last = FM_BCAST_DIMS - 1;
    if (p->kept_strides[last] != 1 || p->kept_dims[last] < 1) {
        return 0;
    }
    const int32_t ch = p->kept_dims[last];
    int32_t expect = ch; /* the stride the next reduced dimension, going outwards, must have */
    for (int d = last; d >= 0; --d) {
        if (p->red_dims[d] == 1) {
            continue;
        }
        if (p->red_strides[d] != expect) {
            return 0;
        }
        expect *= p->red_dims[d];
    }
    return ch;
}

/* Whether every output's group is one contiguous run of red_count bytes (the reduced axes innermost and dense). */
static int mean_group_contiguous(const fm_mean_params_t *p)
{
    int32_t expect = 1;
    for (int d = FM_BCAST_DIMS - 1; d >= 0; --d) {
        if (p->red_dims[d] == 1) {
            continue;
        }
        if (p->red_strides[d] != expect) {
            return 0;
        }
        expect *= p->red_dims[d];
    }
    return expect == p->red_count;
}

/* The sum of n contiguous int8 values. */
static int32_t sum_bytes(const int8_t *q, int32_t n)
{
    int32_t sum = 0;
    while (n >= 4) {
        int32_t words = fm_min_i32(MEAN_LANE_PIXELS, n / 4);
        n -= 4 * words;
        uint32_t a02 = 0, a13 = 0;
        for (; words > 0; --words, q += 4) {
            const uint32_t v = fm_load_u32(q);
            a02 = fm_sxtab16(a02, v);
            a13 = fm_sxtab16_ror8(a13, v);
        }
        sum += fm_lo16(a02) + fm_hi16(a02) + fm_lo16(a13) + fm_hi16(a13);
    }
    for (; n > 0; --n) {
        sum += *q++;
    }
    return sum;
}

int fm_mean_s8(const fm_mean_params_t *p, const int8_t *input, int8_t *output)
{
    if (p->red_count >= 8 && mean_group_contiguous(p)) {
        int32_t idx[FM_BCAST_DIMS] = {0};
        int32_t base = 0;
        for (int32_t o = 0; o < p->out_size; ++o) {
            output[o] = mean_out(p, sum_bytes(input + base, p->red_count));
            base += mean_step(idx, p->kept_dims, p->kept_strides, FM_BCAST_DIMS);
        }
        return FM_OK;
    }
    const int32_t ch = mean_channels_last(p);
    if (ch > 0) {
        /* outer kept dimensions (all but the channels) walk the groups */
        int32_t idx[FM_BCAST_DIMS] = {0};
        int32_t base = 0;
        for (int32_t o = 0; o < p->out_size; o += ch) {
            mean_channels(p, input + base, ch, p->red_count, output + o);
            base += mean_step(idx, p->kept_dims, p->kept_strides, FM_BCAST_DIMS - 1);
        }
        return FM_OK;
    }
    int32_t idx[FM_BCAST_DIMS] = {0};
    int32_t base = 0;
    for (int32_t o = 0; o < p->out_size; ++o) {
        int32_t ridx[FM_BCAST_DIMS] = {0};
        int32_t off = base, sum = 0;
        for (int32_t r = 0; r < p->red_count; ++r) {
            sum += input[off];
            off += mean_step(ridx, p->red_dims, p->red_strides, FM_BCAST_DIMS);
        }
        output[o] = mean_out(p, sum);
        base += mean_step(idx, p->kept_dims, p->kept_strides, FM_BCAST_DIMS);
    }
    return FM_OK;
}
