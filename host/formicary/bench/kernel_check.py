"""`formicary kernels check`: randomized single-op int8 cases run by one kernel-check firmware on a (virtual) board,
each output compared byte for byte with the TFLM interpreter.

The host tests (tests/kernels) run a kernel set's C through the portable intrinsic definitions of fm_acle.h; this
runs the same cases through the real instructions (SMLAD/SXTB16 on qemu-m4/m7, MVE on qemu-m55). Steps:

1. `random_cases(n, seed)`: N models of one op each (CONV_2D general, 1x1 and few-input-channel, DEPTHWISE_CONV_2D,
   FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, HARD_SWISH, LEAKY_RELU, PRELU, TRANSPOSE_CONV: every op an
   optimized set has a file for) with random shapes and quantization (per-channel scales, any zero point, wide
   biases), and one random int8 input set each.
2. `build_check_firmware`: codegen of every case with the kernel set, all linked into ONE image. The generated
   fm_model.c exports fixed names (fm_invoke, fm_input_data, ...), so each case is compiled through a wrapper that
   #defines them to per-case names (fm_kc<i>_invoke, ...) before including it; a generated fm_kcheck.c holds the
   table of cases and their inputs and runs them (firmware mode "kcheck", firmware/app/main.c).
3. `run_check`: the firmware on QEMU (formicary.device.qemu), one UART line per case
   (`FMKC <case> <rc> <bytes> <hex of output>`), compared with TFLM; every mismatch is reported with the case's
   parameters.
"""
from __future__ import annotations

import math
import re
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

OPS = ("conv", "conv_1x1", "conv_few_channels", "depthwise", "fully_connected", "average_pool", "max_pool", "add",
       "hard_swish", "leaky_relu", "prelu", "transpose_conv")
# Exported names of a generated fm_model.c, renamed per case so that several models link into one image.
MODEL_SYMBOLS = ("fm_invoke", "fm_input_data", "fm_input_bytes", "fm_output_data", "fm_output_bytes",
                 "fm_op_info", "fm_input_info", "fm_output_info", "fm_model_route")
LINE = re.compile(r"^FMKC (\d+) (-?\d+) (\d+) ([0-9a-f]*)$")


@dataclass
class KernelCase:
    """One single-op model, its parameters (for reports) and its input set."""
    index: int
    op: str                         # one of OPS
    params: dict[str, Any]
    model: bytes
    inputs: list[np.ndarray] = field(default_factory=list)

    @property
    def opcode(self) -> str:
        return {"depthwise": "DEPTHWISE_CONV_2D", "fully_connected": "FULLY_CONNECTED",
                "average_pool": "AVERAGE_POOL_2D", "max_pool": "MAX_POOL_2D", "add": "ADD",
                "hard_swish": "HARD_SWISH", "leaky_relu": "LEAKY_RELU", "prelu": "PRELU",
                "transpose_conv": "TRANSPOSE_CONV"}.get(self.op, "CONV_2D")


def set_runs_on(kernels: str, core: str) -> bool:
    """Whether every set of the kernel set's chain can run on `core` (KernelSet.cores)."""
    from formicary.codegen import kernel_sets

    return all(k.cores is None or core in k.cores for k in kernel_sets.kernel_set(kernels).chain())


# ------------------------------------------------------------------------------------------------- cases
_ACTS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
_PADS = {"SAME": 0, "VALID": 1}


def _f32(x: float) -> float:
    return float(np.float32(x))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return _f32(10 ** rng.uniform(math.log10(lo), math.log10(hi)))


def _out_size(pad: str, size: int, k: int, s: int, d: int = 1) -> int:
    from formicary.codegen import quant

    return quant.compute_out_size(pad, size, k, s, d)


def _scales(rng: np.random.Generator, in_scale: float, depth: int, n_scales: int
            ) -> tuple[list[float], float, int]:
    """(filter scales, output scale, bias bound) for an accumulation over `depth` products: the output scale
    near the accumulator's spread (std ~ sqrt(depth) * 73 * 74 for uniform int8 weights and inputs), so outputs
    spread over the int8 range instead of all saturating; biases mostly of that size, sometimes 2^24 (saturation)."""
    base = _log_uniform(rng, 1e-4, 0.05)
    f_scale = [_f32(base * rng.uniform(0.25, 4.0)) for _ in range(n_scales)]
    spread = math.sqrt(depth) * 5400.0
    out_scale = _f32(in_scale * base * spread / 40.0 * rng.uniform(0.5, 2.0))
    bias_lim = int(2 ** 24 if rng.random() < 0.1 else spread * rng.choice([0.1, 1.0, 3.0]))
    return f_scale, out_scale, max(bias_lim, 1)


def _conv_geometry(rng: np.random.Generator, op: str) -> dict[str, Any]:
    """Shapes of a conv-family case; every case has at least one output pixel."""
    d = 1
    if op == "conv_1x1":
        h, w, kh, kw = int(rng.integers(1, 9)), int(rng.integers(1, 9)), 1, 1
        s = int(rng.choice([1, 1, 1, 2]))
        in_c, out_c = int(rng.integers(4, 65)), int(rng.integers(1, 33))
    elif op == "conv_few_channels":
        kh, kw = int(rng.choice([3, 5, 10])), int(rng.choice([3, 4]))
        h, w = int(rng.integers(kh, 21)), int(rng.integers(kw, 11))
        s = int(rng.choice([1, 2]))
        in_c, out_c = int(rng.integers(1, 4)), int(rng.integers(4, 17))
    else:
        h, w = int(rng.integers(3, 13)), int(rng.integers(3, 13))
        kh, kw = int(rng.choice([1, 2, 3, 3, 3, 5])), int(rng.choice([1, 2, 3, 3, 3, 5]))
        s = int(rng.choice([1, 1, 2]))
        d = int(rng.choice([1, 1, 1, 2])) if s == 1 else 1
        in_c = int(rng.integers(1, 25)) if op == "depthwise" else int(rng.integers(1, 9))
        out_c = int(rng.integers(1, 13))
    sw = s if rng.random() < 0.8 or op == "depthwise" else int(rng.choice([1, 2]))
    pad = str(rng.choice(["SAME", "VALID"]))
    if _out_size(pad, h, kh, s, d) <= 0 or _out_size(pad, w, kw, sw, d) <= 0:
        pad = "SAME"
    return dict(n=1, h=h, w=w, kh=kh, kw=kw, sh=s, sw=sw, dh=d, dw=d, pad=pad, in_c=in_c, out_c=out_c,
                oh=_out_size(pad, h, kh, s, d), ow=_out_size(pad, w, kw, sw, d))


def _conv_case(rng: np.random.Generator, op: str) -> tuple[dict[str, Any], bytes]:
    from formicary.tflite.builder import Op, T, build

    g = _conv_geometry(rng, op)
    depthwise = op == "depthwise"
    if depthwise:
        dm = int(rng.choice([1, 1, 1, 2]))
        g["out_c"], g["depth_multiplier"] = g["in_c"] * dm, dm
    per_channel = bool(rng.random() < 0.75)
    in_scale, in_zp = _log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128))
    depth = g["kh"] * g["kw"] * (1 if depthwise else g["in_c"])
    f_scale, out_scale, bias_lim = _scales(rng, in_scale, depth, g["out_c"] if per_channel else 1)
    out_zp = int(rng.integers(-128, 128))
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1"]))
    if depthwise:
        w = rng.integers(-127, 128, (1, g["kh"], g["kw"], g["out_c"])).astype(np.int8)
    else:
        w = rng.integers(-127, 128, (g["out_c"], g["kh"], g["kw"], g["in_c"])).astype(np.int8)
    has_bias = depthwise or bool(rng.random() < 0.85)  # the TFLM wheel needs a bias on depthwise
    tensors = [T((1, g["h"], g["w"], g["in_c"]), scale=[in_scale], zero_point=[in_zp]),
               T(w.shape, scale=f_scale, zero_point=[0] * len(f_scale), axis=3 if depthwise else 0, data=w)]
    inputs = [0, 1]
    if has_bias:
        bias = rng.integers(-bias_lim, bias_lim + 1, g["out_c"]).astype(np.int32)
        bscale = [in_scale * s for s in (f_scale if per_channel else f_scale * g["out_c"])]
        tensors.append(T((g["out_c"],), "int32", scale=bscale, zero_point=[0] * g["out_c"], data=bias))
        inputs.append(2)
    else:
        inputs.append(-1)
    tensors.append(T((1, g["oh"], g["ow"], g["out_c"]), scale=[out_scale], zero_point=[out_zp]))
    out = len(tensors) - 1
    fields = dict(Padding=_PADS[g["pad"]], StrideW=g["sw"], StrideH=g["sh"], FusedActivationFunction=_ACTS[act],
                  DilationWFactor=g["dw"], DilationHFactor=g["dh"])
    if depthwise:
        fields["DepthMultiplier"] = g["depth_multiplier"]
        model = build(tensors, [Op("DEPTHWISE_CONV_2D", inputs, [out], "DepthwiseConv2DOptions", fields)], [0], [out])
    else:
        model = build(tensors, [Op("CONV_2D", inputs, [out], "Conv2DOptions", fields)], [0], [out])
    params = {**g, "act": act, "per_channel": per_channel, "bias": has_bias, "bias_max": bias_lim if has_bias else 0,
              "in_scale": in_scale, "in_zp": in_zp, "out_scale": out_scale, "out_zp": out_zp,
              "macs": g["oh"] * g["ow"] * g["out_c"] * depth}
    return params, model


def _fc_case(rng: np.random.Generator) -> tuple[dict[str, Any], bytes]:
    from formicary.tflite.builder import fully_connected_model

    batches, accum, out_d = int(rng.choice([1, 1, 1, 2])), int(rng.integers(1, 129)), int(rng.integers(1, 33))
    per_channel = bool(rng.random() < 0.3)
    in_scale, in_zp = _log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128))
    f_scale, out_scale, bias_lim = _scales(rng, in_scale, accum, out_d if per_channel else 1)
    out_zp = int(rng.integers(-128, 128))
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
    w = rng.integers(-127, 128, (out_d, accum)).astype(np.int8)
    has_bias = bool(rng.random() < 0.85)
    bias = rng.integers(-bias_lim, bias_lim + 1, out_d).astype(np.int32) if has_bias else None
    model = fully_connected_model(w, batches=batches, in_scale=in_scale, in_zp=in_zp, f_scale=f_scale,
                                  out_scale=out_scale, out_zp=out_zp, bias=bias, act=act)
    return dict(batches=batches, accum=accum, out=out_d, per_channel=per_channel, bias=has_bias, act=act,
                in_scale=in_scale, in_zp=in_zp, out_scale=out_scale, out_zp=out_zp,
                macs=batches * accum * out_d), model


def _pool_case(rng: np.random.Generator, op: str) -> tuple[dict[str, Any], bytes]:
    from formicary.tflite.builder import Op, T, build

    h, w, c = int(rng.integers(2, 13)), int(rng.integers(2, 13)), int(rng.integers(1, 17))
    fh, fw = min(int(rng.integers(1, 5)), h), min(int(rng.integers(1, 5)), w)
    if op == "average_pool" and rng.random() < 0.15:
        fh, fw = h, w  # global pooling, as KWS ends
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    pad = str(rng.choice(["SAME", "VALID"]))
    oh, ow = _out_size(pad, h, fh, sh), _out_size(pad, w, fw, sw)
    scale, zp = _log_uniform(rng, 1e-2, 1.0), int(rng.integers(-128, 128))
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
    tensors = [T((1, h, w, c), scale=[scale], zero_point=[zp]), T((1, oh, ow, c), scale=[scale], zero_point=[zp])]
    opcode = "AVERAGE_POOL_2D" if op == "average_pool" else "MAX_POOL_2D"
    model = build(tensors, [Op(opcode, [0], [1], "Pool2DOptions",
                               dict(Padding=_PADS[pad], StrideW=sw, StrideH=sh, FilterWidth=fw, FilterHeight=fh,
                                    FusedActivationFunction=_ACTS[act]))], [0], [1])
    return dict(h=h, w=w, c=c, fh=fh, fw=fw, sh=sh, sw=sw, pad=pad, act=act, scale=scale, zp=zp), model


def _add_case(rng: np.random.Generator) -> tuple[dict[str, Any], bytes]:
    from formicary.tflite.builder import Op, T, build

    shape = (1, int(rng.integers(1, 11)), int(rng.integers(1, 11)), int(rng.integers(1, 33)))
    s1, s2 = _log_uniform(rng, 1e-3, 1.0), _log_uniform(rng, 1e-3, 1.0)
    so = _f32(max(s1, s2) * rng.uniform(0.5, 4.0))
    z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
    tensors = [T(shape, scale=[s1], zero_point=[z1]), T(shape, scale=[s2], zero_point=[z2]),
               T(shape, scale=[so], zero_point=[zo])]
    model = build(tensors, [Op("ADD", [0, 1], [2], "AddOptions", {"FusedActivationFunction": _ACTS[act]})],
                  [0, 1], [2])
    return dict(shape=list(shape), s1=s1, z1=z1, s2=s2, z2=z2, out_scale=so, out_zp=zo, act=act), model


def _activation_case(rng: np.random.Generator, op: str) -> tuple[dict[str, Any], bytes]:
    """HARD_SWISH / LEAKY_RELU / PRELU on an NHWC map, sometimes past 256 elements (where sets may tabulate the 256
    int8 values); output scales around the input's (HARD_SWISH: never below input/128, which TFLM refuses)."""
    from formicary.tflite.builder import Op, T, build

    shape = (1, int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(1, 17)))
    in_scale, in_zp = _log_uniform(rng, 1e-2, 0.5), int(rng.integers(-128, 128))
    out_scale, out_zp = _f32(in_scale * rng.uniform(0.3, 2.0)), int(rng.integers(-128, 128))
    tensors = [T(shape, scale=[in_scale], zero_point=[in_zp])]
    params: dict[str, Any] = {"shape": list(shape), "in_scale": in_scale, "in_zp": in_zp, "out_scale": out_scale,
                              "out_zp": out_zp}
    if op == "prelu":  # per-channel alpha as the converter writes a PReLU, or one shared alpha
        alpha_shape = (1, 1, shape[3]) if rng.random() < 0.7 else (1, 1, 1)
        a_scale, a_zp = _log_uniform(rng, 1e-3, 0.05), int(rng.integers(-128, 128))
        tensors.append(T(alpha_shape, scale=[a_scale], zero_point=[a_zp],
                         data=rng.integers(-128, 128, alpha_shape).astype(np.int8)))
        tensors.append(T(shape, scale=[out_scale], zero_point=[out_zp]))
        params.update(alpha_shape=list(alpha_shape), alpha_scale=a_scale, alpha_zp=a_zp)
        return params, build(tensors, [Op("PRELU", [0, 1], [2])], [0], [2])
    tensors.append(T(shape, scale=[out_scale], zero_point=[out_zp]))
    if op == "leaky_relu":
        alpha = _f32(rng.choice([rng.uniform(0.01, 0.5), rng.uniform(-1.0, 2.0)]))
        params["alpha"] = alpha
        return params, build(tensors, [Op("LEAKY_RELU", [0], [1], "LeakyReluOptions", {"Alpha": alpha})], [0], [1])
    return params, build(tensors, [Op("HARD_SWISH", [0], [1])], [0], [1])


def _transpose_conv_case(rng: np.random.Generator) -> tuple[dict[str, Any], bytes]:
    """TRANSPOSE_CONV as decoders use it (stride 1-3, kernel 1-4, SAME/VALID, the output size Keras gives or one
    more), per-channel or per-tensor filter scales, with or without bias, any fused activation."""
    from formicary.tflite.builder import Op, T, build

    sh, sw, kh, kw = (int(v) for v in rng.integers(1, 4, 2).tolist() + rng.integers(1, 5, 2).tolist())
    h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    pad = str(rng.choice(["SAME", "VALID"]))
    oh = (h * sh if pad == "SAME" else (h - 1) * sh + kh) + int(rng.choice([0, 0, 1]))
    ow = (w * sw if pad == "SAME" else (w - 1) * sw + kw) + int(rng.choice([0, 0, 1]))
    in_c, out_c = int(rng.integers(1, 17)), int(rng.integers(1, 13))
    per_channel = bool(rng.random() < 0.75)
    in_scale, in_zp = _log_uniform(rng, 1e-3, 1.0), int(rng.integers(-128, 128))
    depth = max(1, (kh * kw * in_c) // (sh * sw))  # products per output, on average
    f_scale, out_scale, bias_lim = _scales(rng, in_scale, depth, out_c if per_channel else 1)
    out_zp = int(rng.integers(-128, 128))
    act = str(rng.choice(["NONE", "NONE", "RELU", "RELU6"]))
    w_data = rng.integers(-127, 128, (out_c, kh, kw, in_c)).astype(np.int8)
    tensors = [T((4,), "int32", data=np.array([1, oh, ow, out_c], np.int32)),
               T(w_data.shape, scale=f_scale, zero_point=[0] * len(f_scale), axis=0, data=w_data),
               T((1, h, w, in_c), scale=[in_scale], zero_point=[in_zp]),
               T((1, oh, ow, out_c), scale=[out_scale], zero_point=[out_zp])]
    inputs = [0, 1, 2]
    has_bias = bool(rng.random() < 0.7)
    if has_bias:
        bscale = [in_scale * s for s in (f_scale if per_channel else f_scale * out_c)]
        tensors.append(T((out_c,), "int32", scale=bscale, zero_point=[0] * out_c,
                         data=rng.integers(-bias_lim, bias_lim + 1, out_c).astype(np.int32)))
        inputs.append(4)
    model = build(tensors, [Op("TRANSPOSE_CONV", inputs, [3], "TransposeConvOptions",
                               {"Padding": _PADS[pad], "StrideW": sw, "StrideH": sh,
                                "FusedActivationFunction": _ACTS[act]})], [2], [3])
    return dict(h=h, w=w, in_c=in_c, out_c=out_c, kh=kh, kw=kw, sh=sh, sw=sw, pad=pad, oh=oh, ow=ow, act=act,
                per_channel=per_channel, bias=has_bias, in_scale=in_scale, in_zp=in_zp, out_scale=out_scale,
                out_zp=out_zp, macs=h * w * in_c * kh * kw * out_c), model


def random_cases(n: int, seed: int = 0, ops: tuple[str, ...] | list[str] = OPS) -> list[KernelCase]:
    """`n` single-op cases, the ops taken in turn from `ops`, shapes and quantization drawn from `seed`."""
    from formicary.tflite import read_model

    unknown = sorted(set(ops) - set(OPS))
    if unknown or not ops:
        raise FormicaryError(f"unknown kernel-check op(s) {', '.join(unknown) or '(none given)'}.",
                             f"use some of: {', '.join(OPS)}.")
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        op = ops[i % len(ops)]
        if op in ("conv", "conv_1x1", "conv_few_channels", "depthwise"):
            params, model = _conv_case(rng, op)
        elif op == "fully_connected":
            params, model = _fc_case(rng)
        elif op in ("average_pool", "max_pool"):
            params, model = _pool_case(rng, op)
        elif op in ("hard_swish", "leaky_relu", "prelu"):
            params, model = _activation_case(rng, op)
        elif op == "transpose_conv":
            params, model = _transpose_conv_case(rng)
        else:
            params, model = _add_case(rng)
        ir = read_model(model)
        inputs = [rng.integers(-128, 128, size=t.shape).astype(np.int8) for t in ir.input_tensors]
        cases.append(KernelCase(i, op, params, model, inputs))
    return cases


# ---------------------------------------------------------------------------------------------- firmware
def _c_bytes(a: np.ndarray) -> str:
    vals = a.astype(np.int8).reshape(-1).tolist()
    return ",\n".join(", ".join(str(v) for v in vals[i:i + 24]) for i in range(0, len(vals), 24)) or "0"


def _case_wrapper(i: int, model_c: Path) -> str:
    defines = "\n".join(f"#define {s} fm_kc{i}_{s[3:]}" for s in MODEL_SYMBOLS)
    return (f"/* Generated by formicary kernels check: case {i}, its model's exported names made per-case. */\n"
            f"{defines}\n#include \"{model_c.resolve().as_posix()}\"\n")


def _kcheck_source(cases: list[KernelCase], kernels: str) -> str:
    decls, table = [], []
    for c in cases:
        i = c.index
        decls.append(f"int fm_kc{i}_invoke(void);\nvoid *fm_kc{i}_input_data(int i);\n"
                     f"size_t fm_kc{i}_input_bytes(int i);\nvoid *fm_kc{i}_output_data(int i);\n"
                     f"size_t fm_kc{i}_output_bytes(int i);")
        for k, x in enumerate(c.inputs):
            decls.append(f"static const int8_t kc{i}_in{k}[{x.size}] = {{\n{_c_bytes(x)}}};")
        decls.append(f"static const int8_t *const kc{i}_inputs[] = {{"
                     f"{', '.join(f'kc{i}_in{k}' for k in range(len(c.inputs)))}}};")
        table.append(f"    {{fm_kc{i}_invoke, fm_kc{i}_input_data, fm_kc{i}_input_bytes, fm_kc{i}_output_data, "
                     f"fm_kc{i}_output_bytes, {len(c.inputs)}, kc{i}_inputs}},")
    body = "\n".join(decls)
    return f"""/* Generated by formicary kernels check ({len(cases)} cases, kernel set {kernels}): runs every single-op
   case once on its built-in inputs and prints "FMKC <case> <rc> <bytes> <hex>" per case, then "FMKC END". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fm_port.h"

typedef struct {{
    int (*invoke)(void);
    void *(*input_data)(int i);
    size_t (*input_bytes)(int i);
    void *(*output_data)(int i);
    size_t (*output_bytes)(int i);
    int num_inputs;
    const int8_t *const *inputs;
}} fm_kc_case_t;

{body}

static const fm_kc_case_t fm_kc_cases[] = {{
{chr(10).join(table)}
}};

static void put(const char *s)
{{
    fm_port_uart_write((const uint8_t *)s, strlen(s));
}}

static void put_int(long v)
{{
    char buf[16];
    int n = 0;
    unsigned long u = v < 0 ? (unsigned long)(-(v + 1)) + 1u : (unsigned long)v;
    do {{
        buf[n++] = (char)('0' + (int)(u % 10u));
        u /= 10u;
    }} while (u != 0u);
    if (v < 0) {{
        buf[n++] = '-';
    }}
    while (n > 0) {{
        fm_port_uart_write((const uint8_t *)&buf[--n], 1);
    }}
}}

static void put_hex(const uint8_t *p, size_t n)
{{
    static const char digits[] = "0123456789abcdef";
    char buf[64];
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {{
        buf[k++] = digits[p[i] >> 4];
        buf[k++] = digits[p[i] & 15u];
        if (k == sizeof buf) {{
            fm_port_uart_write((const uint8_t *)buf, k);
            k = 0;
        }}
    }}
    fm_port_uart_write((const uint8_t *)buf, k);
}}

void fm_kcheck_main(void)
{{
    const int n = (int)(sizeof fm_kc_cases / sizeof fm_kc_cases[0]);
    put("FMKC BEGIN ");
    put_int(n);
    put("\\n");
    for (int c = 0; c < n; ++c) {{
        const fm_kc_case_t *k = &fm_kc_cases[c];
        for (int i = 0; i < k->num_inputs; ++i) {{
            memcpy(k->input_data(i), k->inputs[i], k->input_bytes(i));
        }}
        const int rc = k->invoke();
        put("FMKC ");
        put_int(c);
        put(" ");
        put_int(rc);
        put(" ");
        put_int((long)k->output_bytes(0));
        put(" ");
        put_hex((const uint8_t *)k->output_data(0), k->output_bytes(0));
        put("\\n");
    }}
    put("FMKC END\\n");
    fm_port_uart_flush();
    for (;;) {{
        fm_port_uart_wait();
    }}
}}
"""


@dataclass
class CheckFirmware:
    elf: Path
    project_dir: Path
    kernels: str
    board: str
    kernel_files: list[str]      # the kernel files linked, as selected for the set (kernels/<set>/x.c)
    build_seconds: float
    flash_bytes: int


def build_check_firmware(cases: list[KernelCase], board: str, kernels: str, out_dir: str | Path,
                         optimize: str = "speed") -> CheckFirmware:
    """Generate every case with the set and link them all into one kernel-check firmware for `board`."""
    from formicary.boards import load_board
    from formicary.build import build_project, generate_project
    from formicary.codegen import generate, kernel_sets

    b = load_board(board)
    kset = kernel_sets.kernel_set(kernels)
    kernel_sets.check_core(kset, b.name, b.core)
    if not cases:
        raise FormicaryError("no kernel-check cases.", "pass --cases N with N >= 1.")
    out = Path(out_dir).resolve()
    files: list[str] = []
    for c in cases:
        r = generate(c.model, out / "cases" / f"case_{c.index:03d}", kernels=kset)
        files += [Path(s).name for s in r.kernel_sources[1:]]
    proj = out / "project"
    generate_project(b, out / "cases" / f"case_{cases[0].index:03d}", proj, firmware_mode="kcheck",
                     optimize=optimize)
    src = proj / "src"
    # The union of every case's kernels (generate_project wrote only the first case's), from the set's chain.
    kdir = src / "fm_kernels"
    for old in kdir.glob("*.c") if kdir.is_dir() else []:
        old.unlink()
    kdir.mkdir(parents=True, exist_ok=True)
    selected = kernel_sets.select_kernel_sources(kset, files)
    for f in selected:
        (kdir / f.name).write_text(f"/* Generated by formicary kernels check: kernel {f.stem} of set {kset.name}. */\n"
                                   f'#include "{f.resolve().as_posix()}"\n')
    cdir = src / "fm_kcheck_cases"
    cdir.mkdir(exist_ok=True)
    for c in cases:
        (cdir / f"case_{c.index:03d}.c").write_text(
            _case_wrapper(c.index, out / "cases" / f"case_{c.index:03d}" / "fm_model.c"))
    (src / "fm_kcheck.c").write_text(_kcheck_source(cases, kset.name))
    start = time.perf_counter()
    result = build_project(proj, b)
    return CheckFirmware(elf=result.elf, project_dir=proj, kernels=kset.name, board=b.name,
                         kernel_files=[kernel_sets.relative_to_firmware(f) for f in selected],
                         build_seconds=time.perf_counter() - start, flash_bytes=result.flash_bytes)


# ------------------------------------------------------------------------------------------------- run
def run_firmware(board: str, elf: Path, n_cases: int, timeout: float = 60.0) -> dict[int, tuple[int, bytes]]:
    """Run the kernel-check firmware on a virtual board: {case: (return code, output bytes)}."""
    from formicary.device.qemu import launch

    inst = launch(board, elf)
    text = b""
    try:
        with socket.create_connection(("127.0.0.1", inst.port), timeout=5) as sock:
            inst.resume()
            deadline = time.monotonic() + timeout
            sock.settimeout(1.0)
            while b"FMKC END" not in text:
                if time.monotonic() > deadline:
                    raise FormicaryError(
                        f"the kernel-check firmware on {board} did not finish within {timeout:.0f} s "
                        f"({text.count(b'FMKC ') - 1} of {n_cases} cases reported).",
                        "a kernel may hang or fault; run fewer cases (--cases) to find it.",
                        details={"last_output": text[-400:].decode("ascii", "replace")})
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    inst.check_alive()
                    continue
                if not chunk:
                    inst.check_alive(grace=1.0)
                    break
                text += chunk
    finally:
        inst.close()
    out: dict[int, tuple[int, bytes]] = {}
    for line in text.decode("ascii", "replace").splitlines():
        m = LINE.match(line.strip())
        if m:
            out[int(m.group(1))] = (int(m.group(2)), bytes.fromhex(m.group(4)))
    return out


def _compare(case: KernelCase, got: tuple[int, bytes] | None, want: np.ndarray) -> dict[str, Any] | None:
    """None when the case matches TFLM, else a mismatch record."""
    want_b = np.asarray(want).astype(np.int8).tobytes()
    rec: dict[str, Any] = {"case": case.index, "op": case.op, "opcode": case.opcode, "params": case.params}
    if got is None:
        return {**rec, "reason": "no output reported (the firmware stopped before this case)"}
    rc, data = got
    if rc != 0:
        return {**rec, "reason": f"fm_invoke returned {rc}", "rc": rc}
    if data == want_b:
        return None
    a = np.frombuffer(data, np.int8).astype(np.int32)
    b = np.frombuffer(want_b, np.int8).astype(np.int32)
    if a.size != b.size:
        return {**rec, "reason": f"output has {a.size} bytes, TFLM's {b.size}"}
    diff = np.nonzero(a != b)[0]
    shape = np.asarray(want).shape
    first = [int(v) for v in np.unravel_index(int(diff[0]), shape)]
    return {**rec, "reason": f"{diff.size} of {a.size} output bytes differ", "differing_bytes": int(diff.size),
            "first_diff_index": first, "max_abs_diff": int(np.max(np.abs(a - b))),
            "got_hex": data.hex(), "want_hex": want_b.hex()}


def run_check(board: str = "qemu-m4", kernels: str | None = None, *, cases: int = 60, seed: int = 0,
              ops: tuple[str, ...] | list[str] = OPS, timeout: float = 60.0, work_dir: str | Path | None = None,
              optimize: str = "speed") -> dict[str, Any]:
    """Build the kernel-check firmware for `kernels` (default: the board's set), run it on `board` and compare
    every case with TFLM. Plain-data result (keys: see docs/kernels.md)."""
    from formicary.boards import load_board
    from formicary.oracle.tflm import run_tflm

    b = load_board(board)
    if not b.virtual:
        raise FormicaryError(f"{b.name} is not a virtual board.", "kernels check runs on qemu-* boards.")
    kernels = kernels or b.kernels
    start = time.perf_counter()
    drawn = random_cases(cases, seed, ops)
    with tempfile.TemporaryDirectory(prefix="fm-kcheck-", dir=work_dir) as tmp:
        fw = build_check_firmware(drawn, b.name, kernels, tmp, optimize=optimize)
        t_run = time.perf_counter()
        got = run_firmware(b.name, fw.elf, len(drawn), timeout=timeout)
        run_seconds = time.perf_counter() - t_run
    mismatches = []
    for c in drawn:
        want = run_tflm(c.model, [c.inputs])[0][0]
        m = _compare(c, got.get(c.index), want)
        if m is not None:
            mismatches.append(m)
    by_op: dict[str, int] = {}
    for c in drawn:
        by_op[c.op] = by_op.get(c.op, 0) + 1
    return {"board": b.name, "core": b.core, "kernels": fw.kernels, "seed": seed, "cases": len(drawn),
            "cases_by_op": by_op, "passed": len(drawn) - len(mismatches), "failed": len(mismatches),
            "bit_exact": not mismatches, "mismatches": mismatches, "kernel_files": fw.kernel_files,
            "flash_bytes": fw.flash_bytes, "build_seconds": round(fw.build_seconds, 2),
            "run_seconds": round(run_seconds, 2), "seconds": round(time.perf_counter() - start, 2),
            "method": {"compare": f"every output byte of each case, read back from {b.name}'s UART, vs the TFLM "
                                  "Python interpreter on the same input",
                       "inputs": "one uniform random int8 input set per case, built into the firmware"}}


__all__ = ["OPS", "CheckFirmware", "KernelCase", "build_check_firmware", "random_cases",
           "run_check", "run_firmware", "set_runs_on"]
