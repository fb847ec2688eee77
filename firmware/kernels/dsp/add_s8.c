/*
 * ADD int8 for Armv7E-M, bit-exact with TFLM's general-rescaling add (tflite::reference_integer_ops::Add):
 * in = (x + offset) << 20, rescaled to twice the larger input scale by MultiplyByQuantizedMultiplierSmallerThanOneExp,
 * summed, rescaled to the output, plus the output offset, clamped.
 *
 * Each of the three double-rounding multiplications is one 64-bit multiply-accumulate here, with both roundings
 * folded into its starting value (computed once per call):
 * - an input: x + offset has 9 bits, so SaturatingRoundingDoublingHighMul((x + o) * 2^20, m) =
 *   floor(((x + o) * m + 2^10) / 2^11), and the RoundingDivideByPOT by r after it joins into
 *   floor(((x + o) * m * 2^(21-r) + 2^31 + 2^(31-r) - [x + o < 0] 2^(32-r)) / 2^32): the high word of SMLAL with a
 *   low start word picked by the sign (r = 0: 2^31 alone);
 * - the output: the same form as the depthwise kernel's requantization (fm_dsp_requant.h's note): for a sum y,
 *   floor((y * m + 2^30 + 2^(30+r) - [y < 0] 2^31) / 2^(31+r)) = (high word) >> (r - 1).
 * That holds for the multipliers TFLM makes (0 or >= 2^30), input shifts r <= 21 and output shifts 1 <= r <= 31
 * with left_shift 20; other parameters take the portable per-element path.
 * Without broadcasting the elements go in blocks of ADD_BLOCK through three passes (input 1 into a stack buffer,
 * input 2 added to it, the output), so that each pass keeps only its own constants in registers. Broadcasting
 * walks the inputs with TFLM's strides (stride 0 repeats) through the same arithmetic one element at a time.
 */
#include "fm_kernels_common.h"
#include "fm_dsp_requant.h"

typedef struct {
    int32_t k1, off1, m1, k2, off2, m2; /* input i: offset and (x + offset) scaled by 2^k, k = 21 - r */
    uint32_t lo1, d1, lo2, d2;          /* input i: low start word, minus d when x + offset < 0 */
    int32_t mo, ho, lo_o, rs1;          /* output: multiplier, start word pair, right shift - 1 */
    int32_t out_off, act_min, act_max;
} add_fast_t;

/* The high word of (x + off) * 2^k * m + start: input rescale with both roundings. */
FM_INLINE int32_t add_in(int32_t x, int32_t k, int32_t off, int32_t m, uint32_t lo, uint32_t d)
{
    const int32_t a = (int32_t)((uint32_t)(x + off) << k);
    const uint64_t sum = (uint64_t)(lo - (d & (uint32_t)(a >> 31))) + (uint64_t)((int64_t)a * m);
    return (int32_t)(uint32_t)(sum >> 32);
}

FM_INLINE int8_t add_fast_one(const add_fast_t *f, int32_t x, int32_t y)
{
    const int32_t s = add_in(x, f->k1, f->off1, f->m1, f->lo1, f->d1) + add_in(y, f->k2, f->off2, f->m2, f->lo2, f->d2);
    const int32_t neg = s >> 31;
    const uint32_t lo = (uint32_t)f->lo_o ^ ((uint32_t)neg << 31);
    const int32_t hi = f->ho + (neg & ~(f->lo_o >> 31));
    uint64_t sum = ((uint64_t)(uint32_t)hi << 32) | lo;
    sum += (uint64_t)((int64_t)s * f->mo);
    int32_t v = ((int32_t)(uint32_t)(sum >> 32) >> f->rs1) + f->out_off;
    v = v > f->act_min ? v : f->act_min;
    v = v < f->act_max ? v : f->act_max;
    return (int8_t)v;
}

#define ADD_BLOCK 64 /* elements rescaled into a stack buffer per pass */

/* buf[i] (+)= the rescaled input in[i]: one pass per input, so that only one input's constants are live. */
__attribute__((noinline)) static void add_in_pass(const int8_t *in, int32_t n, int32_t k, int32_t off, int32_t m,
                                                  uint32_t lo, uint32_t d, int32_t *buf, int accumulate)
{
    if (accumulate) {
        for (int32_t i = 0; i < n; ++i) {
            buf[i] += add_in(in[i], k, off, m, lo, d);
        }
    } else {
        for (int32_t i = 0; i < n; ++i) {
            buf[i] = add_in(in[i], k, off, m, lo, d);
        }
    }
}

/* out[i] = the sums in buf rescaled to the output, offset, clamped. */
__attribute__((noinline)) static void add_out_pass(const add_fast_t *f, const int32_t *buf, int32_t n, int8_t *out)
{
    const int32_t mo = f->mo, ho = f->ho, lo_o = f->lo_o, rs1 = f->rs1;
    const int32_t borrow = ~(lo_o >> 31), out_off = f->out_off, lo = f->act_min, hi = f->act_max;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t s = buf[i];
        const int32_t neg = s >> 31;
        uint64_t sum = ((uint64_t)(uint32_t)(ho + (neg & borrow)) << 32) | ((uint32_t)lo_o ^ ((uint32_t)neg << 31));
        sum += (uint64_t)((int64_t)s * mo);
        int32_t v = ((int32_t)(uint32_t)(sum >> 32) >> rs1) + out_off;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        out[i] = (int8_t)v;
    }
}

static int add_multiplier_ok(int32_t m) { return m == 0 || m >= (1 << 30); }

/* The constants of add_fast_one, or 0 when the parameters are outside its exact range. */
static int add_fast_setup(const fm_add_s8_params_t *p, add_fast_t *f)
{
    const int32_t r1 = -p->input1_shift, r2 = -p->input2_shift, ro = -p->output_shift;
#if FM_SINGLE_ROUNDING
    return 0;
#endif
    if (p->left_shift != 20 || r1 < 0 || r1 > 21 || r2 < 0 || r2 > 21 || ro < 1 || ro > 31 ||
        !add_multiplier_ok(p->input1_multiplier) || !add_multiplier_ok(p->input2_multiplier) ||
        !add_multiplier_ok(p->output_multiplier)) {
        return 0;
    }
    f->k1 = 21 - r1;
    f->off1 = p->input1_offset;
    f->m1 = p->input1_multiplier;
    f->lo1 = r1 ? 0x80000000u + (1u << (31 - r1)) : 0x80000000u;
    f->d1 = r1 ? 1u << (32 - r1) : 0u; /* r1 = 1: 2^31 */
    f->k2 = 21 - r2;
    f->off2 = p->input2_offset;
    f->m2 = p->input2_multiplier;
    f->lo2 = r2 ? 0x80000000u + (1u << (31 - r2)) : 0x80000000u;
    f->d2 = r2 ? 1u << (32 - r2) : 0u;
    f->mo = p->output_multiplier;
    f->ho = ro >= 2 ? (int32_t)(1u << (ro - 2)) : 0;         /* 2^30 + 2^(30+ro), high word */
    f->lo_o = ro >= 2 ? 0x40000000 : (int32_t)0xC0000000u;   /* and low word */
    f->rs1 = ro - 1;
    f->out_off = p->output_offset;
    f->act_min = p->act_min;
    f->act_max = p->act_max;
    return 1;
}

int fm_add_s8(const fm_add_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t n = p->shape.flat_size;
    add_fast_t f = {0};
    const int fast = add_fast_setup(p, &f);
    if (!p->shape.broadcast) {
        if (fast) {
            /* Three passes over blocks of ADD_BLOCK elements (input 1, input 2, output), each with only its own
             * constants in registers: the one-element-at-a-time loop spilled them. */
            int32_t buf[ADD_BLOCK];
            for (int32_t i = 0; i < n; i += ADD_BLOCK) {
                const int32_t k = fm_min_i32(ADD_BLOCK, n - i);
                add_in_pass(input1 + i, k, f.k1, f.off1, f.m1, f.lo1, f.d1, buf, 0);
                add_in_pass(input2 + i, k, f.k2, f.off2, f.m2, f.lo2, f.d2, buf, 1);
                add_out_pass(&f, buf, k, output + i);
            }
        } else {
            for (int32_t i = 0; i < n; ++i) {
                output[i] = fm_add_s8_one(p, input1[i], input2[i]);
            }
        }
        return FM_OK;
    }
    fm_bcast_iter_t it = {{0}, 0, 0};
    for (int32_t i = 0; i < n; ++i) {
        const int32_t x = input1[it.off1], y = input2[it.off2];
        output[i] = fast ? add_fast_one(&f, x, y) : fm_add_s8_one(p, x, y);
        fm_bcast_next(&p->shape, &it);
    }
    return FM_OK;
}
