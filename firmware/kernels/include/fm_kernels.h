/*
 * formicary-rt kernels: one declaration block per op, implemented by every kernel set. Every kernel returns
 * FM_OK (0) or an FM_ERR_* code, takes a const parameter struct (generated into flash by `formicary codegen`)
 * and tensor data pointers, never allocates, and matches TFLM's reference kernel bit for bit (int8) or within
 * tolerance (float32).
 *
 * Naming: fm_<op>_<type>() implemented in firmware/kernels/<set>/<op>_<type>.c (s8 = int8, f32 = float32); the
 * reference set (firmware/kernels/reference/) has every file, other sets the ones they improve (docs/codegen.md).
 * Scratch: kernels that may need working memory (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D,
 * TRANSPOSE_CONV int8) take `void *scratch` last: this op's area of the arena, as many bytes as the kernel set
 * declared for the op's shapes (host/formicary/codegen/kernel_sets.py), aligned to 4, or NULL when the set declared
 * none.
 * Layout: NHWC activations; CONV filters [out_c, kh, kw, in_c]; DEPTHWISE filters [1, kh, kw, out_c];
 * FULLY_CONNECTED filters [out_depth, accum_depth] (TFLite layouts, unchanged), unless an optimized set packed
 * them ahead of time (packed_* fields below; `filter` is then NULL).
 */
#ifndef FM_KERNELS_H
#define FM_KERNELS_H

#include "fm_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================= convolution family, pooling, softmax: int8 ======================= */

/* ---- CONV_2D int8, per-channel requantization (conv2d_s8.c) ----
 * Grouped convolution when filter_dims.c < input_dims.c (groups = input c / filter c). */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;  /* [out_c, kh, kw, in_c / groups] */
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;     /* leading padding as tflite::ComputePaddingHeightWidth */
    int32_t input_offset;     /* -input zero point */
    int32_t output_offset;    /* output zero point */
    int32_t act_min, act_max; /* fused activation clamp, quantized */
    const int8_t *filter;
    const int32_t *bias;      /* [out_c] or NULL */
    const int32_t *multiplier; /* [out_c] */
    const int32_t *shift;      /* [out_c] */
    /* Ahead-of-time data of an optimized kernel set, written by the set's packer at codegen
     * (host/formicary/codegen/sets/); when present, `filter` and `bias` are NULL. The reference kernels read none. */
    const int8_t *packed_filter;  /* the weights in the set's micro-kernel layout (packed_layout says which) */
    const int32_t *folded_bias;   /* [out_c]: bias + input_offset * sum of the channel's weights, or NULL */
    const void *packed_aux;       /* set-defined extra table, or NULL */
    int32_t packed_layout;        /* set-defined layout id; 0: TFLite layout in `filter` */
} fm_conv_s8_params_t;
int fm_conv2d_s8(const fm_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch);

/* ---- DEPTHWISE_CONV_2D int8, per-channel (depthwise_conv2d_s8.c) ----
 * output channel = in_channel * depth_multiplier + m. */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;   /* [1, kh, kw, out_c] */
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t depth_multiplier;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *filter;
    const int32_t *bias;      /* [out_c] or NULL */
    const int32_t *multiplier; /* [out_c] */
    const int32_t *shift;      /* [out_c] */
    /* Ahead-of-time data of an optimized kernel set, written by the set's packer at codegen
     * (host/formicary/codegen/sets/); when present, `filter` and `bias` are NULL. The reference kernels read none. */
    const int8_t *packed_filter;  /* the weights in the set's micro-kernel layout (packed_layout says which) */
    const int32_t *folded_bias;   /* [out_c]: bias + input_offset * sum of the channel's weights, or NULL */
    const void *packed_aux;       /* set-defined extra table, or NULL */
    int32_t packed_layout;        /* set-defined layout id; 0: TFLite layout in `filter` */
} fm_depthwise_conv_s8_params_t;
int fm_depthwise_conv2d_s8(const fm_depthwise_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch);

/* ---- FULLY_CONNECTED int8, per-tensor or per-channel (fully_connected_s8.c) ---- */
typedef struct {
    int32_t batches;          /* product of all output dims but the last */
    int32_t accum_depth;      /* filter dims[1] */
    int32_t output_depth;     /* filter dims[0] */
    int32_t input_offset;     /* -input zero point */
    int32_t filter_offset;    /* -filter zero point */
    int32_t output_offset;    /* output zero point */
    int32_t act_min, act_max;
    int32_t per_channel;      /* 0: multiplier[0]/shift[0] for all outputs */
    const int8_t *filter;
    const int32_t *bias;      /* [output_depth] or NULL */
    const int32_t *multiplier;
    const int32_t *shift;
    /* Ahead-of-time data of an optimized kernel set, written by the set's packer at codegen
     * (host/formicary/codegen/sets/); when present, `filter` and `bias` are NULL. The reference kernels read none. */
    const int8_t *packed_filter;  /* the weights in the set's micro-kernel layout (packed_layout says which) */
    const int32_t *folded_bias;   /* [out_c]: bias + input_offset * sum of the channel's weights, or NULL */
    const void *packed_aux;       /* set-defined extra table, or NULL */
    int32_t packed_layout;        /* set-defined layout id; 0: TFLite layout in `filter` */
} fm_fully_connected_s8_params_t;
int fm_fully_connected_s8(const fm_fully_connected_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch);

/* ---- pooling parameters, shared by AVERAGE_POOL_2D and MAX_POOL_2D ---- */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t output_dims;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max; /* quantized clamp (int8) */
    float act_min_f, act_max_f; /* float clamp (f32 kernels) */
} fm_pool_params_t;

/* ---- AVERAGE_POOL_2D int8 (average_pool2d_s8.c): TFLM rounding (half away from zero) of the average ---- */
int fm_average_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output, void *scratch);

/* ---- SOFTMAX int8 -> int8 (softmax_s8.c): TFLM reference integer softmax, output scale 1/256, zp -128 ---- */
typedef struct {
    int32_t outer_size;       /* rows */
    int32_t depth;            /* last dimension */
    int32_t input_multiplier; /* from PreprocessSoftmaxScaling(beta, input_scale, 5) */
    int32_t input_left_shift;
    int32_t diff_min;         /* -CalculateInputRadius(5, input_left_shift) */
} fm_softmax_s8_params_t;
int fm_softmax_s8(const fm_softmax_s8_params_t *p, const int8_t *input, int8_t *output);

/* RESHAPE has no kernel: the output aliases the input in the arena. */

/* ---- block-sparse CONV_2D / FULLY_CONNECTED int8 (conv2d_sparse_s8.c, fully_connected_sparse_s8.c) ----
 * For models pruned with `--prune-structure block`: a filter row (one output channel) is cut into blocks of
 * FM_SPARSE_BLOCK consecutive input channels at one filter tap (the last block of a tap is partial when the depth
 * is not a multiple of 4). Only the non-zero blocks are stored, in row order, with their column
 * (tap * ceil(depth / 4) + block within the tap); row_ptr[oc] .. row_ptr[oc + 1] are output channel oc's blocks.
 * Zero blocks cost neither flash nor instructions; results are bit-exact with the dense TFLM kernels (a zero
 * weight adds nothing to the accumulator). Codegen picks these when enough blocks are zero (docs/shrinking.md). */
#define FM_SPARSE_BLOCK 4
typedef struct {
    int32_t rows;             /* output channels */
    int32_t blocks_per_row;   /* taps * ceil(depth / FM_SPARSE_BLOCK) */
    int32_t nnz_blocks;       /* stored blocks */
    const int8_t *values;     /* [nnz_blocks * FM_SPARSE_BLOCK], zero past the depth in partial blocks */
    const uint16_t *cols;     /* [nnz_blocks] */
    const int32_t *row_ptr;   /* [rows + 1], row_ptr[0] = 0, row_ptr[rows] = nnz_blocks */
} fm_block_sparse_s8_t;

typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;   /* dense shape [out_c, kh, kw, in_c] (groups = 1) */
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
    fm_block_sparse_s8_t weights;
    const int32_t *bias;       /* [out_c] or NULL */
    const int32_t *multiplier; /* [out_c] */
    const int32_t *shift;      /* [out_c] */
} fm_conv_sparse_s8_params_t;
int fm_conv2d_sparse_s8(const fm_conv_sparse_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch);

typedef struct {
    int32_t batches, accum_depth, output_depth;
    int32_t input_offset;     /* -input zero point (the weights' zero point is 0) */
    int32_t output_offset;
    int32_t act_min, act_max;
    int32_t per_channel;      /* 0: multiplier[0]/shift[0] for all outputs */
    fm_block_sparse_s8_t weights;
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
} fm_fully_connected_sparse_s8_params_t;
int fm_fully_connected_sparse_s8(const fm_fully_connected_sparse_s8_params_t *p, const int8_t *input,
                                 int8_t *output, void *scratch);

/* ======================= element-wise, activations, data movement, float32 =======================
 * int8 kernels are bit-exact with the TFLM reference kernels of the pinned tflite-micro wheel; f32 kernels follow
 * TFLM's reference float kernels (tolerance-checked).
 */

/* Broadcast description shared by binary element-wise kernels (ADD, SUB, MUL, MAXIMUM, ...). Shapes are
 * extended to 6 dims; a stride of 0 repeats an input along a broadcast dimension. When `broadcast` is 0 both
 * inputs have the output's shape and kernels run one flat loop of `flat_size` elements. */
#define FM_BCAST_DIMS 6
typedef struct {
    int32_t flat_size;
    int32_t broadcast;
    int32_t out_dims[FM_BCAST_DIMS];
    int32_t in1_strides[FM_BCAST_DIMS];
    int32_t in2_strides[FM_BCAST_DIMS];
} fm_broadcast_t;

/* Walks the output in row-major order, keeping each input's element offset (broadcast dims have stride 0). */
typedef struct {
    int32_t idx[FM_BCAST_DIMS];
    int32_t off1, off2;
} fm_bcast_iter_t;
FM_INLINE void fm_bcast_next(const fm_broadcast_t *b, fm_bcast_iter_t *it)
{
    for (int d = FM_BCAST_DIMS - 1; d >= 0; --d) {
        it->off1 += b->in1_strides[d];
        it->off2 += b->in2_strides[d];
        if (++it->idx[d] < b->out_dims[d]) {
            return;
        }
        it->off1 -= b->in1_strides[d] * b->out_dims[d];
        it->off2 -= b->in2_strides[d] * b->out_dims[d];
        it->idx[d] = 0;
    }
}

/* ---- ADD int8 (add_s8.c): TFLM's general rescaling add (left_shift 20, three multipliers) ---- */
typedef struct {
    fm_broadcast_t shape;
    int32_t input1_offset, input2_offset; /* -zero points */
    int32_t output_offset;                /* output zero point */
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} fm_add_s8_params_t;
int fm_add_s8(const fm_add_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* ---- MUL int8 (mul_s8.c) ---- */
typedef struct {
    fm_broadcast_t shape;
    int32_t input1_offset, input2_offset; /* -zero points */
    int32_t output_offset;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} fm_mul_s8_params_t;
int fm_mul_s8(const fm_mul_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* ---- SUB int8 (sub_s8.c): TFLM's general-rescaling sub: ADD's arithmetic and constants (left shift 20, three
 * multipliers below one) with the scaled second input subtracted. ---- */
typedef fm_add_s8_params_t fm_sub_s8_params_t;
int fm_sub_s8(const fm_sub_s8_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);

/* ---- SQUARED_DIFFERENCE int8 (squared_difference_s8.c): inputs shifted left by 7, scaled to twice the larger
 * input scale (multipliers below one), difference squared in int32, rescaled to the output (any multiplier);
 * full int8 clamp (the op has no fused activation). ---- */
typedef struct {
    fm_broadcast_t shape;
    int32_t input1_offset, input2_offset; /* -zero points */
    int32_t output_offset;                /* output zero point */
    int32_t left_shift;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
} fm_squared_difference_s8_params_t;
int fm_squared_difference_s8(const fm_squared_difference_s8_params_t *p, const int8_t *input1,
                             const int8_t *input2, int8_t *output);

/* Binary kernels with nothing to precompute but the broadcast: MAXIMUM, MINIMUM (int8 compares raw values, as
 * TFLM does: codegen requires inputs and output to share quantization), SQUARED_DIFFERENCE float32. */
typedef struct {
    fm_broadcast_t shape;
} fm_binary_params_t;
int fm_maximum_s8(const fm_binary_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
int fm_minimum_s8(const fm_binary_params_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
int fm_maximum_f32(const fm_binary_params_t *p, const float *input1, const float *input2, float *output);
int fm_minimum_f32(const fm_binary_params_t *p, const float *input1, const float *input2, float *output);
int fm_squared_difference_f32(const fm_binary_params_t *p, const float *input1, const float *input2,
                              float *output);

/* ---- LOGISTIC / TANH int8 (logistic_s8.c, tanh_s8.c): gemmlowp fixed point, input in Q4.27 ---- */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
} fm_sigmoid_s8_params_t;
int fm_logistic_s8(const fm_sigmoid_s8_params_t *p, const int8_t *input, int8_t *output);
int fm_tanh_s8(const fm_sigmoid_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- RELU int8 (relu_s8.c): requantize input->output, clamp at quantized 0 ---- */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} fm_relu_s8_params_t;
int fm_relu_s8(const fm_relu_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- RELU6 int8 (relu6_s8.c): clamp to [zero, six] in the input's quantization (TFLM ignores the output's) ---- */
typedef struct {
    int32_t size;
    int32_t zero, six;
} fm_relu6_s8_params_t;
int fm_relu6_s8(const fm_relu6_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- QUANTIZE (quantize_s8.c): float32 -> int8 and int8 -> int8 requantization ---- */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} fm_quantize_f32_s8_params_t;
int fm_quantize_f32_s8(const fm_quantize_f32_s8_params_t *p, const float *input, int8_t *output);

typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift;
} fm_requantize_s8_params_t;
int fm_requantize_s8(const fm_requantize_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- DEQUANTIZE int8 -> float32 (dequantize_s8.c) ---- */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} fm_dequantize_s8_params_t;
int fm_dequantize_s8(const fm_dequantize_s8_params_t *p, const int8_t *input, float *output);

/* ---- PAD (pad_s8.c, pad_f32.c): up to 4 dims, pad value = output zero point (int8) or 0.0f ---- */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t output_dims;
    int32_t before[4];        /* leading pad per dim (n, h, w, c) */
    int32_t pad_value;        /* int8 kernels */
    float pad_value_f;        /* f32 kernels */
} fm_pad_params_t;
int fm_pad_s8(const fm_pad_params_t *p, const int8_t *input, int8_t *output);
int fm_pad_f32(const fm_pad_params_t *p, const float *input, float *output);

/* ---- CONCATENATION (concatenation_s8.c, concatenation_f32.c) ----
 * Output viewed as [outer][sum of inputs' axis*inner]; input i contributes copy_size[i] contiguous elements
 * per outer step. Like TFLM, int8 copies bytes: inputs must share the output quantization (codegen checks). */
#define FM_CONCAT_MAX_INPUTS 10
typedef struct {
    int32_t num_inputs;
    int32_t outer_size;
    int32_t copy_size[FM_CONCAT_MAX_INPUTS];
} fm_concat_params_t;
int fm_concatenation_s8(const fm_concat_params_t *p, const int8_t *const *inputs, int8_t *output);
int fm_concatenation_f32(const fm_concat_params_t *p, const float *const *inputs, float *output);

/* ---- MEAN (mean_s8.c, mean_f32.c) over any set of axes ----
 * Output element o walks kept dims (kept_dims/kept_strides, input strides) and sums the reduced dims
 * (red_dims/red_strides). Unused dims have size 1. */
typedef struct {
    int32_t out_size;
    int32_t red_count;         /* number of elements reduced into one output */
    int32_t kept_dims[FM_BCAST_DIMS];
    int32_t kept_strides[FM_BCAST_DIMS];
    int32_t red_dims[FM_BCAST_DIMS];
    int32_t red_strides[FM_BCAST_DIMS];
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier, shift; /* input_scale / output_scale, already folded with 1/red_count as TFLM does */
} fm_mean_params_t;
int fm_mean_s8(const fm_mean_params_t *p, const int8_t *input, int8_t *output);
int fm_mean_f32(const fm_mean_params_t *p, const float *input, float *output);

/* ---- SUM, REDUCE_MAX (sum_f32.c, reduce_max_s8.c, reduce_max_f32.c) over the same walk as MEAN ----
 * int8 SUM is fm_mean_s8 with a multiplier of input_scale / output_scale alone (TFLM's QuantizedMeanOrSum with
 * compute_sum: nothing folded). REDUCE_MAX int8 needs equal input/output quantization (TFLM checks it), so it
 * compares raw values; multiplier, shift and zero points are unused. */
typedef fm_mean_params_t fm_reduce_params_t;
int fm_sum_f32(const fm_reduce_params_t *p, const float *input, float *output);
int fm_reduce_max_s8(const fm_reduce_params_t *p, const int8_t *input, int8_t *output);
int fm_reduce_max_f32(const fm_reduce_params_t *p, const float *input, float *output);

/* ---- MAX_POOL_2D int8 / f32 (max_pool2d_s8.c, max_pool2d_f32.c), fm_pool_params_t above ---- */
int fm_max_pool2d_s8(const fm_pool_params_t *p, const int8_t *input, int8_t *output);
int fm_max_pool2d_f32(const fm_pool_params_t *p, const float *input, float *output);
int fm_average_pool2d_f32(const fm_pool_params_t *p, const float *input, float *output, void *scratch);

/* ---- float32 core set ---- */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;   /* CONV: [out_c, kh, kw, in_c / groups]; DEPTHWISE: [1, kh, kw, out_c] */
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_h, pad_w;
    int32_t depth_multiplier; /* DEPTHWISE only */
    float act_min, act_max;
    const float *filter;
    const float *bias;        /* [out_c] or NULL */
} fm_conv_f32_params_t;
int fm_conv2d_f32(const fm_conv_f32_params_t *p, const float *input, float *output, void *scratch);
int fm_depthwise_conv2d_f32(const fm_conv_f32_params_t *p, const float *input, float *output, void *scratch);

typedef struct {
    int32_t batches, accum_depth, output_depth;
    float act_min, act_max;
    const float *filter;      /* [output_depth, accum_depth] */
    const float *bias;        /* [output_depth] or NULL */
} fm_fully_connected_f32_params_t;
int fm_fully_connected_f32(const fm_fully_connected_f32_params_t *p, const float *input, float *output, void *scratch);

typedef struct {
    fm_broadcast_t shape;
    float act_min, act_max;
} fm_binary_f32_params_t;
int fm_add_f32(const fm_binary_f32_params_t *p, const float *input1, const float *input2, float *output);
int fm_mul_f32(const fm_binary_f32_params_t *p, const float *input1, const float *input2, float *output);
int fm_sub_f32(const fm_binary_f32_params_t *p, const float *input1, const float *input2, float *output);

typedef struct {
    int32_t outer_size, depth;
    float beta;
} fm_softmax_f32_params_t;
int fm_softmax_f32(const fm_softmax_f32_params_t *p, const float *input, float *output);

/* Unary float kernels: LOGISTIC, TANH, RELU (clamp [0, inf)), RELU6 (clamp [0, 6]). */
typedef struct {
    int32_t size;
} fm_unary_f32_params_t;
int fm_logistic_f32(const fm_unary_f32_params_t *p, const float *input, float *output);
int fm_tanh_f32(const fm_unary_f32_params_t *p, const float *input, float *output);
int fm_relu_f32(const fm_unary_f32_params_t *p, const float *input, float *output);
int fm_relu6_f32(const fm_unary_f32_params_t *p, const float *input, float *output);

/* ======================= HARD_SWISH, LEAKY_RELU, PRELU: int8 and float32 =======================
 * (hard_swish_*.c, leaky_relu_*.c, prelu_*.c; TFLM's reference kernels and Prepare arithmetic) */

/* ---- HARD_SWISH int8: TFLM's HardSwishParams, int16 fixed-point multipliers with power-of-two exponents ---- */
typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t reluish_multiplier;  /* int16: hires input scale (input scale / 128) -> scale where 3.0 is 32768 */
    int32_t reluish_exponent;    /* <= 31: > 0 saturating left shift, < 0 rounding right shift */
    int32_t output_multiplier;   /* int16: hires input scale -> output scale */
    int32_t output_exponent;     /* in [-31, 0] */
} fm_hard_swish_s8_params_t;
int fm_hard_swish_s8(const fm_hard_swish_s8_params_t *p, const int8_t *input, int8_t *output);
int fm_hard_swish_f32(const fm_unary_f32_params_t *p, const float *input, float *output);

/* ---- LEAKY_RELU int8: (x - zp) rescaled by in/out (x >= zp) or alpha * in/out (alpha may be negative) ---- */
typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point;
    int32_t identity_multiplier, identity_shift;
    int32_t alpha_multiplier, alpha_shift;
} fm_leaky_relu_s8_params_t;
int fm_leaky_relu_s8(const fm_leaky_relu_s8_params_t *p, const int8_t *input, int8_t *output);
typedef struct {
    int32_t size;
    float alpha;
} fm_leaky_relu_f32_params_t;
int fm_leaky_relu_f32(const fm_leaky_relu_f32_params_t *p, const float *input, float *output);

/* ---- PRELU: input >= 0 ? input : input * alpha, alpha broadcast against the input (shape: input 1, alpha 2).
 * int8: in/out multiplier when x - zp >= 0, else in*alpha/out on (x - zp) * (alpha - alpha_zp). ---- */
typedef struct {
    fm_broadcast_t shape;
    int32_t input_offset, alpha_offset; /* -zero points */
    int32_t output_offset;              /* output zero point */
    int32_t multiplier_1, shift_1;
    int32_t multiplier_2, shift_2;
} fm_prelu_s8_params_t;
int fm_prelu_s8(const fm_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha, int8_t *output);
typedef struct {
    fm_broadcast_t shape;
} fm_prelu_f32_params_t;
int fm_prelu_f32(const fm_prelu_f32_params_t *p, const float *input, const float *alpha, float *output);

/* ======================= indexing and comparisons (control flow of multi-subgraph models) =======================
 * Exact ops (no arithmetic to round): bit-exact with TFLM for every input. */

/* ---- ARG_MAX (arg_max.c): index of the first largest value along an axis (TFLM's ArgMinMax with
 * std::greater: a later equal value does not win), int32 indices. Shape: [outer, axis, inner]. ---- */
typedef struct {
    int32_t outer_size, axis_size, inner_size;
} fm_arg_max_params_t;
int fm_arg_max_s8(const fm_arg_max_params_t *p, const int8_t *input, int32_t *output);
int fm_arg_max_f32(const fm_arg_max_params_t *p, const float *input, int32_t *output);
int fm_arg_max_i32(const fm_arg_max_params_t *p, const int32_t *input, int32_t *output);

/* ---- STRIDED_SLICE (strided_slice.c): any element type by size, up to 5 dims; begin/stride/count per dim
 * resolved by codegen from the constant begin/end/strides and masks (TFLM's StartForAxis/StopForAxis). ---- */
#define FM_SLICE_DIMS 5
typedef struct {
    int32_t element_bytes;
    int32_t in_strides[FM_SLICE_DIMS]; /* input elements per step of each dim */
    int32_t begin[FM_SLICE_DIMS];
    int32_t stride[FM_SLICE_DIMS];
    int32_t count[FM_SLICE_DIMS];      /* output extent of each dim */
} fm_strided_slice_params_t;
int fm_strided_slice(const fm_strided_slice_params_t *p, const void *input, void *output);

/* ======================= layout: byte-moving kernels, any element type by size ======================= */

/* ---- TRANSPOSE, DEPTH_TO_SPACE, SPACE_TO_DEPTH (transpose.c): the output walked in order, each element read
 * through the permuted input strides. Codegen drops extent-1 dims and merges dims that stay adjacent, and
 * writes DEPTH_TO_SPACE / SPACE_TO_DEPTH as the 6-D transposes they are (TFLM reference_ops::Transpose,
 * DepthToSpace, SpaceToDepth move the same bytes). ---- */
#define FM_TRANSPOSE_DIMS 6
typedef struct {
    int32_t element_bytes;
    int32_t out_dims[FM_TRANSPOSE_DIMS];   /* output extent per dim, leading dims 1 */
    int32_t in_strides[FM_TRANSPOSE_DIMS]; /* input elements per step of output dim d */
} fm_transpose_params_t;
int fm_transpose(const fm_transpose_params_t *p, const void *input, void *output);

/* ---- SPLIT, SPLIT_V, UNPACK (split.c): input viewed as [outer][sum of copy_bytes]; output i takes
 * copy_bytes[i] contiguous bytes per outer step (TFLM SplitImpl / UnpackImpl). ---- */
typedef struct {
    int32_t outer_size;
    int32_t num_outputs;
    const int32_t *copy_bytes;             /* [num_outputs] */
} fm_split_params_t;
int fm_split(const fm_split_params_t *p, const void *input, void *const *outputs);

/* ---- PACK (pack.c): output viewed as [outer][num_inputs][copy_bytes] (TFLM PackImpl). ---- */
typedef struct {
    int32_t outer_size;
    int32_t num_inputs;
    int32_t copy_bytes;                    /* bytes of each input per outer step */
} fm_pack_params_t;
int fm_pack(const fm_pack_params_t *p, const void *const *inputs, void *output);

/* ---- GATHER (gather.c): input [batch][outer][axis][inner], int32 positions [batch][coord];
 * output [batch][outer][coord][inner] (TFLM Gather). A position outside [0, axis_size) returns FM_ERR_RANGE
 * before anything is read for it, as TFLM's Eval returns kTfLiteError. ---- */
typedef struct {
    int32_t batch_size, outer_size, axis_size, coord_size;
    int32_t inner_bytes;                   /* bytes per gathered slice */
} fm_gather_params_t;
int fm_gather(const fm_gather_params_t *p, const void *input, const int32_t *coords, void *output);

/* ---- LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, EQUAL, NOT_EQUAL (compare.c) on int32 / float32 with
 * broadcasting; output bool as one byte 0/1. ---- */
typedef enum {
    FM_CMP_LESS = 0,
    FM_CMP_LESS_EQUAL = 1,
    FM_CMP_GREATER = 2,
    FM_CMP_GREATER_EQUAL = 3,
    FM_CMP_EQUAL = 4,
    FM_CMP_NOT_EQUAL = 5
} fm_compare_op_t;
typedef struct {
    fm_broadcast_t shape;
    int32_t op;                        /* fm_compare_op_t */
} fm_compare_params_t;
int fm_compare_i32(const fm_compare_params_t *p, const int32_t *input1, const int32_t *input2, uint8_t *output);
int fm_compare_f32(const fm_compare_params_t *p, const float *input1, const float *input2, uint8_t *output);

/* ======================= upsampling: RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR, TRANSPOSE_CONV =======================
 * Source coordinates are TFLM's, evaluated ahead of time by codegen (host/formicary/codegen/ops/upsample.py) into
 * per-row and per-column tables: no float at run time in the int8 kernels. */

/* ---- RESIZE_NEAREST_NEIGHBOR (resize_nearest_neighbor.c): any element size (int8, float32); output pixel
 * (y, x) copies input pixel (y_index[y], x_index[x]) (TFLM GetNearestNeighbor). ---- */
typedef struct {
    int32_t batches, in_h, in_w;
    int32_t out_h, out_w;
    int32_t pixel_bytes;       /* depth * element size */
    const int32_t *y_index;    /* [out_h] input row of each output row */
    const int32_t *x_index;    /* [out_w] input column of each output column */
} fm_resize_nearest_params_t;
int fm_resize_nearest_neighbor(const fm_resize_nearest_params_t *p, const void *input, void *output);

/* ---- RESIZE_BILINEAR int8 (resize_bilinear_s8.c): TFLM ResizeBilinearInteger, 10-bit fixed-point weights.
 * Per output row y: rows y0 = y_table[3y], y1 = y_table[3y+1] and the weight of y1, y_table[3y+2] =
 * input_y - 1024 * y0 (may be negative or >= 1024 at the borders, as TFLM computes it); same for columns. ---- */
typedef struct {
    int32_t batches, in_h, in_w, depth;
    int32_t out_h, out_w;
    const int32_t *y_table;    /* [out_h][3] */
    const int32_t *x_table;    /* [out_w][3] */
} fm_resize_bilinear_s8_params_t;
int fm_resize_bilinear_s8(const fm_resize_bilinear_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- RESIZE_BILINEAR float32 (resize_bilinear_f32.c): TFLM ResizeBilinear. Rows y0 = y_index[2y],
 * y1 = y_index[2y+1], fraction y_frac[y] = input_y - y0 (float, as TFLM computes it); same for columns. ---- */
typedef struct {
    int32_t batches, in_h, in_w, depth;
    int32_t out_h, out_w;
    const int32_t *y_index;    /* [out_h][2] */
    const int32_t *x_index;    /* [out_w][2] */
    const float *y_frac;       /* [out_h] */
    const float *x_frac;       /* [out_w] */
} fm_resize_bilinear_f32_params_t;
int fm_resize_bilinear_f32(const fm_resize_bilinear_f32_params_t *p, const float *input, float *output);

/* ---- TRANSPOSE_CONV int8, per-channel (transpose_conv_s8.c): TFLM reference_integer_ops::TransposeConv.
 * Scatters every input pixel's products into an int32 accumulator per output element (`scratch`: output
 * elements * 4 bytes, declared by the reference set), then bias, requantization and clamp per element. ---- */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;    /* [out_c, kh, kw, in_c] */
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;      /* TFLM: ComputePaddingHeightWidth over the OUTPUT size */
    int32_t input_offset;      /* -input zero point */
    int32_t output_offset;     /* output zero point */
    int32_t act_min, act_max;
    const int8_t *filter;
    const int32_t *bias;       /* [out_c] or NULL */
    const int32_t *multiplier; /* [out_c] */
    const int32_t *shift;      /* [out_c] */
} fm_transpose_conv_s8_params_t;
int fm_transpose_conv_s8(const fm_transpose_conv_s8_params_t *p, const int8_t *input, int8_t *output, void *scratch);

/* ---- TRANSPOSE_CONV float32 (transpose_conv_f32.c): TFLM reference_ops::TransposeConv, scattering into the
 * output itself (it must not overlap the input). ---- */
typedef struct {
    fm_dims4_t input_dims;
    fm_dims4_t filter_dims;
    fm_dims4_t output_dims;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    float act_min, act_max;
    const float *filter;
    const float *bias;         /* [out_c] or NULL */
} fm_transpose_conv_f32_params_t;
int fm_transpose_conv_f32(const fm_transpose_conv_f32_params_t *p, const float *input, float *output);

#ifdef __cplusplus
}
#endif

#endif /* FM_KERNELS_H */
