"""A trained mixture of experts (formicary.shrink.moe) → .tflite with real conditional execution.

Representation (docs/shrinking.md, "Mixture of experts"): a tf.function on the trained weights,
stem → gate logits → ARG_MAX → a balanced binary tree of tf.cond on `route < mid`, whose leaves each call one
expert on the stem features. The TFLite converter turns every tf.cond into an IF op with one subgraph per branch,
so the main subgraph runs the stem, the gate and the root IF; inner subgraphs (`route_LO_HI`) hold one LESS + IF;
the leaf subgraphs (`expert_I`) hold one expert's ops. E = 4 gives a 2-level tree, 7 subgraphs. TFLM (and
formicary-rt) execute only the branch taken: one expert per inference.

The leaf returns the expert's softmax as it is: with top-1 routing the renormalised gate weight is 1, so this is
exactly the Keras model's inference output (multiplying by the gate probability would not change the arg-max
either). top-k ≥ 2 is training-only for now (the export refuses it).

Int8 full-integer PTQ: the converter's calibration only sees the branches the representative inputs take, and an
expert never taken is left in float. The representative set is therefore made to route to every expert
(calibration samples, topped up with training samples routed to an expert that has too few); an expert that no
input reaches is refused. The converter quantizes each subgraph on its own, so the values crossing an IF are
float32: DEQUANTIZE before the IF in the caller, QUANTIZE at the start and DEQUANTIZE at the end of each expert,
QUANTIZE after the root IF. `int8_boundaries` (default on) then rewrites the flatbuffer so int8 crosses the IF
boundaries: main's DEQUANTIZE before the IF and QUANTIZE after it go, the IF ops and the branch subgraphs' inputs
and outputs become int8; an expert's leading QUANTIZE goes when its scale/zero point equal the stem output's, and
otherwise stays as an int8 → int8 requantization (each expert's input range was calibrated on the inputs routed to
it), unless the expert's first layer can absorb the scale change (_fold_requantize); an expert's trailing
DEQUANTIZE goes (all experts end in the same int8 softmax quantization, which becomes the
model output's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

MIN_CALIB_PER_EXPERT = 8
MAX_CALIB = 500


@dataclass
class ExportInfo:
    subgraphs: list[dict[str, Any]]          # per subgraph: index, name, ops, tensor types
    calibration_per_expert: list[int]
    int8_boundaries: bool
    boundary_requantize: int                  # QUANTIZE int8->int8 kept at boundaries (scales differed)

    def to_dict(self) -> dict[str, Any]:
        return {"subgraphs": self.subgraphs, "calibration_per_expert": self.calibration_per_expert,
                "int8_boundaries": self.int8_boundaries, "boundary_requantize": self.boundary_requantize}


def serving_module(model: Any, route_output: bool = False) -> Any:
    """A tf.Module whose `serve` (batch 1) runs stem → gate → the tree of tf.cond; with `route_output` it also
    returns the chosen expert's index (int32), for checking the routing."""
    import tensorflow as tf

    from formicary.shrink.moe import parts

    p = parts(model)
    if p.top_k != 1:
        raise FormicaryError(f"the model routes to the top {p.top_k} experts; the .tflite export supports top-1 "
                             "routing only for now (top-k ≥ 2 is training-only)",
                             "train with --top-k 1 to export, or keep the Keras model for top-k ≥ 2.")
    shape = [1] + [int(d) for d in model.inputs[0].shape[1:]]
    experts = p.experts

    def leaf(i: int, f: Any) -> Any:
        return experts[i](f, training=False)

    def tree(route: Any, f: Any, lo: int, hi: int) -> Any:
        if hi - lo == 1:
            return leaf(lo, f)
        mid = (lo + hi) // 2
        return tf.cond(route < mid, lambda: tree(route, f, lo, mid), lambda: tree(route, f, mid, hi),
                       name=f"route_{lo}_{hi}")

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="moe_serving")
            self.layers = p.stem + p.gate + experts

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
        def serve(self, x: Any) -> Any:
            f = x
            for layer in p.stem:
                f = layer(f, training=False)
            logits = p.gate[1](p.gate[0](f))
            route = tf.argmax(logits, axis=1, output_type=tf.int32)[0]
            y = tree(route, f, 0, len(experts))
            return (y, tf.reshape(route, [1])) if route_output else y

    return Serving()


def representative_indices(model: Any, calib_x: np.ndarray, train_x: np.ndarray | None) -> tuple[np.ndarray,
                                                                                                   list[int]]:
    """Rows of concat(calib, train) to calibrate with: calibration samples (up to MAX_CALIB), plus training samples
    for experts with fewer than MIN_CALIB_PER_EXPERT of them. Returns (indices, samples per expert)."""
    from formicary.shrink.moe import parts, routes

    experts = len(parts(model).experts)
    calib_x = calib_x[:MAX_CALIB]
    pool = calib_x if train_x is None else np.concatenate([calib_x, train_x])
    r = routes(model, pool, 1)[:, 0]
    chosen = list(range(len(calib_x)))
    for i in range(experts):
        have = int((r[:len(calib_x)] == i).sum())
        if have < MIN_CALIB_PER_EXPERT:
            extra = [j for j in np.flatnonzero(r == i) if j >= len(calib_x)][:MIN_CALIB_PER_EXPERT - have]
            chosen += [int(j) for j in extra]
    idx = np.asarray(chosen, dtype=np.int64)
    counts = [int((r[idx] == i).sum()) for i in range(experts)]
    dead = [i for i, n in enumerate(counts) if n == 0]
    if dead:
        raise FormicaryError(f"expert(s) {dead} are never chosen by the gate on the calibration or training data: "
                             "they cannot be calibrated and would never run",
                             "train with a larger --balance-weight (e.g. 1.0), more --epochs, or fewer --experts.",
                             details={"calibration_per_expert": counts})
    return idx, counts


def export_tflite(model: Any, calib_x: np.ndarray, train_x: np.ndarray | None = None, *,
                  route_output: bool = False, int8_boundaries: bool = True) -> tuple[bytes, ExportInfo]:
    """Int8 full-integer .tflite of a top-1 MoE (module docstring), subgraphs named after what they hold."""
    import tensorflow as tf

    from formicary.data import as_float
    from formicary.oracle.tflm import capture_c_stderr

    calib_x, train_x = as_float(calib_x), None if train_x is None else as_float(train_x)
    idx, counts = representative_indices(model, calib_x, train_x)
    pool = calib_x[:MAX_CALIB] if train_x is None else np.concatenate([calib_x[:MAX_CALIB], train_x])
    samples = pool[idx]
    module = serving_module(model, route_output)
    fn = module.serve.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for i in range(samples.shape[0]):
            yield [samples[i:i + 1]]

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with capture_c_stderr() as chatter:
        try:
            data = bytes(conv.convert())
        except Exception as exc:
            raise FormicaryError(f"the TFLite converter failed on the mixture: {str(exc).splitlines()[0]}",
                                 "use experts made of layers with full-integer TFLite kernels.",
                                 details={"stderr": chatter.text[-4000:]}) from exc
    experts = len(counts)
    mt = _read(data)
    _name_subgraphs(mt, 0, experts)
    _shorten_tensor_names(mt)
    requant = 0
    if int8_boundaries:
        requant = _int8_boundaries(mt)
    _check_quantized(mt)
    data = _write(mt)
    return data, ExportInfo(describe(data), counts, int8_boundaries, requant)


def drop_route_output(data: bytes) -> bytes:
    """The same model without the route output of `export_tflite(route_output=True)`: one conversion serves both
    the checked routing and the deployed model (their ops and quantization are the same)."""
    s = _schema()
    mt = _read(data)
    main = mt.subgraphs[0]
    routes_out = [t for t in main.outputs if main.tensors[t].type == s.TensorType.INT32]
    if not routes_out:
        return data
    t = routes_out[0]
    main.outputs = [v for v in main.outputs if v != t]
    prod = _producer(main, t)
    if prod is not None and _opname(mt, prod) == "RESHAPE":
        main.operators.remove(prod)
    for sig in mt.signatureDefs or []:
        sig.outputs = [m for m in sig.outputs if m.tensorIndex != t]
    return _write(mt)


# ------------------------------------------------------------------------------------------- flatbuffer

def _schema():
    from tensorflow.lite.python import schema_py_generated as s

    return s


def _read(data: bytes) -> Any:
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def _write(mt: Any) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(mt))


def _opname(mt: Any, op: Any) -> str:
    s = _schema()
    code = mt.operatorCodes[op.opcodeIndex]
    value = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next(k for k, v in vars(s.BuiltinOperator).items() if v == value and not k.startswith("_"))


def _typename(t: int) -> str:
    s = _schema()
    return next(k for k, v in vars(s.TensorType).items() if v == t and not k.startswith("_"))


def _if_ops(mt: Any, sg: Any) -> list[Any]:
    return [op for op in sg.operators if _opname(mt, op) == "IF"]


def _name_subgraphs(mt: Any, index: int, experts: int) -> None:
    """Name the tree's subgraphs: main, route_LO_HI (inner), expert_I (leaves), following the IF ops."""
    def walk(sg_index: int, lo: int, hi: int) -> None:
        sg = mt.subgraphs[sg_index]
        if hi - lo == 1:
            sg.name = f"expert_{lo}".encode()
            return
        if sg_index:
            sg.name = f"route_{lo}_{hi}".encode()
        ifs = _if_ops(mt, sg)
        if len(ifs) != 1:
            raise FormicaryError(f"unexpected converter output: subgraph {sg_index} has {len(ifs)} IF ops",
                                 "report this with the model; the export expects one IF per routing level.")
        mid = (lo + hi) // 2
        walk(ifs[0].builtinOptions.thenSubgraphIndex, lo, mid)
        walk(ifs[0].builtinOptions.elseSubgraphIndex, mid, hi)

    walk(index, 0, experts)


def _shorten_tensor_names(mt: Any) -> None:
    """Tensor names without the tf.cond nesting: the converter names a fused op's output after every op fused
    into it, each prefixed with the whole route (`route_0_4/route_0_2/expert_1/…;…`): 7 KB of strings for E = 4,
    half the weights' size. Keep the first of the fused names without the `route_*` prefix (`expert_1/cnn_w0_5/
    conv1/Relu`), branch inputs become `SUBGRAPH/input_K`, and a repeated name gets `#N` (names stay unique)."""
    for sg in mt.subgraphs:
        sg_name = (sg.name or b"").decode()
        inputs = {t: k for k, t in enumerate(sg.inputs)}
        seen: dict[str, int] = {}
        for i, t in enumerate(sg.tensors):
            raw = (t.name or b"").decode()
            if i in inputs and sg_name != "main":
                short = f"{sg_name}/input_{inputs[i]}"
            else:
                parts = [p for p in raw.split(";")[0].split("/") if not p.startswith("route_")]
                short = "/".join(parts) or f"{sg_name}/output"
            n = seen.get(short, 0)
            seen[short] = n + 1
            t.name = (short if n == 0 else f"{short}#{n + 1}").encode()


def _same_quant(a: Any, b: Any) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None or qa.scale is None or qb.scale is None:
        return False
    return (np.array_equal(np.asarray(qa.scale), np.asarray(qb.scale))
            and np.array_equal(np.asarray(qa.zeroPoint), np.asarray(qb.zeroPoint)))


def _copy_quant(dst: Any, src: Any) -> None:
    import copy

    dst.quantization = copy.deepcopy(src.quantization)
    dst.type = src.type


def _users(sg: Any, t: int) -> list[Any]:
    return [op for op in sg.operators if t in list(op.inputs)]


def _producer(sg: Any, t: int) -> Any | None:
    return next((op for op in sg.operators if t in list(op.outputs)), None)


def _int8_boundaries(mt: Any) -> int:
    """Rewrite float IF boundaries to int8 (module docstring); returns how many int8→int8 QUANTIZE remain."""
    requant = 0
    main = mt.subgraphs[0]
    root = _if_ops(mt, main)[0]
    # inputs: main's DEQUANTIZE feeding the root IF → pass its int8 source instead
    for slot, t in enumerate(list(root.inputs)[1:], start=1):
        prod = _producer(main, t)
        if prod is not None and _opname(mt, prod) == "DEQUANTIZE" and len(_users(main, t)) == 1:
            src = prod.inputs[0]
            root.inputs[slot] = src
            main.operators.remove(prod)
            requant += _retype_branch_input(mt, root, slot, main.tensors[src])
    # outputs: each leaf's final DEQUANTIZE removed, IF outputs int8, main's QUANTIZE after the root IF removed
    out_t = _leaf_outputs_int8(mt, root)
    if out_t is not None:
        t = root.outputs[0]
        _copy_quant(main.tensors[t], out_t)
        for op in _users(main, t):
            if _opname(mt, op) == "QUANTIZE":
                # the model's output takes the experts' own int8 quantization (a softmax's fixed 1/256, -128):
                # no requantization after the IF
                q_out = op.outputs[0]
                for user in _users(main, q_out):
                    user.inputs = [t if v == q_out else v for v in user.inputs]
                main.outputs = [t if v == q_out else v for v in main.outputs]
                main.operators.remove(op)
    return requant


def _retype_branch_input(mt: Any, if_op: Any, slot: int, like: Any) -> int:
    """Make input `slot` of IF's branches int8 (quantized as `like`), recursively; returns requantizations kept."""
    requant = 0
    for sg_index in (if_op.builtinOptions.thenSubgraphIndex, if_op.builtinOptions.elseSubgraphIndex):
        sg = mt.subgraphs[sg_index]
        t = sg.inputs[slot - 1]
        _copy_quant(sg.tensors[t], like)
        for op in _users(sg, t):
            name = _opname(mt, op)
            if name == "IF":
                requant += _retype_branch_input(mt, op, list(op.inputs).index(t), like)
            elif name == "QUANTIZE":
                q_out = op.outputs[0]
                if _same_quant(sg.tensors[q_out], like) or _fold_requantize(mt, sg, op, like):
                    for user in _users(sg, q_out):
                        user.inputs = [t if v == q_out else v for v in user.inputs]
                    sg.operators.remove(op)
                else:
                    requant += 1  # int8 -> int8 QUANTIZE: TFLM's requantize
    return requant


_FOLDABLE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _fold_requantize(mt: Any, sg: Any, quantize: Any, like: Any) -> bool:
    """Let the expert's first layer read the stem's int8 output as it is, instead of requantizing it (an int8 →
    int8 QUANTIZE of the whole feature map: 11,360 instructions of ~130,000 on qemu-m4 for the digits MoE).

    The layer's int8 arithmetic only sees its input's scale through the output multiplier (input scale × filter
    scale / output scale) and through its int32 bias, which is in units of input scale × filter scale. So the
    QUANTIZE goes when its one consumer is a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED reading it as input 0:
    that input takes the stem output's scale and zero point and the bias is rescaled to the new units (rounded,
    an error of at most half a unit of s_in·s_w, far below the accumulator's resolution). Nothing is lost: the
    requantization only re-rounded (and clipped) values already quantized at the stem's scale. False (QUANTIZE
    kept) when the pattern does not hold or the bias buffer is shared."""
    q_out = quantize.outputs[0]
    users = _users(sg, q_out)
    if len(users) != 1 or _opname(mt, users[0]) not in _FOLDABLE:
        return False
    layer = users[0]
    if list(layer.inputs).count(q_out) != 1 or layer.inputs[0] != q_out:
        return False
    old_q, new_q = sg.tensors[q_out].quantization, like.quantization
    if old_q is None or new_q is None or old_q.scale is None or new_q.scale is None or \
            len(old_q.scale) != 1 or len(new_q.scale) != 1:
        return False
    ratio = float(old_q.scale[0]) / float(new_q.scale[0])
    if len(layer.inputs) > 2 and layer.inputs[2] >= 0:
        bias = sg.tensors[layer.inputs[2]]
        buf = mt.buffers[bias.buffer]
        shared = sum(t.buffer == bias.buffer for g in mt.subgraphs for t in g.tensors)
        if bias.type != _schema().TensorType.INT32 or buf.data is None or shared != 1:
            return False
        values = np.frombuffer(np.asarray(buf.data, dtype=np.uint8).tobytes(), dtype="<i4").astype(np.float64)
        rescaled = np.clip(np.round(values * ratio), -2**31, 2**31 - 1).astype("<i4")
        buf.data = np.frombuffer(rescaled.tobytes(), dtype=np.uint8).copy()
        if bias.quantization is not None and bias.quantization.scale is not None:
            bias.quantization.scale = [float(v) / ratio for v in bias.quantization.scale]
    return True


def _leaf_outputs_int8(mt: Any, if_op: Any) -> Any | None:
    """Drop the DEQUANTIZE ending every leaf and type the IF outputs up the tree int8; None (nothing changed) when
    the leaves' int8 outputs are not all quantized alike."""
    leaves: list[Any] = []

    def collect(op: Any) -> None:
        for sg_index in (op.builtinOptions.thenSubgraphIndex, op.builtinOptions.elseSubgraphIndex):
            sg = mt.subgraphs[sg_index]
            inner = _if_ops(mt, sg)
            if inner:
                collect(inner[0])
            leaves.append(sg) if not inner else None

    collect(if_op)
    ends = []
    for sg in leaves:
        prod = _producer(sg, sg.outputs[0])
        if prod is None or _opname(mt, prod) != "DEQUANTIZE":
            return None
        ends.append((sg, prod))
    first = ends[0][0].tensors[ends[0][1].inputs[0]]
    if not all(_same_quant(sg.tensors[p.inputs[0]], first) for sg, p in ends):
        return None
    for sg, prod in ends:
        sg.outputs = [prod.inputs[0]]
        sg.operators.remove(prod)

    def retype(op: Any) -> None:
        for sg_index in (op.builtinOptions.thenSubgraphIndex, op.builtinOptions.elseSubgraphIndex):
            sg = mt.subgraphs[sg_index]
            inner = _if_ops(mt, sg)
            if inner:
                _copy_quant(sg.tensors[inner[0].outputs[0]], first)
                retype(inner[0])

    retype(if_op)
    return first


def _check_quantized(mt: Any) -> None:
    """Every CONV/FC/DEPTHWISE in every subgraph must be int8: a float expert was not calibrated."""
    s = _schema()
    for i, sg in enumerate(mt.subgraphs):
        for op in sg.operators:
            if _opname(mt, op) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and \
                    sg.tensors[op.inputs[0]].type != s.TensorType.INT8:
                raise FormicaryError(f"subgraph {sg.name.decode()!r} kept float {_opname(mt, op)} ops: the "
                                     "calibration never reached it",
                                     "give calibration data that routes to every expert (or a larger "
                                     "--balance-weight).")


def describe(data: bytes) -> list[dict[str, Any]]:
    """Per subgraph: index, name, its ops with input/output tensor types, its inputs/outputs, IF branch targets."""
    mt = _read(data)
    out = []
    for i, sg in enumerate(mt.subgraphs):
        ops = []
        for op in sg.operators:
            entry: dict[str, Any] = {"op": _opname(mt, op),
                                     "in": [_typename(sg.tensors[t].type) for t in op.inputs if t >= 0],
                                     "out": [_typename(sg.tensors[t].type) for t in op.outputs]}
            if entry["op"] == "IF":
                entry["then"] = int(op.builtinOptions.thenSubgraphIndex)
                entry["else"] = int(op.builtinOptions.elseSubgraphIndex)
            ops.append(entry)
        out.append({"index": i, "name": (sg.name or b"").decode(), "ops": ops,
                    "inputs": [_typename(sg.tensors[t].type) for t in sg.inputs],
                    "outputs": [_typename(sg.tensors[t].type) for t in sg.outputs]})
    return out
