/*
 * MVE (Helium) intrinsics for the helium kernel set: <arm_mve.h> on an Armv8.1-M core with MVE, and otherwise
 * portable C definitions of the subset the kernels use, with the architecture's lane semantics (wrapping integer
 * arithmetic, saturation and rounding where the instruction has them, predication: an inactive lane is neither
 * read nor written, zeroing loads return 0 in it), so the same kernel source runs on the host under ASan/UBSan.
 *
 * A predicate (mve_pred16_t) has one bit per byte of the 128-bit vector; a lane of 2 or 4 bytes is active when
 * its lowest byte's bit is set (VCTP sets all bits of an active lane).
 */
#ifndef FM_MVE_H
#define FM_MVE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define FM_MVE_NATIVE 1
/* Pins a vector in a register at this point: keeps GCC from reassociating unrolled accumulations into trees of
 * temporaries that spill (no code; nothing on the host). */
#define FM_MVE_KEEP(v) __asm__("" : "+w"(v))
#else
#define FM_MVE_NATIVE 0
#define FM_MVE_KEEP(v) ((void)0)
#include <string.h>

typedef struct { int8_t v[16]; } int8x16_t;
typedef struct { int16_t v[8]; } int16x8_t;
typedef struct { int32_t v[4]; } int32x4_t;
typedef struct { uint8_t v[16]; } uint8x16_t;
typedef uint16_t mve_pred16_t;

#define FM_MVE_FN static inline

/* two's-complement truncation without implementation-defined conversions */
FM_MVE_FN int32_t fm_mve_i32(int64_t x) { uint32_t u = (uint32_t)(uint64_t)x; return u < 0x80000000u ? (int32_t)u : (int32_t)(u - 0x80000000u) - 0x7fffffff - 1; }
FM_MVE_FN int16_t fm_mve_i16(int32_t x) { uint16_t u = (uint16_t)(uint32_t)x; return (int16_t)(u < 0x8000u ? (int32_t)u : (int32_t)u - 0x10000); }
FM_MVE_FN int8_t fm_mve_i8(int32_t x) { uint8_t u = (uint8_t)(uint32_t)x; return (int8_t)(u < 0x80u ? (int32_t)u : (int32_t)u - 0x100); }
FM_MVE_FN int fm_mve_on(mve_pred16_t p, int lane, int bytes) { return (p >> (lane * bytes)) & 1; }

/* ---- predicates ---- */
FM_MVE_FN mve_pred16_t fm_mve_ctp(uint32_t n, int bytes)
{
    uint32_t active = n * (uint32_t)bytes;
    if (n >= 16u || active >= 16u) return 0xffffu;
    return (mve_pred16_t)((1u << active) - 1u);
}
FM_MVE_FN mve_pred16_t vctp8q(uint32_t n) { return fm_mve_ctp(n, 1); }
FM_MVE_FN mve_pred16_t vctp16q(uint32_t n) { return fm_mve_ctp(n, 2); }
FM_MVE_FN mve_pred16_t vctp32q(uint32_t n) { return fm_mve_ctp(n, 4); }

/* ---- duplicates and lanes ---- */
FM_MVE_FN int8x16_t vdupq_n_s8(int8_t x) { int8x16_t r; for (int i = 0; i < 16; ++i) r.v[i] = x; return r; }
FM_MVE_FN int16x8_t vdupq_n_s16(int16_t x) { int16x8_t r; for (int i = 0; i < 8; ++i) r.v[i] = x; return r; }
FM_MVE_FN int32x4_t vdupq_n_s32(int32_t x) { int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = x; return r; }
FM_MVE_FN int32x4_t vsetq_lane_s32(int32_t x, int32x4_t q, int lane) { q.v[lane & 3] = x; return q; }
FM_MVE_FN int32_t vgetq_lane_s32(int32x4_t q, int lane) { return q.v[lane & 3]; }

/* ---- loads (widening: sign-extend each byte / halfword) ---- */
FM_MVE_FN int8x16_t vldrbq_z_s8(const int8_t *p, mve_pred16_t m)
{ int8x16_t r; for (int i = 0; i < 16; ++i) r.v[i] = fm_mve_on(m, i, 1) ? p[i] : 0; return r; }
FM_MVE_FN int8x16_t vldrbq_s8(const int8_t *p) { return vldrbq_z_s8(p, 0xffffu); }
FM_MVE_FN int16x8_t vldrbq_z_s16(const int8_t *p, mve_pred16_t m)
{ int16x8_t r; for (int i = 0; i < 8; ++i) r.v[i] = fm_mve_on(m, i, 2) ? p[i] : 0; return r; }
FM_MVE_FN int16x8_t vldrbq_s16(const int8_t *p) { return vldrbq_z_s16(p, 0xffffu); }
FM_MVE_FN int32x4_t vldrbq_z_s32(const int8_t *p, mve_pred16_t m)
{ int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = fm_mve_on(m, i, 4) ? p[i] : 0; return r; }
FM_MVE_FN int32x4_t vldrbq_s32(const int8_t *p) { return vldrbq_z_s32(p, 0xffffu); }
FM_MVE_FN int16x8_t vldrhq_z_s16(const int16_t *p, mve_pred16_t m)
{ int16x8_t r; for (int i = 0; i < 8; ++i) r.v[i] = fm_mve_on(m, i, 2) ? p[i] : 0; return r; }
FM_MVE_FN int16x8_t vldrhq_s16(const int16_t *p) { return vldrhq_z_s16(p, 0xffffu); }
FM_MVE_FN int32x4_t vldrwq_z_s32(const int32_t *p, mve_pred16_t m)
{ int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = fm_mve_on(m, i, 4) ? p[i] : 0; return r; }
FM_MVE_FN int32x4_t vldrwq_s32(const int32_t *p) { return vldrwq_z_s32(p, 0xffffu); }

FM_MVE_FN uint8x16_t vldrbq_u8(const uint8_t *p) { uint8x16_t r; for (int i = 0; i < 16; ++i) r.v[i] = p[i]; return r; }
/* gather: lane i = base[offset[i]] */
FM_MVE_FN int8x16_t vldrbq_gather_offset_s8(const int8_t *base, uint8x16_t offset)
{ int8x16_t r; for (int i = 0; i < 16; ++i) r.v[i] = base[offset.v[i]]; return r; }

/* ---- stores (narrowing: the low byte of each lane) ---- */
FM_MVE_FN void vstrbq_p_s8(int8_t *p, int8x16_t q, mve_pred16_t m)
{ for (int i = 0; i < 16; ++i) if (fm_mve_on(m, i, 1)) p[i] = q.v[i]; }
FM_MVE_FN void vstrbq_s8(int8_t *p, int8x16_t q) { vstrbq_p_s8(p, q, 0xffffu); }
FM_MVE_FN void vstrbq_p_s16(int8_t *p, int16x8_t q, mve_pred16_t m)
{ for (int i = 0; i < 8; ++i) if (fm_mve_on(m, i, 2)) p[i] = fm_mve_i8(q.v[i]); }
FM_MVE_FN void vstrbq_s16(int8_t *p, int16x8_t q) { vstrbq_p_s16(p, q, 0xffffu); }
FM_MVE_FN void vstrbq_p_s32(int8_t *p, int32x4_t q, mve_pred16_t m)
{ for (int i = 0; i < 4; ++i) if (fm_mve_on(m, i, 4)) p[i] = fm_mve_i8(q.v[i]); }
FM_MVE_FN void vstrbq_s32(int8_t *p, int32x4_t q) { vstrbq_p_s32(p, q, 0xffffu); }
FM_MVE_FN void vstrhq_s16(int16_t *p, int16x8_t q) { for (int i = 0; i < 8; ++i) p[i] = q.v[i]; }
FM_MVE_FN void vstrwq_s32(int32_t *p, int32x4_t q) { for (int i = 0; i < 4; ++i) p[i] = q.v[i]; }

/* ---- reductions: the scalar accumulator wraps modulo 2^32 as the instruction's does ---- */
FM_MVE_FN int32_t vmladavaq_s8(int32_t a, int8x16_t x, int8x16_t y)
{ int64_t s = a; for (int i = 0; i < 16; ++i) s += (int32_t)x.v[i] * y.v[i]; return fm_mve_i32(s); }
FM_MVE_FN int32_t vmladavq_s8(int8x16_t x, int8x16_t y) { return vmladavaq_s8(0, x, y); }
FM_MVE_FN int32_t vaddvaq_s8(int32_t a, int8x16_t x)
{ int64_t s = a; for (int i = 0; i < 16; ++i) s += x.v[i]; return fm_mve_i32(s); }

/* ---- int32 lane arithmetic ---- */
FM_MVE_FN int32x4_t vaddq_s32(int32x4_t a, int32x4_t b)
{ for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_i32((int64_t)a.v[i] + b.v[i]); return a; }
FM_MVE_FN int32x4_t vaddq_n_s32(int32x4_t a, int32_t b)
{ for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_i32((int64_t)a.v[i] + b); return a; }
FM_MVE_FN int32x4_t vqaddq_s32(int32x4_t a, int32x4_t b)
{
    for (int i = 0; i < 4; ++i) {
        int64_t s = (int64_t)a.v[i] + b.v[i];
        a.v[i] = s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
    }
    return a;
}
FM_MVE_FN int32x4_t vandq_s32(int32x4_t a, int32x4_t b)
{ for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_i32((int64_t)((uint32_t)a.v[i] & (uint32_t)b.v[i])); return a; }
FM_MVE_FN int32x4_t vmaxq_s32(int32x4_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return a; }
FM_MVE_FN int32x4_t vminq_s32(int32x4_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return a; }
/* arithmetic shift right by an immediate 1..32 */
FM_MVE_FN int32x4_t vshrq_n_s32(int32x4_t a, int n)
{ for (int i = 0; i < 4; ++i) a.v[i] = (int32_t)(n >= 32 ? (a.v[i] < 0 ? -1 : 0) : (a.v[i] >> n)); return a; }
FM_MVE_FN int32_t fm_mve_shl(int32_t x, int32_t s, int rounding)
{
    s = (int8_t)(uint8_t)(uint32_t)s; /* the instruction reads the low byte as a signed shift */
    if (s >= 32) return 0;
    if (s >= 0) return fm_mve_i32((int64_t)((uint64_t)(uint32_t)x << s));
    if (s < -40) s = -40; /* any right shift past 32 gives what 40 gives: the sign, or 0 when rounding */
    int64_t v = x;
    if (rounding) v += (int64_t)1 << (-s - 1);
    return fm_mve_i32(v >> -s); /* arithmetic shift of a signed 64-bit value (gcc, clang) */
}
/* shift each lane left by the signed low byte of b's lane (negative: truncating right shift), no saturation */
FM_MVE_FN int32x4_t vshlq_s32(int32x4_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_shl(a.v[i], b.v[i], 0); return a; }
/* as vshlq_s32, right shifts rounding (add 2^(n-1) first, at full precision) */
FM_MVE_FN int32x4_t vrshlq_s32(int32x4_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_shl(a.v[i], b.v[i], 1); return a; }
FM_MVE_FN int32x4_t vrshlq_n_s32(int32x4_t a, int32_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_shl(a.v[i], b, 1); return a; }
/* shift every lane by the signed low byte of a register (VSHL.S32 Qda, Rm) */
FM_MVE_FN int32x4_t vshlq_r_s32(int32x4_t a, int32_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_shl(a.v[i], b, 0); return a; }
FM_MVE_FN int32x4_t vshlq_n_s32(int32x4_t a, int n) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_shl(a.v[i], n, 0); return a; }
/* saturate((2*a*b + 2^31) >> 32) */
FM_MVE_FN int32_t fm_mve_qrdmulh(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX; /* the only product that saturates (2ab = 2^63) */
    return (int32_t)((2 * (int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
FM_MVE_FN int32x4_t vqrdmulhq_s32(int32x4_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_qrdmulh(a.v[i], b.v[i]); return a; }
FM_MVE_FN int32x4_t vqrdmulhq_n_s32(int32x4_t a, int32_t b) { for (int i = 0; i < 4; ++i) a.v[i] = fm_mve_qrdmulh(a.v[i], b); return a; }

/* ---- int16 <-> int32 ---- */
/* products of the even (b: bottom) / odd (t: top) int16 lanes, as int32 */
FM_MVE_FN int32x4_t vmullbq_int_s16(int16x8_t a, int16x8_t b)
{ int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = (int32_t)a.v[2 * i] * b.v[2 * i]; return r; }
FM_MVE_FN int32x4_t vmulltq_int_s16(int16x8_t a, int16x8_t b)
{ int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = (int32_t)a.v[2 * i + 1] * b.v[2 * i + 1]; return r; }
/* narrow b's lanes into the even (b) / odd (t) int16 lanes of a, keeping a's other lanes */
FM_MVE_FN int16x8_t vmovnbq_s32(int16x8_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[2 * i] = fm_mve_i16(b.v[i]); return a; }
FM_MVE_FN int16x8_t vmovntq_s32(int16x8_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[2 * i + 1] = fm_mve_i16(b.v[i]); return a; }
/* widen the even / odd int16 lanes to int32 */
FM_MVE_FN int32x4_t vmovlbq_s16(int16x8_t a) { int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[2 * i]; return r; }
FM_MVE_FN int32x4_t vmovltq_s16(int16x8_t a) { int32x4_t r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[2 * i + 1]; return r; }
/* saturate b's lanes to int16 into the even (b) / odd (t) lanes of a, keeping a's other lanes */
FM_MVE_FN int16_t fm_mve_sat16(int32_t x) { return (int16_t)(x > INT16_MAX ? INT16_MAX : (x < INT16_MIN ? INT16_MIN : x)); }
FM_MVE_FN int16x8_t vqmovnbq_s32(int16x8_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[2 * i] = fm_mve_sat16(b.v[i]); return a; }
FM_MVE_FN int16x8_t vqmovntq_s32(int16x8_t a, int32x4_t b) { for (int i = 0; i < 4; ++i) a.v[2 * i + 1] = fm_mve_sat16(b.v[i]); return a; }
FM_MVE_FN int16x8_t vreinterpretq_s16_s32(int32x4_t a) { int16x8_t r; memcpy(r.v, a.v, sizeof r.v); return r; }
FM_MVE_FN int16x8_t vqaddq_n_s16(int16x8_t a, int16_t b)
{ for (int i = 0; i < 8; ++i) a.v[i] = fm_mve_sat16((int32_t)a.v[i] + b); return a; }
FM_MVE_FN int16x8_t vmaxq_s16(int16x8_t a, int16x8_t b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return a; }
FM_MVE_FN int16x8_t vminq_s16(int16x8_t a, int16x8_t b) { for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return a; }
FM_MVE_FN int16x8_t vaddq_s16(int16x8_t a, int16x8_t b)
{ for (int i = 0; i < 8; ++i) a.v[i] = fm_mve_i16((int32_t)a.v[i] + b.v[i]); return a; }

/* ---- int8 lanes ---- */
FM_MVE_FN int8x16_t vmaxq_s8(int8x16_t a, int8x16_t b) { for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i]; return a; }
FM_MVE_FN int8x16_t vminq_s8(int8x16_t a, int8x16_t b) { for (int i = 0; i < 16; ++i) a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i]; return a; }

#endif /* MVE */
#endif /* FM_MVE_H */
