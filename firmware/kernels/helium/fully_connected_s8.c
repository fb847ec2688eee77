/*
 * FULLY_CONNECTED int8, per-tensor or per-channel (TFLM reference_integer_ops::FullyConnected(PerChannel),
 * bit-exact), Helium/MVE: the batch rows times the packed weight matrix (FM_HE_LAYOUT_GEMM, fm_helium.h), two rows
 * against a block of four outputs per 16-deep chunk of VMLADAVA. The bias, input offset and the filter offset's
 * weight-side terms are folded into one constant per output at codegen; a per-tensor filter zero point leaves
 * filter_offset * sum(input row) to add at run time. Per-tensor requantization uses a replicated table.
 */
#include "fm_helium.h"

int fm_fully_connected_s8(const fm_fully_connected_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch)
{
    (void)scratch;
    if ((p->packed_layout & ~FM_HE_LAYOUT_NO_LS) != FM_HE_LAYOUT_GEMM || p->packed_filter == NULL || p->folded_bias == NULL) {
        return FM_ERR_PARAM; /* not packed for this set */
    }
    const int32_t k = p->accum_depth;
    const fm_he_gemm_t g = {p->packed_filter, p->folded_bias, (const int32_t *)p->packed_aux, p->output_depth, k,
                            (k + 15) & ~15, p->output_offset, p->act_min, p->act_max, p->filter_offset,
                            !(p->packed_layout & FM_HE_LAYOUT_NO_LS)};
    fm_he_gemm_any(&g, input, k, p->batches, output, p->output_depth);
    return FM_OK;
}
