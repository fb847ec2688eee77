/*
 * The app's only view of the generated model. model_glue.c is the single file that includes fm_model.h,
 * so a change in the code generator's C API is a change in one file.
 */
#ifndef FM_MODEL_GLUE_H
#define FM_MODEL_GLUE_H

#include <stddef.h>
#include <stdint.h>

#define FM_GLUE_MAX_DIMS 6
#define FM_GLUE_MAX_TENSORS 8

typedef struct {
    uint8_t dtype; /* TFLite TensorType numbering: 0 float32, 2 int32, 3 uint8, 7 int16, 9 int8 */
    uint8_t ndim;
    int32_t dims[FM_GLUE_MAX_DIMS];
    float scale;
    int32_t zero_point;
    uint32_t bytes;
    uint8_t *data;
} fm_glue_tensor_t;

int fm_glue_num_inputs(void);
int fm_glue_num_outputs(void);
/* 0 and *t filled, or -1 when i is out of range. */
int fm_glue_input(int i, fm_glue_tensor_t *t);
int fm_glue_output(int i, fm_glue_tensor_t *t);
void fm_glue_prepare(void); /* call before each fm_glue_invoke(): restores inputs the model may overwrite */
int fm_glue_invoke(void);   /* 0 on success */
/* The route of the last fm_glue_invoke(): bit i set when subgraph i ran (bit 0: the main graph; bit 31 also
   stands for every subgraph beyond 31). 1 for models with a single subgraph. */
uint32_t fm_glue_route(void);
uint32_t fm_glue_arena_bytes(void);
uint16_t fm_glue_num_ops(void);
int fm_glue_op(int i, const char **name, const char **op_type, uint32_t *macs);
uint32_t *fm_glue_op_ticks(void); /* FM_NUM_OPS slots for per-op timings */
void fm_glue_clear_op_ticks(void); /* zero them: ops a route skips then read 0, not an older inference's time */
const char *fm_glue_model_hash(void);
const char *fm_glue_runtime_version(void);

/* The model's fm_op_hook(op, phase) goes to this listener (phase 0 before op, 1 after it); none by default.
   Called inside the timed region: keep it short. */
typedef void (*fm_glue_op_listener_t)(int op_index, int phase);
void fm_glue_set_op_listener(fm_glue_op_listener_t listener); /* 0 removes it */

#endif
