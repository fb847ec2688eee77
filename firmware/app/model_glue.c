/*
 * Adapter between the code generator's model API (fm_model.h) and the app. Assumed API, see docs/protocol.md:
 *   FM_NUM_INPUTS, FM_NUM_OUTPUTS, FM_NUM_OPS, FM_ARENA_BYTES, FM_MODEL_HASH (hex string)
 *   const fm_tensor_info_t fm_input_info[], fm_output_info[]   (fm_runtime.h)
 *   const fm_op_info_t fm_op_info[]                            (fm_runtime.h: name, op_type, macs)
 *   void *fm_input_data(int i), *fm_output_data(int i); size_t fm_input_bytes(int i), fm_output_bytes(int i)
 *   int fm_invoke(void)   (FM_OK == 0)
 *   void fm_op_hook(int op_index, int phase)   implemented here (forwards to the registered listener)
 *   uint32_t fm_model_route(void)   subgraphs run by the last fm_invoke() (bit i = subgraph i); optional: the weak
 *                                   default below says "subgraph 0 only", which is right for single-graph models
 */
#include "model_glue.h"

#include "fm_model.h"

#ifndef FM_RUNTIME_VERSION
#define FM_RUNTIME_VERSION "unknown"
#endif

static uint32_t op_ticks[FM_NUM_OPS > 0 ? FM_NUM_OPS : 1];

/* A model that reuses its input bytes during fm_invoke() (FM_PRESERVES_INPUTS == 0, the arena-saving default)
 * gets its inputs from a staging copy before every run, outside the timed region, so N runs see the same input.
 * The copy needs FM_INPUT_BYTES_TOTAL bytes when the generator states it, else at most the arena size. */
#if defined(FM_PRESERVES_INPUTS) && !FM_PRESERVES_INPUTS
#define FM_GLUE_STAGE 1
#if defined(FM_INPUT_BYTES_TOTAL)
#define FM_GLUE_STAGE_BYTES FM_INPUT_BYTES_TOTAL
#else
#define FM_GLUE_STAGE_BYTES FM_ARENA_BYTES
#endif
static uint8_t stage[FM_GLUE_STAGE_BYTES > 0 ? FM_GLUE_STAGE_BYTES : 1] __attribute__((aligned(8)));

/* Offset of input i in the staging copy, or -1 when the inputs do not fit it. */
static long stage_offset(int i)
{
    size_t off = 0;
    for (int k = 0; k < i; k++) {
        off += fm_input_bytes(k);
    }
    if (off + fm_input_bytes(i) > sizeof stage) {
        return -1;
    }
    return (long)off;
}
#else
#define FM_GLUE_STAGE 0
#endif

void fm_glue_prepare(void)
{
#if FM_GLUE_STAGE
    for (int i = 0; i < FM_NUM_INPUTS; i++) {
        long off = stage_offset(i);
        uint8_t *dst = (uint8_t *)fm_input_data(i);
        if (off < 0 || !dst) {
            continue;
        }
        for (size_t k = 0; k < fm_input_bytes(i); k++) {
            dst[k] = stage[(size_t)off + k];
        }
    }
#endif
}

int fm_glue_num_inputs(void) { return FM_NUM_INPUTS; }
int fm_glue_num_outputs(void) { return FM_NUM_OUTPUTS; }

static void fill(const fm_tensor_info_t *info, void *data, size_t bytes, fm_glue_tensor_t *t)
{
    t->dtype = (uint8_t)info->dtype;
    t->ndim = (uint8_t)(info->ndim < 0 ? 0 : (info->ndim > FM_GLUE_MAX_DIMS ? FM_GLUE_MAX_DIMS : info->ndim));
    for (int d = 0; d < FM_GLUE_MAX_DIMS; d++) {
        t->dims[d] = d < t->ndim ? info->dims[d] : 0;
    }
    t->scale = info->scale;
    t->zero_point = info->zero_point;
    t->bytes = (uint32_t)bytes;
    t->data = (uint8_t *)data;
}

int fm_glue_input(int i, fm_glue_tensor_t *t)
{
    if (i < 0 || i >= FM_NUM_INPUTS || i >= FM_GLUE_MAX_TENSORS) {
        return -1;
    }
#if FM_GLUE_STAGE
    long off = stage_offset(i);
    if (off < 0) {
        return -1;
    }
    fill(&fm_input_info[i], stage + off, fm_input_bytes(i), t);
#else
    fill(&fm_input_info[i], fm_input_data(i), fm_input_bytes(i), t);
#endif
    return 0;
}

int fm_glue_output(int i, fm_glue_tensor_t *t)
{
    if (i < 0 || i >= FM_NUM_OUTPUTS || i >= FM_GLUE_MAX_TENSORS) {
        return -1;
    }
    fill(&fm_output_info[i], fm_output_data(i), fm_output_bytes(i), t);
    return 0;
}

int fm_glue_invoke(void) { return fm_invoke(); }

/* Declared here as well as (in newer generated code) in fm_model.h: code generated before multi-subgraph models
   has no fm_model_route(), and a model with one subgraph always runs subgraph 0 alone. A strong definition in the
   generated fm_model.c replaces this one at link time (weak functions are never inlined, so that holds). */
uint32_t fm_model_route(void);
__attribute__((weak)) uint32_t fm_model_route(void) { return 1u; }

uint32_t fm_glue_route(void) { return fm_model_route(); }
uint32_t fm_glue_arena_bytes(void) { return (uint32_t)FM_ARENA_BYTES; }
uint16_t fm_glue_num_ops(void) { return (uint16_t)FM_NUM_OPS; }
uint32_t *fm_glue_op_ticks(void) { return op_ticks; }

void fm_glue_clear_op_ticks(void)
{
    for (int i = 0; i < FM_NUM_OPS; i++) {
        op_ticks[i] = 0;
    }
}
const char *fm_glue_model_hash(void) { return FM_MODEL_HASH; }
const char *fm_glue_runtime_version(void) { return FM_RUNTIME_VERSION; }

int fm_glue_op(int i, const char **name, const char **op_type, uint32_t *macs)
{
    if (i < 0 || i >= FM_NUM_OPS) {
        return -1;
    }
    *name = fm_op_info[i].name ? fm_op_info[i].name : "";
    *op_type = fm_op_info[i].op_type ? fm_op_info[i].op_type : "";
    *macs = fm_op_info[i].macs;
    return 0;
}

static fm_glue_op_listener_t op_listener;

void fm_glue_set_op_listener(fm_glue_op_listener_t listener) { op_listener = listener; }

void fm_op_hook(int op_index, int phase)
{
    fm_glue_op_listener_t fn = op_listener;
    if (fn) {
        fn(op_index, phase);
    }
}
