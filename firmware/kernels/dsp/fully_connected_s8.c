/*
 * FULLY_CONNECTED int8 (TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel, bit-exact) for
 * Armv7E-M DSP: per batch row, a GEMV blocked by 4 output rows, so each input word (4 int8, widened by SXTB16 and
 * SXTB16-ROR8) feeds 8 SMLADs; per block of depth 4: 1 LDR, 2 SXTB16, 4 LDRD, 8 SMLAD for 16 MACs.
 *
 * Layouts (host/formicary/codegen/sets/dsp/gemm.py): rows in blocks of 4 (padded with zero rows), per block
 * depth/4 blocks (depth padded to a multiple of 4 with zeros) of 4 rows, each row
 * - FM_DSP_LAYOUT_FC_GEMV: (k0,k2),(k1,k3) as int16 words holding w + filter_offset (pre-extended, fastest);
 * - FM_DSP_LAYOUT_FC_GEMV8: k0..k3 as int8 in one word (compact; filter_offset 0), widened in the loop by
 *   SXTB16 / SXTB16-ROR8: 2 more instructions per row and depth block.
 * folded_bias = bias + input_offset * sum(w + filter_offset), so the loop adds no offsets. No scratch.
 */
#include "fm_dsp_gemm.h"

int fm_fully_connected_s8(const fm_fully_connected_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    const int wide = p->packed_layout == FM_DSP_LAYOUT_FC_GEMV;
    if ((!wide && p->packed_layout != FM_DSP_LAYOUT_FC_GEMV8) || p->packed_filter == NULL || p->folded_bias == NULL) {
        return FM_ERR_PARAM;
    }
    const int32_t depth = p->accum_depth, rows = p->output_depth;
    const int32_t full = depth / 4, tail = depth % 4;
    const int32_t blocks = full + (tail != 0);
    const uint32_t *weights = (const uint32_t *)(const void *)p->packed_filter;
    const fm_dsp_out_t os = fm_dsp_out(p->output_offset, p->act_min, p->act_max);

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_row = input + (size_t)b * depth;
        int8_t *out_row = output + (size_t)b * rows;
        const uint32_t *w = weights;
        for (int32_t r0 = 0; r0 < rows; r0 += 4) {
            int32_t acc[4];
            for (int32_t i = 0; i < 4; ++i) {
                acc[i] = r0 + i < rows ? p->folded_bias[r0 + i] : 0;
            }
            int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
            const int8_t *x = in_row;
            if (wide) {
                for (int32_t n = 0; n < blocks; ++n, x += 4, w += 8) {
                    const uint32_t xw = n < full ? fm_load_u32(x) : fm_dsp_tail_word(x, tail);
                    const uint32_t xa = fm_sxtb16(xw), xb = fm_sxtb16_ror8(xw);
                    a0 = fm_smlad(xa, w[0], a0);
                    a0 = fm_smlad(xb, w[1], a0);
                    a1 = fm_smlad(xa, w[2], a1);
                    a1 = fm_smlad(xb, w[3], a1);
                    a2 = fm_smlad(xa, w[4], a2);
                    a2 = fm_smlad(xb, w[5], a2);
                    a3 = fm_smlad(xa, w[6], a3);
                    a3 = fm_smlad(xb, w[7], a3);
                }
            } else {
                for (int32_t n = 0; n < blocks; ++n, x += 4, w += 4) {
                    const uint32_t xw = n < full ? fm_load_u32(x) : fm_dsp_tail_word(x, tail);
                    const uint32_t xa = fm_sxtb16(xw), xb = fm_sxtb16_ror8(xw);
                    a0 = fm_smlad(xa, fm_sxtb16(w[0]), a0);
                    a0 = fm_smlad(xb, fm_sxtb16_ror8(w[0]), a0);
                    a1 = fm_smlad(xa, fm_sxtb16(w[1]), a1);
                    a1 = fm_smlad(xb, fm_sxtb16_ror8(w[1]), a1);
                    a2 = fm_smlad(xa, fm_sxtb16(w[2]), a2);
                    a2 = fm_smlad(xb, fm_sxtb16_ror8(w[2]), a2);
                    a3 = fm_smlad(xa, fm_sxtb16(w[3]), a3);
                    a3 = fm_smlad(xb, fm_sxtb16_ror8(w[3]), a3);
                }
            }
            acc[0] = a0;
            acc[1] = a1;
            acc[2] = a2;
            acc[3] = a3;
            for (int32_t i = 0; i < 4 && r0 + i < rows; ++i) {
                const int32_t ch = p->per_channel ? r0 + i : 0;
                out_row[r0 + i] = fm_dsp_out1(acc[i], p->multiplier[ch], p->shift[ch], &os);
            }
        }
    }
    return FM_OK;
}
