"""ONNX models in: recognise, check, convert to a tf_keras model with onnx2tf, and run the float original with
onnxruntime (the accuracy reference).

ONNX (what `torch.onnx.export` writes) is channels-first (NCHW); TFLite and TFLM are channels-last (NHWC).
onnx2tf transposes rank-3..5 inputs to channels-last, so the produced .tflite takes NHWC: data given in the ONNX
model's own layout is transposed here (`Layout`), and the report says so. Before converting, a Flatten/Reshape
of an NCHW feature map feeding a Gemm/MatMul is rewritten so the classifier's weight rows are permuted instead:
otherwise the NHWC model needs a TRANSPOSE op before every classifier (which formicary-rt has no kernel for,
and which costs a copy of the feature map on the device).

Needs the `onnx` extra (onnx, onnxruntime, onnx2tf and the modules onnx2tf imports without declaring them):
`require_onnx_extra` names the pip command when any is missing, before TensorFlow is imported.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

INSTALL_HINT = "pip install 'formicary[onnx]'"
# What onnx2tf 1.28 imports at run time (its wheel declares none of them), beside onnx and onnxruntime.
_EXTRA_MODULES = ("onnx", "onnxruntime", "onnx2tf", "onnx_graphsurgeon", "sng4onnx", "sne4onnx", "psutil",
                  "requests")

# ONNX ops that onnx2tf lowers to TFLite builtins with full-integer int8 kernels in TFLM (checked on every model
# anyway). Anything else is refused before the (slow) conversion with the op named.
SUPPORTED_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh",
    "HardSigmoid", "HardSwish", "Softmax", "LogSoftmax", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "BatchNormalization", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Pad",
    "Transpose", "Identity", "Dropout", "Constant", "ReduceMean", "ReduceMax", "Split", "Slice",
    "Max", "Min", "ReduceSum",  # onnx2tf: MAXIMUM, MINIMUM, SUM (checked with onnx2tf 1.28.8)
    # DEPTH_TO_SPACE / SPACE_TO_DEPTH (checked with onnx2tf 1.28); DepthToSpace mode=CRD becomes a 6-D TRANSPOSE,
    # which TFLM and codegen refuse, naming it.
    "DepthToSpace", "SpaceToDepth",
    # onnx2tf 1.28: nearest -> RESIZE_NEAREST_NEIGHBOR, linear -> RESIZE_BILINEAR (half_pixel_centers kept);
    # ConvTranspose -> TRANSPOSE_CONV when the node carries kernel_shape (torch.onnx.export writes it)
    "Resize", "ConvTranspose",
})
# Ops whose outputs are only compile-time shapes (folded by onnx2tf when their inputs are static).
_SHAPE_OPS = frozenset({"Shape", "Gather", "Cast", "ConstantOfShape", "Range", "Expand", "Div", "Floor"})
_CHANNELS_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1), 5: (0, 2, 3, 4, 1)}
_EXPORT_FIX = ("export with a fixed input shape: torch.onnx.export(model, (torch.zeros(1, C, H, W),), 'model.onnx') "
               "without dynamic_axes / dynamic_shapes, or fix the dimensions of an existing file with "
               "`python -m onnxruntime.tools.make_dynamic_shape_fixed --dim_param NAME --dim_value N in.onnx out.onnx`")


@dataclass
class OnnxModel:
    """An ONNX file checked for what the pipeline needs: one static-shaped float input, ops it can convert."""

    path: Path
    input_name: str
    input_shape: tuple[int, ...]        # ONNX layout, batch included (fixed to 1 if it was dynamic)
    output_name: str
    opset: int
    ops: dict[str, int]                 # op type -> count
    notes: list[str] = field(default_factory=list)
    kind: str = "onnx"


@dataclass
class Layout:
    """How the ONNX input layout maps to the .tflite's: `perm` takes ONNX-layout samples to the model's."""

    onnx_shape: tuple[int, ...]
    tflite_shape: tuple[int, ...]
    perm: tuple[int, ...] | None        # None: same layout

    @property
    def name(self) -> str:
        if self.perm is None:
            return "unchanged"
        letters = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}[len(self.perm)]
        return f"{letters[0]} -> {letters[1]}"

    def to_dict(self) -> dict[str, Any]:
        return {"onnx_input_shape": list(self.onnx_shape), "tflite_input_shape": list(self.tflite_shape),
                "transform": self.name, "transpose": list(self.perm) if self.perm else None}


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


def require_onnx_extra() -> None:
    missing = [m for m in _EXTRA_MODULES if find_spec(m) is None]
    if missing:
        raise FormicaryError(f"ONNX models need the optional `onnx` extra; missing module(s): {', '.join(missing)}",
                             f"install it: {INSTALL_HINT}", details={"missing": missing})


def identify_onnx(path: str | Path) -> OnnxModel:
    """Load and check an .onnx file (no TensorFlow): FormicaryError naming the input, dimension or op at fault."""
    p = Path(path)
    if not p.is_file():
        raise FormicaryError(f"model not found: {p}", "pass an existing .onnx file.")
    require_onnx_extra()
    import onnx

    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker raise several types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormicaryError(f"{p.name} is not a valid ONNX model: {first}",
                             "re-export it (torch.onnx.export); keep a .onnx.data file beside it if it has one.") from exc
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise FormicaryError(f"{p.name} has {len(inputs)} input(s) and {len(graph.output)} output(s); formicary "
                             "compiles single-input, single-output models",
                             "export a model whose forward() takes one tensor and returns one.")
    tin = inputs[0]
    if tin.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise FormicaryError(f"{p.name}: input {tin.name!r} is not float32", "export the model with a float input.")
    dims = list(tin.type.tensor_type.shape.dim)
    notes: list[str] = []
    shape: list[int] = []
    dynamic = []
    for axis, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        elif axis == 0:
            shape.append(1)  # a free batch axis: one sample per inference on a microcontroller
            notes.append(f"dynamic batch axis {d.dim_param or '?'!r} of input {tin.name!r} fixed to 1")
        else:
            dynamic.append(f"axis {axis} ({d.dim_param or 'unknown'})")
    if dynamic:
        shown = [str(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                 for d in dims]
        raise FormicaryError(f"{p.name}: input {tin.name!r} has dynamic dimensions {', '.join(dynamic)} "
                             f"(shape [{', '.join(shown)}]); a microcontroller model needs every size fixed ahead "
                             "of time", _EXPORT_FIX + ".", details={"input": tin.name, "shape": shown})
    ops: dict[str, int] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise FormicaryError(f"{p.name}: node {node.name or node.op_type!r} is the custom op "
                                 f"{node.domain}::{node.op_type}, which no converter or TFLM kernel knows",
                                 "export with standard ONNX ops only (no custom/contrib ops).",
                                 details={"op": node.op_type, "node": node.name, "domain": node.domain})
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    unsupported = sorted(set(ops) - SUPPORTED_OPS - _SHAPE_OPS)
    if unsupported:
        nodes = [n.name or n.op_type for n in graph.node if n.op_type in unsupported][:5]
        raise FormicaryError(f"{p.name}: ONNX op(s) {', '.join(unsupported)} (node(s) {', '.join(nodes)}) have no "
                             "int8 TFLite Micro kernel after conversion",
                             "replace them in the source model with supported layers (docs/models.md#onnx lists "
                             f"the ops: {', '.join(sorted(SUPPORTED_OPS))}) and export again.",
                             details={"ops": unsupported, "nodes": nodes})
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return OnnxModel(p, tin.name, tuple(shape), graph.output[0].name, opset, ops, notes)


# ------------------------------------------------------------------------------------------------ rewrite

def _flatten_to_channels_last(model: Any) -> int:
    """Flatten/Reshape(N, C, H, W -> N, C*H*W) feeding a Gemm/MatMul with constant weights: insert a
    Transpose to NHWC before the flatten and permute the weight rows to match. onnx2tf turns the pair
    Transpose(0,2,3,1)-on-its-NHWC-tensor into nothing, so the .tflite has no TRANSPOSE. Returns rewrites."""
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [int(d.dim_value) for d in dims]
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    done = 0
    for node in list(graph.node):
        src = node.input[0] if node.input else None
        if node.op_type not in ("Flatten", "Reshape") or len(shapes.get(src, [])) != 4:
            continue
        if node.op_type == "Flatten" and next((a.i for a in node.attribute if a.name == "axis"), 1) != 1:
            continue
        if node.op_type == "Reshape":
            target = inits.get(node.input[1])
            if target is None or len(numpy_helper.to_array(target)) != 2:
                continue
        users = consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type not in ("Gemm", "MatMul") or users[0].input[0] != node.output[0]:
            continue
        user = users[0]
        weight = inits.get(user.input[1])
        if weight is None or len(consumers.get(user.input[1], [])) != 1:
            continue
        n, c, h, w = shapes[src]
        trans_b = user.op_type == "Gemm" and next((a.i for a in user.attribute if a.name == "transB"), 0) == 1
        wt = numpy_helper.to_array(weight)
        rows = wt if trans_b else wt.T                    # [out, C*H*W]
        if rows.shape[1] != c * h * w:
            continue
        rows = rows.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(rows.shape[0], -1)
        weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(rows if trans_b else rows.T), weight.name))
        moved = f"{src}__fm_nhwc"
        node.input[0] = moved
        graph.node.insert(list(graph.node).index(node),
                          helper.make_node("Transpose", [src], [moved], perm=[0, 2, 3, 1],
                                           name=f"{node.name or 'flatten'}__fm_nhwc"))
        done += 1
    return done


def _fix_batch(model: Any, shape: tuple[int, ...]) -> None:
    dims = model.graph.input[[i.name for i in model.graph.input].index(_input_name(model))].type.tensor_type.shape.dim
    for d, size in zip(dims, shape):
        d.Clear()
        d.dim_value = size


def _input_name(model: Any) -> str:
    weights = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in weights)


# ---------------------------------------------------------------------------------------------- convert

def to_keras(source: OnnxModel, workdir: str | Path) -> tuple[Any, Layout, dict[str, Any]]:
    """onnx2tf: the ONNX model as a tf_keras model (NHWC), its layout mapping, and what was done."""
    import onnx

    from formicary.model.keras_io import quiet_native_logs

    model = onnx.load(str(source.path))
    _fix_batch(model, source.input_shape)
    rewrites = _flatten_to_channels_last(model)
    work = Path(workdir)
    prepared = work / "prepared.onnx"
    onnx.save(model, str(prepared))
    out = io.StringIO()
    with quiet_native_logs(), contextlib.redirect_stdout(out), _offline_sample_images():
        import onnx2tf

        try:
            keras_model = onnx2tf.convert(input_onnx_file_path=str(prepared), output_folder_path=str(work / "tf"),
                                          non_verbose=True, not_use_onnxsim=True, batch_size=1,
                                          disable_model_save=True)  # formicary converts it itself
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - onnx2tf calls sys.exit on some failures
            error: BaseException | None = exc
        else:
            error = None
    if error is not None or keras_model is None:
        text = out.getvalue()[-4000:]
        failed = _failed_op(text)
        raise FormicaryError(f"onnx2tf could not convert {source.path.name}"
                             + (f" (at ONNX op {failed})" if failed else "") + f": {error or 'no model returned'}",
                             "simplify the source model around that op (standard layers, static shapes) and export "
                             "again; `onnx2tf -i model.onnx` shows the full conversion log.",
                             details={"onnx2tf": text}) from (error if isinstance(error, Exception) else None)
    tf_shape = tuple(int(d) for d in keras_model.inputs[0].shape)
    layout = _layout(source.input_shape, tf_shape)
    info = {"converter": f"onnx2tf {_version('onnx2tf')}", "flatten_rewrites": rewrites}
    return keras_model, layout, info


@contextlib.contextmanager
def _offline_sample_images() -> Iterator[None]:
    """onnx2tf downloads sample photos from GitHub for any model with a 3-channel 4-D input, only to run a dummy
    inference while converting (its own int8 calibration, which formicary does not use, needs them too). Offline
    machines (CI) fail there, so it gets deterministic stand-ins of the same shape; formicary calibrates and checks
    the conversion on the user's data."""
    import onnx2tf.onnx2tf as converter_module

    original = getattr(converter_module, "download_test_image_data", None)
    if original is None:  # a later onnx2tf: nothing to replace
        yield
        return

    def stand_in() -> np.ndarray:
        return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)

    converter_module.download_test_image_data = stand_in
    try:
        yield
    finally:
        converter_module.download_test_image_data = original


def _failed_op(log: str) -> str | None:
    for line in log.splitlines():
        if "onnx_op_type:" in line:
            return line.split("onnx_op_type:")[1].split()[0].strip(",")
    return None


def _layout(onnx_shape: tuple[int, ...], tf_shape: tuple[int, ...]) -> Layout:
    if tf_shape == onnx_shape and len(onnx_shape) not in _CHANNELS_LAST:
        return Layout(onnx_shape, tf_shape, None)
    perm = _CHANNELS_LAST.get(len(onnx_shape))
    if perm is not None and tuple(onnx_shape[i] for i in perm) == tf_shape:
        return Layout(onnx_shape, tf_shape, perm)
    if tf_shape == onnx_shape:
        return Layout(onnx_shape, tf_shape, None)
    raise FormicaryError(f"onnx2tf produced input shape {list(tf_shape)} for ONNX input {list(onnx_shape)}, which is "
                         "neither the same nor its channels-last transpose", "report this model to formicary.")


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def versions() -> dict[str, str]:
    return {pkg: _version(pkg) for pkg in ("onnx", "onnxruntime", "onnx2tf")}


# ------------------------------------------------------------------------------------------------- data

def to_model_layout(x: np.ndarray, layout: Layout, role: str) -> tuple[np.ndarray, str]:
    """Samples (first axis = samples) in the ONNX layout, or already in the .tflite's, as the .tflite's layout;
    the second value says which was found (for the report)."""
    got = tuple(x.shape[1:])
    onnx_sample, tfl_sample = layout.onnx_shape[1:], layout.tflite_shape[1:]
    if got == onnx_sample:
        if layout.perm is None:
            return x, "given in the model's layout"
        return x.transpose(layout.perm), f"given in the ONNX layout {list(onnx_sample)}, transposed {layout.name}"
    if got == tfl_sample:
        return x, f"given in the TFLite layout {list(tfl_sample)}, used as is"
    if len(onnx_sample) >= 2 and onnx_sample[0] == 1 and got == onnx_sample[1:]:  # NCHW with C = 1 squeezed
        return to_model_layout(x[:, None], layout, role)[0], (f"given without the channel axis, read as ONNX "
                                                              f"layout {list(onnx_sample)}, transposed {layout.name}")
    raise FormicaryError(f"{role} data does not match the ONNX model input: samples are {list(got)}, the model "
                         f"takes {list(onnx_sample)} (ONNX layout) = {list(tfl_sample)} (TFLite layout)",
                         "give data shaped like the ONNX model input (first axis = samples).",
                         details={"onnx_input": list(onnx_sample), "data_sample": list(got)})


def onnxruntime_outputs(path: str | Path, x_onnx_layout: np.ndarray) -> np.ndarray:
    """The float model's outputs (onnxruntime, CPU), one sample per run: [samples, ...]."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = x_onnx_layout.astype(np.float32, copy=False)
    return np.stack([_one_sample(session.run(None, {name: x[i:i + 1]})[0]) for i in range(len(x))])


def keras_outputs(model: Any, x_model_layout: np.ndarray) -> np.ndarray:
    """The converted float tf_keras model's outputs, one sample per call (its batch axis is fixed to 1)."""
    from formicary.model.keras_io import quiet_native_logs

    x = x_model_layout.astype(np.float32, copy=False)
    with quiet_native_logs():
        return np.stack([_one_sample(np.asarray(model(x[i:i + 1], training=False))) for i in range(len(x))])


def _one_sample(batch_of_one: np.ndarray) -> np.ndarray:
    return batch_of_one[0] if batch_of_one.ndim > 1 and batch_of_one.shape[0] == 1 else batch_of_one.reshape(-1)


def align_output_layout(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, str]:
    """onnxruntime's outputs `ref` [samples, ...] in the converted model's layout, and that layout's name.

    onnx2tf computes channel-last, so a feature-map output (channels and 1-3 spatial axes: segmentation, autoencoders)
    comes out NHWC where the ONNX model says NCHW; flat outputs (classifiers) are unchanged. When both layouts
    fit the shapes (e.g. C == H == W), the one closer to the converted model's outputs is taken."""
    candidates: list[tuple[np.ndarray, str]] = []
    if ref.shape == got.shape:
        candidates.append((ref, "unchanged"))
    if ref.ndim >= 3:  # samples, C, spatial...
        moved = ref.transpose(0, *range(2, ref.ndim), 1)
        if moved.shape == got.shape:
            name = {3: "NCW -> NWC", 4: "NCHW -> NHWC", 5: "NCDHW -> NDHWC"}.get(ref.ndim, "channels first -> last")
            candidates.append((moved, name))
    if not candidates:
        if ref.size != got.size:
            raise FormicaryError(f"the converted model's output shape {got.shape[1:]} does not match the ONNX "
                                 f"model's {ref.shape[1:]}.",
                                 "this is a converter problem: report it with the .onnx file.")
        return ref.reshape(got.shape), "unchanged"
    return min(candidates, key=lambda c: float(np.abs(c[0] - got).max()) if got.size else 0.0)


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="formicary-onnx-")
