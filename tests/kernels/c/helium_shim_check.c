/* Host check of firmware/kernels/helium/fm_mve.h's portable intrinsics against known lane values, and of the vector
 * requantization (fm_he_requant) against the scalar TFLM one (fm_mbqm) over random and edge inputs. Prints "ok". */
#include <stdio.h>
#include "fm_helium.h"

static int fails = 0;
#define CHECK(c) do { if (!(c)) { printf("FAIL line %d: %s\n", __LINE__, #c); ++fails; } } while (0)

static uint32_t rng = 12345u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

int main(void)
{
    /* VQRDMULH: rounding doubling high half, saturating INT32_MIN * INT32_MIN */
    int32x4_t a = vdupq_n_s32(INT32_MIN), b = vdupq_n_s32(INT32_MIN);
    CHECK(vgetq_lane_s32(vqrdmulhq_s32(a, b), 0) == INT32_MAX);
    CHECK(vgetq_lane_s32(vqrdmulhq_s32(vdupq_n_s32(1 << 30), vdupq_n_s32(1 << 30)), 1) == 1 << 29);
    CHECK(vgetq_lane_s32(vqrdmulhq_s32(vdupq_n_s32(-3), vdupq_n_s32(1 << 30)), 2) == -1); /* -1.5 -> -1 (ties up) */
    /* VRSHL: ties round up; VSHL: truncating right shift, wrapping left shift */
    CHECK(vgetq_lane_s32(vrshlq_s32(vdupq_n_s32(-3), vdupq_n_s32(-1)), 0) == -1);
    CHECK(vgetq_lane_s32(vrshlq_s32(vdupq_n_s32(3), vdupq_n_s32(-1)), 0) == 2);
    CHECK(vgetq_lane_s32(vrshlq_s32(vdupq_n_s32(INT32_MAX), vdupq_n_s32(-1)), 0) == 1 << 30);
    CHECK(vgetq_lane_s32(vshlq_s32(vdupq_n_s32(-3), vdupq_n_s32(-1)), 0) == -2);
    CHECK(vgetq_lane_s32(vshlq_s32(vdupq_n_s32(0x40000001), vdupq_n_s32(2)), 0) == 4);
    CHECK(vgetq_lane_s32(vqaddq_s32(vdupq_n_s32(INT32_MIN), vdupq_n_s32(-1)), 0) == INT32_MIN);
    /* predication: vctp, zeroing loads, predicated stores */
    CHECK(vctp8q(3) == 0x7 && vctp16q(3) == 0x3f && vctp32q(1) == 0xf && vctp32q(9) == 0xffff);
    int8_t src[16], dst[16];
    for (int i = 0; i < 16; ++i) { src[i] = (int8_t)(i - 8); dst[i] = 99; }
    int16x8_t h = vldrbq_z_s16(src, vctp16q(3));
    CHECK(h.v[0] == -8 && h.v[2] == -6 && h.v[3] == 0);
    vstrbq_p_s8(dst, vldrbq_s8(src), vctp8q(5));
    CHECK(dst[4] == -4 && dst[5] == 99);
    /* reductions wrap; widening multiplies; narrowing moves */
    CHECK(vmladavaq_s8(INT32_MAX, vdupq_n_s8(1), vdupq_n_s8(1)) == INT32_MIN + 15);
    CHECK(vmladavq_s8(vdupq_n_s8(-128), vdupq_n_s8(-128)) == 16 * 16384);
    int16x8_t x = vldrbq_s16(src), y = vdupq_n_s16(-3);
    CHECK(vgetq_lane_s32(vmullbq_int_s16(x, y), 1) == 18 && vgetq_lane_s32(vmulltq_int_s16(x, y), 1) == 15);
    int16x8_t n = vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), vdupq_n_s32(70000)), vdupq_n_s32(-2));
    CHECK(n.v[0] == (int16_t)(70000 - 65536) && n.v[1] == -2);
    CHECK(vaddvaq_s8(5, vldrbq_s8(src)) == 5 - 8);

    /* vector requantization == fm_mbqm, lane by lane, shifts -31..+10 and accumulators over all of int32 */
    for (int it = 0; it < 2000000 && !fails; ++it) {
        int32_t q[12];
        int32_t acc[4];
        for (int l = 0; l < 4; ++l) {
            const int32_t shift = (int32_t)(next() % 42) - 31;
            q[l] = (int32_t)(0x40000000u + (next() & 0x3fffffffu));
            if (it % 7 == 0) q[l] = INT32_MAX;
            q[4 + l] = shift > 0 ? shift : 0;
            q[8 + l] = shift < 0 ? shift : 0;
            const uint32_t r = next();
            acc[l] = it % 5 == 0 ? (int32_t)(r % 2001u) - 1000 : (it % 11 == 0 ? INT32_MIN + (int32_t)(r % 3u)
                                                                                : (int32_t)r);
        }
        int32x4_t v = vldrwq_s32(acc);
        int32x4_t out = fm_he_requant(v, q, 0, INT32_MIN, INT32_MAX);
        for (int l = 0; l < 4; ++l) {
            const int32_t want = fm_mbqm(acc[l], q[l], q[4 + l] + q[8 + l]);
            if (vgetq_lane_s32(out, l) != want) {
                printf("FAIL requant acc=%d mult=%d shift=%d: %d vs %d\n", acc[l], q[l], q[4 + l] + q[8 + l],
                       vgetq_lane_s32(out, l), want);
                ++fails;
                break;
            }
        }
    }
    if (!fails) {
        printf("ok\n");
    }
    return fails != 0;
}
