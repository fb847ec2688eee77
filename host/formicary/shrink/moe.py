"""Mixture of experts (MoE): a gate picks the expert, only that expert runs. Keras builder and joint training.

The model (docs/shrinking.md, "Mixture of experts"):
- stem (optional, shared): Conv 3×3 (same padding, ReLU) layers, channel counts given as e.g. "8" or "8,16";
  `none` feeds the experts the input itself.
- gate: Flatten → Dense(E) on the stem features: gate logits, softmax → gate probabilities g.
- E experts, each a classifier ending in a softmax over the classes, on the stem features: a built-in
  architecture (`builtin:cnn@0.5`, formicary.model.students, input = the stem's output shape), the user's tf_keras
  model file (its architecture is cloned with fresh weights for every expert), or a Python callable
  `(input_shape, classes) -> keras.Model`.
- top-k routing: the k experts of largest gate probability. At inference the output is their probabilities
  combined with the renormalised gate weights (k = 1: the chosen expert's output as it is).
- training output (differentiable in the gate): Σ_{i in top-k} g_i·p_i + (1 − Σ_{i in top-k} g_i)/C, C the number of
  classes: the selected experts' outputs scaled by their (not renormalised) gate probabilities, the rest of the
  probability mass spread uniformly. The loss log-likelihood then rewards a larger g_i exactly when expert i does
  better than chance on the example (for k = 1 the renormalised weight is 1 and would give the gate no gradient at
  all); its arg-max equals the inference output's (the two differ by a positive factor and a constant), so what is
  trained is what runs. Experts not selected get no gradient from that example (only the selected ones run).
- load balancing: the Switch-Transformer auxiliary loss E·Σ_i f_i·P_i (f_i = fraction of the batch's routing slots
  that go to expert i, P_i = mean gate probability of expert i; 1 when balanced), times `balance_weight`, added to
  the cross-entropy, so the gate does not collapse onto one expert.
- deterministic with the seed (formicary.model.keras_io.make_deterministic).

The export (formicary.shrink.moe_export) turns the trained model into a .tflite with real conditional execution.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formicary.data import Dataset, as_float
from formicary.errors import FormicaryError

MAX_EXPERTS = 64
ExpertFactory = Callable[[tuple[int, ...], int], Any]


@dataclass
class MoEOptions:
    """What `formicary moe` was asked to do (the CLI options, one to one)."""

    experts: int = 4
    top_k: int = 1
    expert: str | ExpertFactory | Any = "builtin:cnn@0.5"   # spec, callable or tf_keras model (template)
    stem: str = "8"                 # conv channels, comma-separated; "none" = no stem
    balance_weight: float = 0.5
    gate_noise: float = 0.3         # std of the noise added to the gate logits when choosing experts in training
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    prune: float | None = None      # then magnitude-prune every expert to this sparsity (prune_experts)
    prune_epochs: int = 5           # fine-tuning epochs per expert, for pruning and for clustering
    cluster: int | None = None      # then cluster every expert's kernels into this many centroids (cluster_experts)


def validate_options(o: MoEOptions) -> None:
    """Option errors that need neither TensorFlow nor the data."""
    if not 2 <= o.experts <= MAX_EXPERTS:
        raise FormicaryError(f"--experts {o.experts}: a mixture needs 2 to {MAX_EXPERTS} experts",
                             "pass e.g. --experts 4 (one expert is a plain model: use formicary compile).")
    if not 1 <= o.top_k <= o.experts:
        raise FormicaryError(f"--top-k {o.top_k} with {o.experts} experts: k must be 1 … {o.experts}",
                             "pass --top-k 1 (one expert runs per inference) or up to --experts.")
    if not (o.balance_weight >= 0 and math.isfinite(o.balance_weight)):
        raise FormicaryError(f"--balance-weight {o.balance_weight} must be a finite number ≥ 0",
                             "pass e.g. --balance-weight 0.01 (0 turns the load-balancing loss off).")
    if not (o.gate_noise >= 0 and math.isfinite(o.gate_noise)):
        raise FormicaryError(f"--gate-noise {o.gate_noise} must be a finite number ≥ 0",
                             "pass e.g. --gate-noise 1 (0 = no routing noise while training).")
    if o.epochs < 1:
        raise FormicaryError(f"--epochs {o.epochs}: need at least 1", "pass --epochs 1 or more.")
    if o.batch_size < 1:
        raise FormicaryError(f"batch size {o.batch_size}: need at least 1", "use a positive batch size.")
    if not o.learning_rate > 0:
        raise FormicaryError("--lr must be positive", "pass e.g. --lr 3e-3.")
    if o.prune is not None and not 0.0 < o.prune < 1.0:
        raise FormicaryError(f"--prune {o.prune}: the sparsity must be between 0 and 1",
                             "pass e.g. --prune 0.5 (half of each expert's weights set to zero).")
    if o.cluster is not None and o.cluster < 2:
        raise FormicaryError(f"--cluster {o.cluster}: need at least 2 clusters", "pass e.g. --cluster 16.")
    if o.prune_epochs < 1:
        raise FormicaryError(f"--prune-epochs {o.prune_epochs}: need at least 1", "pass --prune-epochs 1 or more.")
    stem_channels(o.stem)
    if isinstance(o.expert, str):
        expert_source(o.expert)


def stem_channels(stem: str) -> list[int]:
    """`--stem` as a list of conv channel counts ([] for none)."""
    text = str(stem).strip().lower()
    if text in ("", "none", "0"):
        return []
    try:
        channels = [int(c) for c in text.split(",")]
    except ValueError:
        channels = []
    if not channels or any(c < 1 or c > 1024 for c in channels):
        raise FormicaryError(f"--stem {stem!r} is not a list of channel counts",
                             "pass e.g. --stem 8 (one 3x3 conv of 8 channels), --stem 8,16, or --stem none.")
    return channels


def expert_source(spec: str) -> Any:
    """A `--expert` spec checked: a BuiltinSpec, or the Path of an existing Keras model file."""
    from formicary.model.students import is_builtin, parse_builtin

    if is_builtin(spec):
        return parse_builtin(spec)
    p = Path(spec)
    if not p.exists():
        raise FormicaryError(f"--expert {spec!r} is neither a built-in architecture nor an existing model file",
                             "pass builtin:cnn@WIDTH / builtin:dscnn@WIDTH, or a tf_keras model (.keras/.h5) whose "
                             "input is the stem's output shape and whose output is a softmax over the classes.")
    return p


# ------------------------------------------------------------------------------------------------ keras parts

def _combine_layer_class():
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="formicary")
    class MoECombine(keras.layers.Layer):
        """[gate logits (B, E), expert outputs E × (B, C)] → (B, C): top-k routing (module docstring), with the
        load-balancing loss added while training."""

        def __init__(self, top_k: int = 1, balance_weight: float = 0.0, gate_noise: float = 0.0,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.top_k = int(top_k)
            self.balance_weight = float(balance_weight)
            self.gate_noise = float(gate_noise)

        def call(self, inputs: list[Any], training: Any = None) -> Any:
            logits, outs = inputs[0], tf.stack(inputs[1:], axis=1)             # (B, E), (B, E, C)
            experts, classes = outs.shape[1], outs.shape[2]
            g = tf.nn.softmax(logits, axis=-1)
            pick = logits
            if self.gate_noise > 0:  # noisy routing while training: every expert gets examples early on
                noisy = logits + tf.random.normal(tf.shape(logits), stddev=self.gate_noise)
                pick = keras.backend.in_train_phase(noisy, logits, training=training)
            _, top = tf.math.top_k(pick, k=self.top_k)                        # ties: the lower index
            mask = tf.reduce_sum(tf.one_hot(top, experts, dtype=g.dtype), axis=1)  # (B, E) in {0, 1}
            w = g * mask
            if self.balance_weight > 0:
                f = tf.reduce_mean(mask, axis=0) / float(self.top_k)
                p = tf.reduce_mean(g, axis=0)
                self.add_loss(self.balance_weight * float(experts) * tf.reduce_sum(f * p))
            mixed = tf.einsum("be,bec->bc", w, outs)
            kept = tf.reduce_sum(w, axis=1, keepdims=True)
            train_out = mixed + (1.0 - kept) / float(classes)
            infer_out = mixed / tf.maximum(kept, 1e-12)
            return keras.backend.in_train_phase(train_out, infer_out, training=training)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "top_k": self.top_k, "balance_weight": self.balance_weight,
                    "gate_noise": self.gate_noise}

    return MoECombine


_COMBINE = None


def combine_layer_class():
    """The registered MoECombine layer class (made on first use: TensorFlow is imported lazily)."""
    global _COMBINE
    if _COMBINE is None:
        _COMBINE = _combine_layer_class()
    return _COMBINE


def _expert_model(source: Any, index: int, feat_shape: tuple[int, ...], classes: int) -> Any:
    import tf_keras as keras

    from formicary.model.students import BuiltinSpec, build_builtin
    from formicary.shrink import output_activation

    if isinstance(source, BuiltinSpec):
        inner = build_builtin(source, feat_shape, classes)
    elif isinstance(source, keras.Model):  # (a model is callable too: test it first)
        inner = keras.models.clone_model(source)  # same architecture, fresh weights
    else:
        inner = source(feat_shape, classes)
    got = tuple(int(d) for d in inner.inputs[0].shape[1:]) if inner.inputs[0].shape.rank else ()
    if got != tuple(feat_shape):
        raise FormicaryError(f"the expert architecture takes inputs of shape {got}, but the stem gives {feat_shape}",
                             "make the expert's input the stem's output shape (or change --stem).")
    if int(inner.outputs[0].shape[-1]) != classes or output_activation(inner) != "softmax":
        raise FormicaryError(f"the expert must end in a softmax over the {classes} classes; it gives "
                             f"{inner.outputs[0].shape[-1]} outputs ({output_activation(inner) or 'linear'})",
                             f"end the expert architecture with Dense({classes}, activation='softmax').")
    x = keras.Input(feat_shape, name=f"expert_{index}_in")
    return keras.Model(x, inner(x), name=f"expert_{index}")


def build_moe(input_shape: tuple[int, ...], classes: int, options: MoEOptions) -> Any:
    """The tf_keras MoE model (untrained; weights from TensorFlow's global seed: seed it first).

    Layers: `stem_conv1…` (if any), `gate_flatten`, `gate_logits`, nested models `expert_0…expert_{E-1}`,
    `moe` (MoECombine)."""
    import tf_keras as keras

    validate_options(options)
    shape = tuple(int(d) for d in (input_shape[1:] if len(input_shape) == 4 else input_shape))
    if classes < 2:
        raise FormicaryError(f"a mixture of classifiers needs at least 2 classes, got {classes}",
                             "give labels 0 … N-1 with N ≥ 2.")
    source = options.expert
    if isinstance(source, str):
        source = expert_source(source)
        if isinstance(source, Path):
            from formicary.model import keras_io

            source = keras_io.load_for_training(keras_io.identify(source), "--expert")
    inp = keras.Input(shape, name="image")
    f = inp
    for i, ch in enumerate(stem_channels(options.stem)):
        f = keras.layers.Conv2D(ch, 3, padding="same", activation="relu", name=f"stem_conv{i + 1}")(f)
    feat_shape = tuple(int(d) for d in f.shape[1:])
    logits = keras.layers.Dense(options.experts, name="gate_logits")(keras.layers.Flatten(name="gate_flatten")(f))
    outs = [_expert_model(source, i, feat_shape, classes)(f) for i in range(options.experts)]
    y = combine_layer_class()(options.top_k, options.balance_weight, options.gate_noise, name="moe")([logits] + outs)
    return keras.Model(inp, y, name=f"moe{options.experts}")


def load_moe(path: str | Path) -> Any:
    """Load a mixture saved by `formicary moe` (moe.keras): registers the MoECombine layer first."""
    import tf_keras as keras

    combine_layer_class()
    return keras.models.load_model(str(path))


@dataclass
class MoEParts:
    """The trained model's pieces, as the export and the analysis need them."""

    stem: list[Any]          # Conv2D layers, in order
    gate: list[Any]          # [Flatten, Dense]
    experts: list[Any]       # nested keras.Models
    top_k: int
    feature_shape: tuple[int, ...] = field(default_factory=tuple)


def parts(model: Any) -> MoEParts:
    """Split a model made by build_moe into stem, gate and experts (FormicaryError for any other model)."""
    names = {lay.name: lay for lay in model.layers}
    if "moe" not in names or "gate_logits" not in names:
        raise FormicaryError(f"{model.name!r} is not a formicary mixture of experts (no 'moe'/'gate_logits' layer)",
                             "train it with formicary moe (formicary.shrink.moe.build_moe).")
    stem = [names[n] for n in sorted((n for n in names if n.startswith("stem_conv")), key=lambda s: int(s[9:]))]
    experts = sorted((lay for lay in model.layers if lay.name.startswith("expert_")), key=lambda m: int(m.name[7:]))
    feat = tuple(int(d) for d in experts[0].inputs[0].shape[1:])
    return MoEParts(stem, [names["gate_flatten"], names["gate_logits"]], experts, names["moe"].top_k, feat)


# ------------------------------------------------------------------------------------------- counting

def layer_macs(layer: Any) -> int:
    """Multiply-accumulates of one Conv/Depthwise/Dense layer (recursing into nested models); 0 for the rest."""
    kind = type(layer).__name__
    if hasattr(layer, "layers") and kind in ("Functional", "Sequential", "Model"):
        return sum(layer_macs(sub) for sub in layer.layers)
    out = layer.output_shape if hasattr(layer, "output_shape") else None
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        cin = int(layer.kernel.shape[2])
        return int(np.prod(out[1:3])) * int(out[3]) * kh * kw * cin
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        return int(np.prod(out[1:3])) * int(out[3]) * kh * kw
    if kind == "Dense":
        return int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return 0


def model_macs(model: Any) -> int:
    return sum(layer_macs(lay) for lay in model.layers)


def costs(model: Any) -> dict[str, Any]:
    """Parameters and MACs per part: stem, gate, each expert; per inference (stem + gate + the k largest experts)
    and in total (what a dense model holding all experts would compute)."""
    p = parts(model)
    stem_macs = sum(layer_macs(lay) for lay in p.stem)
    gate_macs = sum(layer_macs(lay) for lay in p.gate)
    exp_macs = [model_macs(e) for e in p.experts]
    stem_params = sum(lay.count_params() for lay in p.stem)
    gate_params = sum(lay.count_params() for lay in p.gate)
    exp_params = [e.count_params() for e in p.experts]
    per_inf = stem_macs + gate_macs + sum(sorted(exp_macs, reverse=True)[:p.top_k])
    return {"stem_params": stem_params, "gate_params": gate_params, "params_per_expert": exp_params,
            "total_params": stem_params + gate_params + sum(exp_params),
            "stem_macs": stem_macs, "gate_macs": gate_macs, "macs_per_expert": exp_macs,
            "macs_per_inference": per_inf, "macs_all_experts": stem_macs + gate_macs + sum(exp_macs)}


# -------------------------------------------------------------------------------------------- training

def gate_model(model: Any) -> Any:
    """input → gate logits (a view of the trained model's layers)."""
    import tf_keras as keras

    return keras.Model(model.inputs, model.get_layer("gate_logits").output, name="moe_gate")


def routes(model: Any, x: np.ndarray, top_k: int = 1) -> np.ndarray:
    """(N, k) the experts each input is routed to, in order of gate probability (ties: the lower index)."""
    from formicary.model.keras_io import quiet_native_logs

    with quiet_native_logs():
        logits = np.asarray(gate_model(model).predict(as_float(x), batch_size=256, verbose=0))
    return np.argsort(-logits, axis=1, kind="stable")[:, :top_k]


def usage(model: Any, x: np.ndarray, experts: int, top_k: int = 1) -> list[int]:
    """How many routing slots go to each expert (top-1: how many inputs each expert serves)."""
    r = routes(model, x, top_k)
    return [int((r == i).sum()) for i in range(experts)]


def train_moe(train: Dataset, options: MoEOptions, val: Dataset | None = None,
              classes: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Build and train the MoE on `train` (labels 0 … C-1); returns (model, provenance stage "moe").

    The caller seeds TensorFlow first (formicary.model.keras_io.make_deterministic(options.seed))."""
    import tf_keras as keras

    from formicary.model.keras_io import quiet_native_logs

    validate_options(options)
    if train.y is None:
        raise FormicaryError("the --data for the mixture has no labels `y`",
                             "give labelled data: an .npz with x and y, or a .bin folder with y_labels.csv.")
    y = np.asarray(train.y, dtype=np.int64)
    classes = int(classes or int(y.max()) + 1)
    if y.min() < 0 or y.max() >= classes:
        raise FormicaryError(f"labels run from {y.min()} to {y.max()}, outside 0 … {classes - 1}",
                             "give integer class labels 0 … N-1.")
    x = as_float(train.x)
    model = build_moe(x.shape, classes, options)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    started = time.perf_counter()
    with quiet_native_logs():
        model.fit(x, y, epochs=options.epochs, batch_size=options.batch_size, shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    c = costs(model)
    e = options.expert
    expert_name = e if isinstance(e, str) else (getattr(e, "__name__", None) or f"keras model {getattr(e, 'name', '?')}")
    stage: dict[str, Any] = {
        "stage": "moe", "experts": options.experts, "top_k": options.top_k, "expert_arch": str(expert_name),
        "stem": stem_channels(options.stem), "gate": f"flatten -> dense({options.experts})",
        "balance_weight": options.balance_weight, "gate_noise": options.gate_noise, "epochs": options.epochs, "batch_size": options.batch_size,
        "learning_rate": options.learning_rate, "seed": options.seed, "classes": classes,
        "train_samples": len(x), "train_seconds": round(seconds, 3),
        "routing": "top-k of the gate logits; training output sum_topk g_i p_i + (1 - sum_topk g_i)/C",
        "usage": {"train": usage(model, x, options.experts, options.top_k)},
        "params_per_expert": c["params_per_expert"], "gate_params": c["gate_params"],
        "stem_params": c["stem_params"], "total_params": c["total_params"],
        "macs_per_inference": c["macs_per_inference"], "macs_all_experts": c["macs_all_experts"],
    }
    if val is not None and val.y is not None:
        with quiet_native_logs():
            out = np.asarray(model.predict(as_float(val.x), batch_size=256, verbose=0))
        stage["val_accuracy"] = round(float((out.argmax(axis=1) == np.asarray(val.y)).mean()), 4)
        stage["val_samples"] = len(val)
        stage["usage"]["val"] = usage(model, val.x, options.experts, options.top_k)
    stage["label"] = f"moe{options.experts}" + (f"top{options.top_k}" if options.top_k > 1 else "")
    return model, stage


# ------------------------------------------------------------------------------------------- pruning

def _expert_tunes(model: Any, train: Dataset, epochs: int, batch_size: int, learning_rate: float,
                  what: str) -> list[tuple[int, Any, Any]]:
    """(index, inner architecture, FineTune) per expert: each expert is fine-tuned on the stem features of the
    training inputs the gate routes to it (the inputs it serves at run time)."""
    import tf_keras as keras

    from formicary.model.keras_io import quiet_native_logs
    from formicary.shrink import FineTune

    p = parts(model)
    x = as_float(train.x)
    feat_model = keras.Model(model.inputs, p.stem[-1].output) if p.stem else None
    with quiet_native_logs():
        feats = x if feat_model is None else np.asarray(feat_model.predict(x, batch_size=256, verbose=0))
    r = routes(model, x, 1)[:, 0]
    out = []
    for i, expert in enumerate(p.experts):
        mine = r == i
        if not mine.any():
            raise FormicaryError(f"expert_{i} serves no training input, so it cannot be fine-tuned while {what}",
                                 f"train with a larger --balance-weight, or skip {what}.")
        inner = expert.layers[-1]  # the architecture inside the expert_i wrapper (input layer + model)
        tune = FineTune(Dataset(feats[mine], np.asarray(train.y)[mine], f"inputs routed to expert_{i}"),
                        epochs, batch_size, learning_rate)
        out.append((i, inner, tune))
    return out


def prune_experts(model: Any, train: Dataset, sparsity: float, epochs: int = 5, batch_size: int = 32,
                  learning_rate: float = 1e-3) -> list[dict[str, Any]]:
    """Magnitude-prune every expert to `sparsity` in place (formicary.shrink.prune, unstructured, tfmot's
    polynomial schedule), each fine-tuned on the inputs routed to it. The stem and the gate stay dense. Returns
    one PruneResult dict per expert.

    Unstructured pruning keeps every shape, so the pruned weights go back into the same model and the export is
    unchanged; channel pruning (which changes shapes) does not apply to experts yet."""
    from formicary.shrink.prune import prune

    if not 0.0 < sparsity < 1.0:
        raise FormicaryError(f"--prune {sparsity}: the sparsity must be between 0 and 1",
                             "pass e.g. --prune 0.5 (half of each expert's weights set to zero).")
    results = []
    for i, inner, tune in _expert_tunes(model, train, epochs, batch_size, learning_rate, "pruning"):
        pruned, result = prune(inner, tune, sparsity)
        inner.set_weights(pruned.get_weights())
        results.append({"expert": i, "examples": len(tune.train), **result.to_dict()})
    return results


def cluster_experts(model: Any, train: Dataset, clusters: int, epochs: int = 5, batch_size: int = 32,
                    learning_rate: float = 1e-3, preserve_sparsity: bool = False) -> list[dict[str, Any]]:
    """Cluster every expert's kernels into `clusters` centroids in place (formicary.shrink.cluster, tfmot),
    each fine-tuned on the inputs routed to it; zeros are kept after pruning (`preserve_sparsity`). Clustering
    keeps every shape, so the export is unchanged. Returns one ClusterResult dict per expert."""
    import tf_keras as keras

    from formicary.shrink.cluster import cluster

    if clusters < 2:
        raise FormicaryError(f"--cluster {clusters}: need at least 2 clusters", "pass e.g. --cluster 16.")
    results = []
    for i, inner, tune in _expert_tunes(model, train, epochs, batch_size, learning_rate, "clustering"):
        # tfmot's cluster wrapper takes the layers it is given: cluster a copy, so `inner` stays a plain model
        work = keras.models.clone_model(inner)
        work.set_weights(inner.get_weights())
        clustered, result = cluster(work, tune, clusters, preserve_sparsity=preserve_sparsity)
        inner.set_weights(clustered.get_weights())
        results.append({"expert": i, "examples": len(tune.train), **result.to_dict()})
    return results


# ------------------------------------------------------------------------------------------- from files

@dataclass
class MoEResult:
    """What `formicary moe` wrote and measured (the `--json` document; keys in docs/shrinking.md)."""

    out_dir: Path
    doc: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.doc


def _tflm_eval(data: bytes, x: np.ndarray, y: np.ndarray | None, experts: int) -> dict[str, Any]:
    """TFLM int8 accuracy, and the route of each input (the export made with a route output)."""
    from formicary.oracle.inputs import tensor_quant, to_input_type
    from formicary.oracle.tflm import run_tflm
    from formicary.tflite import read_model

    ir = read_model(data)
    tin = ir.tensors[ir.inputs[0]]
    outs = [ir.tensors[i] for i in ir.outputs]
    xq = to_input_type(x, tin.np_dtype, *tensor_quant(tin), what="--val")
    shape = (1,) + tuple(tin.shape[1:])
    results = run_tflm(data, [xq[i].reshape(shape) for i in range(len(xq))])
    probs, route = [], []
    for r in results:
        for t, a in zip(outs, r):
            if t.np_dtype == np.int32:
                route.append(int(np.asarray(a).reshape(-1)[0]))
            else:
                q = np.asarray(a)
                if t.quant is not None and np.issubdtype(q.dtype, np.integer):
                    q = (q.astype(np.float32) - float(t.quant.zero_point[0])) * float(t.quant.scale[0])
                probs.append(q.astype(np.float32).reshape(-1))
    p = np.stack(probs)
    res: dict[str, Any] = {"outputs": p, "routes": np.asarray(route, dtype=np.int64) if route else None}
    if y is not None:
        res["accuracy"] = round(float((p.argmax(axis=1) == y).mean()), 4)
    if route:
        res["usage"] = [int((res["routes"] == i).sum()) for i in range(experts)]
    return res


def _measure_after_shrinking(model: Any, stage: dict[str, Any], accuracy_key: str, train: Dataset,
                             val: Dataset | None, options: MoEOptions) -> None:
    """Expert usage (train, val) and float validation accuracy again after the experts changed."""
    from formicary.model.keras_io import quiet_native_logs

    stage["usage"]["train"] = usage(model, train.x, options.experts, options.top_k)
    if val is not None:
        with quiet_native_logs():
            out_val = np.asarray(model.predict(as_float(val.x), batch_size=256, verbose=0))
        stage[accuracy_key] = round(float((out_val.argmax(axis=1) == val.y).mean()), 4)
        stage["usage"]["val"] = usage(model, val.x, options.experts, options.top_k)


def moe_files(data: str | Path, out_dir: str | Path, options: MoEOptions, *, val: str | Path | None = None,
              calib: str | Path | None = None, export: bool = True) -> MoEResult:
    """`formicary moe`: train the mixture on DATA, save OUT/moe.keras (+ provenance), export OUT/model.tflite (int8,
    TFLM-checked), measure it on VAL and write OUT/report.json."""
    import json
    import sys

    from formicary import progress
    from formicary.data import fit_to_input, load_dataset
    from formicary.model import keras_io
    from formicary.model.provenance import write_provenance

    validate_options(options)
    out = Path(out_dir)
    train_raw = load_dataset(data)
    if not train_raw.has_labels:
        raise FormicaryError(f"--data {data} has no labels `y`: the mixture trains on labelled examples",
                             "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv).")
    val_raw = load_dataset(val) if val is not None else None
    if val_raw is not None and not val_raw.has_labels:
        raise FormicaryError(f"--val data {val} has no labels `y`, so accuracy cannot be measured",
                             "save labels as `y` in the .npz (or use a .bin folder with y_labels.csv).")
    calib_raw = load_dataset(calib) if calib is not None else None
    if export and options.top_k != 1:
        raise FormicaryError(f"--top-k {options.top_k}: the .tflite export supports top-1 routing only for now "
                             "(top-k ≥ 2 is training-only)",
                             "pass --top-k 1, or --no-export to train and keep the Keras model only.")
    shape = tuple(int(d) for d in train_raw.x.shape[1:])
    if len(shape) == 2:
        shape = shape + (1,)
    train_ds = fit_to_input(train_raw, (None,) + shape, "--data")
    val_ds = fit_to_input(val_raw, (None,) + shape, "--val") if val_raw is not None else None
    calib_ds = fit_to_input(calib_raw, (None,) + shape, "--calib") if calib_raw is not None else train_ds
    classes = int(max(int(train_ds.y.max()), int(val_ds.y.max()) if val_ds is not None else 0)) + 1
    if "tensorflow" not in sys.modules:
        with progress.step("loading TensorFlow"):
            keras_io.import_tensorflow()
    keras_io.make_deterministic(options.seed)
    with progress.step(f"training the mixture: {options.experts} experts, top-{options.top_k}, "
                       f"{options.epochs} epochs on {len(train_ds)} examples"):
        model, stage = train_moe(train_ds, options, val_ds, classes)
    stage["data"] = {"source": train_raw.source, "samples": len(train_raw)}
    if options.prune is not None:
        with progress.step(f"pruning every expert to {options.prune:.0%} ({options.prune_epochs} epochs each on "
                           "the inputs routed to it)"):
            pruned = prune_experts(model, train_ds, options.prune, options.prune_epochs, options.batch_size)
        stage["prune"] = {"sparsity": options.prune, "structure": "unstructured", "epochs": options.prune_epochs,
                          "experts": [{k: r[k] for k in ("expert", "examples", "achieved", "per_layer")}
                                      for r in pruned]}
        _measure_after_shrinking(model, stage, "pruned_val_accuracy", train_ds, val_ds, options)
        stage["label"] = f"{stage['label']}-experts-pruned{round(options.prune * 100)}"
    if options.cluster is not None:
        with progress.step(f"clustering every expert into {options.cluster} centroids ({options.prune_epochs} "
                           "epochs each on the inputs routed to it)"):
            clustered = cluster_experts(model, train_ds, options.cluster, options.prune_epochs, options.batch_size,
                                        preserve_sparsity=options.prune is not None)
        stage["cluster"] = {"clusters": options.cluster, "epochs": options.prune_epochs,
                            "preserve_sparsity": options.prune is not None,
                            "experts": [{k: r[k] for k in ("expert", "examples", "distinct_values")}
                                        for r in clustered]}
        _measure_after_shrinking(model, stage, "shrunk_val_accuracy", train_ds, val_ds, options)
        stage["label"] = f"{stage['label']}-experts-clustered{options.cluster}"
    out.mkdir(parents=True, exist_ok=True)
    keras_path = out / "moe.keras"
    with progress.step(f"saving {keras_path.name}"):
        keras_io.save_keras_model(model, keras_path)
        sidecar = write_provenance(keras_path, [stage])
    doc: dict[str, Any] = {"out_dir": str(out), "keras_path": str(keras_path), "provenance_path": str(sidecar),
                           "model_path": None, "report_path": str(out / "report.json"), "moe": stage,
                           "costs": costs(model), "export": None,
                           "accuracy": {"float": stage.get("shrunk_val_accuracy", stage.get("pruned_val_accuracy",
                                                                                  stage.get("val_accuracy"))),
                                                                               "int8_tflm": None},
                           "usage": {"train": stage["usage"]["train"], "val": stage["usage"].get("val"),
                                     "val_tflm": None},
                           "route_agreement": None, "model_bytes": None, "tflm_arena_bytes": None, "warnings": []}
    if export:
        from formicary.oracle.tflm import check_tflm, measure_arena
        from formicary.shrink.moe_export import (
            describe,
            drop_route_output,
            export_tflite,
        )

        with progress.step("exporting int8 .tflite (IF tree, one subgraph per expert)"):
            probe, info = export_tflite(model, calib_ds.x, train_ds.x, route_output=True)
            tflite = drop_route_output(probe)
            info.subgraphs = describe(tflite)
            check_tflm(tflite)
        path = out / "model.tflite"
        path.write_bytes(tflite)
        doc.update({"model_path": str(path), "export": info.to_dict(), "model_bytes": len(tflite),
                    "tflm_arena_bytes": measure_arena(tflite)})
        if val_ds is not None:
            with progress.step(f"TFLM on {len(val_ds)} validation samples"):
                ev = _tflm_eval(probe, val_ds.x, val_ds.y, options.experts)
            float_routes = routes(model, val_ds.x, 1)[:, 0]
            doc["accuracy"]["int8_tflm"] = ev["accuracy"]
            doc["usage"]["val_tflm"] = ev["usage"]
            doc["route_agreement"] = round(float((ev["routes"] == float_routes).mean()), 4)
            unreached = [i for i, n in enumerate(ev["usage"]) if n == 0]
            if unreached:
                doc["warnings"].append(f"expert(s) {unreached} serve no validation input in TFLM")
    report = {"compile": {"quantize": "int8", "provenance": [stage]}, "moe": doc}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    return MoEResult(out, doc)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
