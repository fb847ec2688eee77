/* Per-layer timing (RUN flag FM_RUN_FLAG_PROFILE): the time between an op's two hook calls. */
#ifndef FM_PROFILER_H
#define FM_PROFILER_H

#include <stdint.h>

void fm_profiler_arm(uint8_t on);             /* on: record the ops of the inferences that follow */
void fm_profiler_op(int op_index, int phase); /* phase 0 before the op, 1 after it */

#endif
