/* Host check of firmware/kernels/helium/fm_mve.h's portable intrinsics against known lane values, and of the vector
 * requantization (fm_he_requant, fm_he_scale_v in both forms, fm_he_out8) against the scalar TFLM one (fm_mbqm) over
 * random and edge inputs. Prints "ok". */
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
    /* saturating narrows into even / odd int16 lanes, saturating int16 add, register shift, byte gather */
    int16x8_t sn = vqmovntq_s32(vqmovnbq_s32(vdupq_n_s16(7), vdupq_n_s32(70000)), vdupq_n_s32(-70000));
    CHECK(sn.v[0] == INT16_MAX && sn.v[1] == INT16_MIN && sn.v[6] == INT16_MAX && sn.v[7] == INT16_MIN);
    CHECK(vqaddq_n_s16(vdupq_n_s16(32700), 100).v[3] == INT16_MAX && vqaddq_n_s16(vdupq_n_s16(-5), -3).v[0] == -8);
    CHECK(vgetq_lane_s32(vshlq_r_s32(vdupq_n_s32(-3), 20), 1) == -3 * (1 << 20));
    const uint8_t go[16] = {15, 0, 3, 3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    int8_t gb[16];
    for (int i = 0; i < 16; ++i) gb[i] = (int8_t)(i * 3 - 20);
    const int8x16_t g = vldrbq_gather_offset_s8(gb, vldrbq_u8(go));
    CHECK(g.v[0] == 25 && g.v[1] == -20 && g.v[2] == -11 && g.v[3] == -11);

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
        /* fm_he_scale_v: the general form always, the maskless one (FM_HE_LAYOUT_NO_LS) when every shift < 0 */
        const int32x4_t mv = vldrwq_s32(q), lsv = vldrwq_s32(q + 4), rsv = vldrwq_s32(q + 8);
        const int32x4_t gen = fm_he_scale_v(v, mv, lsv, rsv, 1);
        const int all_rs = q[8] < 0 && q[9] < 0 && q[10] < 0 && q[11] < 0;
        const int32x4_t fast = all_rs ? fm_he_scale_v(v, mv, lsv, rsv, 0) : gen;
        /* fm_he_out8 (saturate to int16, offset, clamp) == clamp(x + offset) for int8 offsets and bounds */
        const int16_t off = (int16_t)((int32_t)(next() % 256u) - 128);
        const int16x8_t o8 = fm_he_out8(gen, fast, off, vdupq_n_s16(-128), vdupq_n_s16(127));
        for (int l = 0; l < 4; ++l) {
            const int32_t want = fm_mbqm(acc[l], q[l], q[4 + l] + q[8 + l]);
            const int64_t c = (int64_t)want + off;
            const int16_t want8 = (int16_t)(c < -128 ? -128 : (c > 127 ? 127 : c));
            if (vgetq_lane_s32(gen, l) != want || vgetq_lane_s32(fast, l) != want || o8.v[2 * l] != want8
                || o8.v[2 * l + 1] != want8) {
                printf("FAIL scale_v/out8 acc=%d mult=%d shift=%d\n", acc[l], q[l], q[4 + l] + q[8 + l]);
                ++fails;
                break;
            }
        }
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
