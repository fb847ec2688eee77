/*
 * The Armv7E-M / Armv8-M DSP instructions the optimized kernel sets use, as static inline functions with one
 * meaning everywhere: on a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33/M55) they are the ACLE
 * intrinsics of arm_acle.h (one instruction each); elsewhere (the host build, run under ASan/UBSan) they are
 * portable C that computes the same bits, so a kernel's source is tested on x86 and runs unchanged on the board.
 *
 * All lane arithmetic wraps modulo 2^32 as the instructions do (unsigned arithmetic in the portable versions: no
 * signed-overflow UB). Packed words hold lane 0 in the low half.
 */
#ifndef FM_ACLE_H
#define FM_ACLE_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define FM_HAVE_DSP 1
#else
#define FM_HAVE_DSP 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Low / high signed 16-bit lane of a packed word. */
static inline int32_t fm_lo16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t fm_hi16(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x >> 16); }
static inline uint32_t fm_pack16(int32_t lo, int32_t hi) { return ((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu); }

/* Rotate right by n (0 < n < 32). */
static inline uint32_t fm_ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

#if FM_HAVE_DSP

/* SXTB16: bytes 0 and 2 sign-extended into two 16-bit lanes. */
static inline uint32_t fm_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
/* SXTB16 with ROR #8: bytes 1 and 3, in one instruction (the rotation is an operand of SXTB16; GCC 12 does not
 * fold a separate rotate into it, hence the asm). */
static inline uint32_t fm_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* SMLAD: acc + lo(x)*lo(y) + hi(x)*hi(y). */
static inline int32_t fm_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return __smlad((int16x2_t)x, (int16x2_t)y, acc);
}
/* SMLADX: acc + lo(x)*hi(y) + hi(x)*lo(y). */
static inline int32_t fm_smladx(uint32_t x, uint32_t y, int32_t acc)
{
    return __smladx((int16x2_t)x, (int16x2_t)y, acc);
}
/* SMLABB / SMLATT / SMLABT / SMLATB: acc + one 16x16 product of the named halves (B = low, T = high). */
static inline int32_t fm_smlabb(uint32_t x, uint32_t y, int32_t acc) { return __smlabb((int32_t)x, (int32_t)y, acc); }
static inline int32_t fm_smlatt(uint32_t x, uint32_t y, int32_t acc) { return __smlatt((int32_t)x, (int32_t)y, acc); }
static inline int32_t fm_smlabt(uint32_t x, uint32_t y, int32_t acc) { return __smlabt((int32_t)x, (int32_t)y, acc); }
static inline int32_t fm_smlatb(uint32_t x, uint32_t y, int32_t acc) { return __smlatb((int32_t)x, (int32_t)y, acc); }
/* SADD16 / SSUB16: lane-wise wrapping add / subtract of two packed 16-bit pairs. */
static inline uint32_t fm_sadd16(uint32_t x, uint32_t y) { return (uint32_t)__sadd16((int16x2_t)x, (int16x2_t)y); }
static inline uint32_t fm_ssub16(uint32_t x, uint32_t y) { return (uint32_t)__ssub16((int16x2_t)x, (int16x2_t)y); }
/* SXTAB16: y + sxtb16(x), lane-wise. */
static inline uint32_t fm_sxtab16(uint32_t y, uint32_t x) { return (uint32_t)__sxtab16((int16x2_t)y, (int8x4_t)x); }

/* SSAT #8: x saturated to [-128, 127]. */
static inline int32_t fm_ssat8(int32_t x) { return __ssat(x, 8); }
/* SXTAB16 with ROR #8: y + sxtb16 of bytes 1 and 3 of x, lane-wise (asm for the same reason as fm_sxtb16_ror8). */
static inline uint32_t fm_sxtab16_ror8(uint32_t y, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(y), "r"(x));
    return r;
}
/* Lane-wise signed max / min of 4 int8: SSUB8 sets the GE flag of each byte where x >= y, SEL picks by them (one
 * asm block, so nothing can touch the GE flags in between). */
static inline uint32_t fm_max_s8x4(uint32_t x, uint32_t y)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(x), "r"(y) : "cc");
    return r;
}
static inline uint32_t fm_min_s8x4(uint32_t x, uint32_t y)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(x), "r"(y) : "cc");
    return r;
}

#else /* portable definitions: the same bits, no UB */

static inline uint32_t fm_sxtb16(uint32_t x)
{
    return fm_pack16((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}
static inline uint32_t fm_sxtb16_ror8(uint32_t x) { return fm_sxtb16(fm_ror(x, 8)); }
static inline int32_t fm_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    const uint32_t sum = (uint32_t)acc + (uint32_t)(fm_lo16(x) * fm_lo16(y)) + (uint32_t)(fm_hi16(x) * fm_hi16(y));
    return (int32_t)sum;
}
static inline int32_t fm_smladx(uint32_t x, uint32_t y, int32_t acc)
{
    const uint32_t sum = (uint32_t)acc + (uint32_t)(fm_lo16(x) * fm_hi16(y)) + (uint32_t)(fm_hi16(x) * fm_lo16(y));
    return (int32_t)sum;
}
static inline int32_t fm_smlabb(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(fm_lo16(x) * fm_lo16(y)));
}
static inline int32_t fm_smlatt(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(fm_hi16(x) * fm_hi16(y)));
}
static inline int32_t fm_smlabt(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(fm_lo16(x) * fm_hi16(y)));
}
static inline int32_t fm_smlatb(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(fm_hi16(x) * fm_lo16(y)));
}
static inline uint32_t fm_sadd16(uint32_t x, uint32_t y)
{
    return fm_pack16(fm_lo16(x) + fm_lo16(y), fm_hi16(x) + fm_hi16(y));
}
static inline uint32_t fm_ssub16(uint32_t x, uint32_t y)
{
    return fm_pack16(fm_lo16(x) - fm_lo16(y), fm_hi16(x) - fm_hi16(y));
}
static inline uint32_t fm_sxtab16(uint32_t y, uint32_t x) { return fm_sadd16(y, fm_sxtb16(x)); }
static inline uint32_t fm_sxtab16_ror8(uint32_t y, uint32_t x) { return fm_sadd16(y, fm_sxtb16(fm_ror(x, 8))); }
static inline int32_t fm_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
static inline uint32_t fm_max_s8x4(uint32_t x, uint32_t y)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < 32; i += 8) {
        const int8_t a = (int8_t)(uint8_t)(x >> i), b = (int8_t)(uint8_t)(y >> i);
        r |= (uint32_t)(uint8_t)(a >= b ? a : b) << i;
    }
    return r;
}
static inline uint32_t fm_min_s8x4(uint32_t x, uint32_t y)
{
    uint32_t r = 0;
    for (unsigned i = 0; i < 32; i += 8) {
        const int8_t a = (int8_t)(uint8_t)(x >> i), b = (int8_t)(uint8_t)(y >> i);
        r |= (uint32_t)(uint8_t)(a >= b ? b : a) << i;
    }
    return r;
}

#endif /* FM_HAVE_DSP */

/* PKHBT(x, y, 16): low half of x, low half of y in the high half. PKHTB(x, y, 16): high half of x in the high
 * half, high half of y in the low half. Plain C: GCC emits PKHBT/PKHTB for these patterns on DSP cores. */
static inline uint32_t fm_pkhbt16(uint32_t x, uint32_t y) { return (x & 0xFFFFu) | (y << 16); }
static inline uint32_t fm_pkhtb16(uint32_t x, uint32_t y) { return (x & 0xFFFF0000u) | (y >> 16); }

/* Unaligned-safe loads and stores of packed words (memcpy compiles to one LDR/STR on cores that allow unaligned
 * access, and stays defined behaviour everywhere). */
static inline uint32_t fm_load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void fm_store_u32(void *p, uint32_t v) { memcpy(p, &v, sizeof v); }

/* Load 4 int8 and advance the pointer by 4. */
static inline uint32_t fm_read_s8x4(const int8_t **p)
{
    const uint32_t v = fm_load_u32(*p);
    *p += 4;
    return v;
}
/* Load two aligned words and advance the pointer by 2 words: one LDRD with post-increment on a DSP core (GCC 12
 * does not pair two word loads into LDRD by itself). The "m" operand tells the compiler which 8 bytes are read. */
typedef struct {
    uint32_t w[2];
} fm_u32x2_t;
static inline void fm_read_u32x2(const uint32_t **p, uint32_t *a, uint32_t *b)
{
#if FM_HAVE_DSP
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*a), "=r"(*b), "+r"(*p) : "m"(*(const fm_u32x2_t *)*p));
#else
    *a = (*p)[0];
    *b = (*p)[1];
    *p += 2;
#endif
}

/* Load 2 int16 and advance the pointer by 2. */
static inline uint32_t fm_read_s16x2(const int16_t **p)
{
    const uint32_t v = fm_load_u32(*p);
    *p += 2;
    return v;
}

#ifdef __cplusplus
}
#endif

#endif /* FM_ACLE_H */
