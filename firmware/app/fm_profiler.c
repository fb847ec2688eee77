#include "fm_profiler.h"

#include "fm_port.h"
#include "model_glue.h"

static volatile uint8_t profiling;
static uint32_t op_start;

void fm_profiler_arm(uint8_t on) { profiling = on; }

void fm_profiler_op(int op_index, int phase)
{
    if (!profiling) {
        return;
    }
    uint32_t now = fm_timer_now();
    if (phase == 0) {
        op_start = now;
    } else if (op_index >= 0 && op_index < (int)fm_glue_num_ops()) {
        fm_glue_op_ticks()[op_index] += now - op_start; /* FM_NUM_OPS slots, cleared per inference; summed
                                                           over the patches of a patch-based stage */
    }
}
