"""Channel (filter) pruning: whole output channels go, and with them the next layers' matching inputs, so the
pruned model is really narrower (fewer MACs, less flash, a smaller arena) and runs on the ordinary dense kernels.

How channels are followed through the graph: every channel of every tensor is an *atom*. A Conv/Dense layer makes
new atoms (its output channels); a DepthwiseConv2D's output channel c*dm+m is its input atom c (so removing an
input channel removes its depthwise channels); BatchNormalization, activations, pooling, Dropout, padding pass
atoms through; Flatten repeats them once per spatial position (the Dense rows that came from a channel go with
it); Add-like merges tie the atoms at the same position into one class (pruned together); Concatenate lays its
inputs' atoms end to end. A class is frozen (kept) when it reaches a model output, a model input, or a layer
whose channel mapping is unknown; each producer layer's remaining classes are ranked by importance and the
weakest `sparsity` fraction removed.

Importance of a channel: the L1 norm of its filter after folding a directly following BatchNormalization
(|gamma| / sqrt(var + eps)), normalised by the layer's mean so tied layers weigh equally; a tied class sums its
members.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formicary.errors import FormicaryError

PRODUCERS = ("Conv1D", "Conv2D", "Dense", "SeparableConv2D", "SeparableConv1D")
DEPTHWISE = ("DepthwiseConv2D", "DepthwiseConv1D")
PASS_THROUGH = ("ReLU", "Activation", "LeakyReLU", "ELU", "ThresholdedReLU", "Dropout", "SpatialDropout1D",
                "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ZeroPadding1D",
                "ZeroPadding2D", "Cropping1D", "Cropping2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
                "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
                "GlobalMaxPooling2D", "UpSampling1D", "UpSampling2D", "ActivityRegularization")
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


@dataclass
class ChannelPlan:
    """Which output channels each producer keeps, and what was left dense (and why)."""

    keep: dict[str, np.ndarray]                 # producer layer -> boolean mask over its output channels
    left_dense: dict[str, str] = field(default_factory=dict)   # layer -> why none of its channels can go


class _Graph:
    """Union-find over channel atoms, with the reason an atom was frozen."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.owner: list[tuple[str, int] | None] = []
        self.frozen: dict[int, str] = {}

    def new(self, n: int, owner: str | None = None, frozen: str | None = None) -> np.ndarray:
        start = len(self.parent)
        for i in range(n):
            self.parent.append(start + i)
            self.owner.append((owner, i) if owner is not None else None)
            if frozen:
                self.frozen[start + i] = frozen
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def freeze(self, atoms: np.ndarray, why: str) -> None:
        for a in atoms.tolist():
            self.frozen.setdefault(int(a), why)


def _tensors(x: Any) -> list[Any]:
    import tensorflow as tf

    return list(tf.nest.flatten(x))


def _channels(t: Any) -> int:
    return int(t.shape[-1])


class _Walk:
    """One pass over the model's layers in graph order, mapping every tensor's last axis to atoms."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.g = _Graph()
        self.atoms: dict[int, np.ndarray] = {}     # id(keras tensor) -> atoms of its last axis
        self.role: dict[str, str] = {}             # layer name -> producer / depthwise / bn / pass / other
        self.ins: dict[str, list[np.ndarray]] = {}
        self.outs: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list[str]] = {}
        for t in _tensors(model.inputs):
            self.atoms[id(t)] = self.g.new(_channels(t), frozen="the model's input")
        for layer in model.layers:
            self._visit(layer)
        for t in _tensors(model.outputs):
            self.g.freeze(self._atoms(t), "the model's output units are never pruned")

    def _atoms(self, t: Any) -> np.ndarray:
        if id(t) not in self.atoms:  # a tensor from outside the walk: its channels are fixed
            self.atoms[id(t)] = self.g.new(_channels(t), frozen="comes from outside the model graph")
        return self.atoms[id(t)]

    def _visit(self, layer: Any) -> None:
        cls = type(layer).__name__
        if cls == "InputLayer":
            return
        if len(getattr(layer, "_inbound_nodes", [])) != 1:
            self._opaque(layer, f"{cls} is used more than once (shared layer)")
            return
        ins = _tensors(layer.input)
        outs = _tensors(layer.output)
        in_atoms = [self._atoms(t) for t in ins]
        for t in ins:
            src = getattr(getattr(t, "_keras_history", None), "layer", None)
            if src is not None:
                self.consumers.setdefault(src.name, []).append(layer.name)
        name = layer.name
        self.ins[name] = in_atoms
        out: np.ndarray | None = None
        if cls in PRODUCERS and len(ins) == 1 and getattr(layer, "groups", 1) == 1:
            out = self.g.new(_channels(outs[0]), owner=name)
            self.role[name] = "producer"
        elif cls in DEPTHWISE and len(ins) == 1:
            out = np.repeat(in_atoms[0], int(layer.depth_multiplier))
            self.role[name] = "depthwise"
        elif cls == "BatchNormalization" and _last_axis(layer.axis, len(ins[0].shape)):
            out = in_atoms[0]
            self.role[name] = "bn"
        elif cls in PASS_THROUGH and len(ins) == 1 and _channels(outs[0]) == len(in_atoms[0]):
            out = in_atoms[0]
            self.role[name] = "pass"
        elif cls == "Flatten" and len(ins) == 1 and None not in tuple(ins[0].shape[1:]):
            spatial = int(np.prod(ins[0].shape[1:-1])) if len(ins[0].shape) > 2 else 1
            out = np.tile(in_atoms[0], spatial)  # NHWC flatten: index = position * C + c
            self.role[name] = "pass"
        elif cls in MERGES and len({len(a) for a in in_atoms}) == 1 and len(in_atoms[0]) == _channels(outs[0]):
            for other in in_atoms[1:]:
                for a, b in zip(in_atoms[0].tolist(), other.tolist()):
                    self.g.union(a, b)  # tied: these channels are kept or removed together
            out = in_atoms[0]
            self.role[name] = "pass"
        elif cls == "Concatenate" and _last_axis(layer.axis, len(outs[0].shape)):
            out = np.concatenate(in_atoms)
            self.role[name] = "pass"
        if out is None:
            self._opaque(layer, f"{cls} (its channel mapping is not known to the channel pruner)")
            return
        self.outs[name] = out
        self.atoms[id(outs[0])] = out

    def _opaque(self, layer: Any, why: str) -> None:
        self.role[layer.name] = "other"
        for t in _tensors(layer.input):
            self.g.freeze(self._atoms(t), f"feeds {layer.name}: {why}")
        for t in _tensors(layer.output):
            self.atoms[id(t)] = self.g.new(_channels(t), frozen=f"produced by {layer.name}: {why}")
        self.outs[layer.name] = self.atoms[id(_tensors(layer.output)[0])]
        self.ins[layer.name] = [self._atoms(t) for t in _tensors(layer.input)]


def _last_axis(axis: Any, rank: int) -> bool:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return len(axes) == 1 and int(axes[0]) in (-1, rank - 1)


def _importance(walk: _Walk, layer: Any) -> np.ndarray:
    """L1 norm per output channel of the (BatchNorm-folded) filter, normalised to mean 1."""
    cls = type(layer).__name__
    w = layer.get_weights()
    kernel = w[1] if cls.startswith("Separable") else w[0]
    l1 = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0).astype(np.float64)
    after = walk.consumers.get(layer.name, [])
    if len(after) == 1:
        bn = walk.model.get_layer(after[0])
        if type(bn).__name__ == "BatchNormalization" and walk.role.get(bn.name) == "bn":
            gamma, var = _bn_vectors(bn)
            l1 = l1 * np.abs(gamma) / np.sqrt(var + bn.epsilon)
    mean = l1.mean()
    return l1 / mean if mean > 0 else np.ones_like(l1)


def _bn_vectors(bn: Any) -> tuple[np.ndarray, np.ndarray]:
    names = [w.name.split("/")[-1].split(":")[0] for w in bn.weights]
    values = dict(zip(names, bn.get_weights()))
    n = int(bn.weights[0].shape[-1])
    return values.get("gamma", np.ones(n)), values.get("moving_variance", np.ones(n))


def plan_channels(model: Any, sparsity: float) -> tuple[ChannelPlan, _Walk]:
    """Decide which channels go: `sparsity` of the prunable channels of every producer (ties pruned as one)."""
    walk = _Walk(model)
    g = walk.g
    frozen_roots: dict[int, str] = {}
    for a, why in g.frozen.items():
        frozen_roots.setdefault(g.find(a), why)
    producers = [name for name, r in walk.role.items() if r == "producer"]
    # classes of each producer's channels; producers sharing a class are pruned as one component
    classes = {p: np.array([g.find(int(a)) for a in walk.outs[p]]) for p in producers}
    comp = {p: p for p in producers}

    def root(p: str) -> str:
        while comp[p] != p:
            p = comp[p]
        return p

    owner_of: dict[int, str] = {}
    for p in producers:
        for c in classes[p].tolist():
            if c in owner_of and root(owner_of[c]) != root(p):
                comp[root(p)] = root(owner_of[c])
            owner_of.setdefault(c, p)
    components: dict[str, list[str]] = {}
    for p in producers:
        components.setdefault(root(p), []).append(p)

    removed: set[int] = set()
    left_dense: dict[str, str] = {}
    for members in components.values():
        score: dict[int, float] = {}
        for p in members:
            imp = _importance(walk, model.get_layer(p))
            for c, s in zip(classes[p].tolist(), imp.tolist()):
                score[c] = score.get(c, 0.0) + s
        free = sorted((c for c in score if c not in frozen_roots), key=lambda c: (score[c], c))
        if not free:
            why = frozen_roots[classes[members[0]][0]]
            for p in members:
                left_dense[p] = why
            continue
        n_drop = int(np.floor(sparsity * len(free) + 1e-9))
        drop = free[:n_drop]
        # every producer keeps at least one channel (its strongest) so no tensor becomes empty
        for p in members:
            kept = [c for c in classes[p].tolist() if c not in drop]
            if not kept:
                best = max(classes[p].tolist(), key=lambda c: score[c])
                drop = [c for c in drop if c != best]
        if not drop:
            for p in members:
                left_dense[p] = f"too few channels to remove {sparsity:.0%} of them"
        removed.update(drop)
    keep = {p: np.array([c not in removed for c in classes[p].tolist()]) for p in producers}
    walk.removed = removed  # type: ignore[attr-defined]
    return ChannelPlan(keep, left_dense), walk


def _mask(walk: _Walk, atoms: np.ndarray) -> np.ndarray:
    removed = walk.removed  # type: ignore[attr-defined]
    return np.array([walk.g.find(int(a)) not in removed for a in atoms.tolist()], dtype=bool)


def build_pruned(model: Any, plan: ChannelPlan, walk: _Walk) -> Any:
    """The narrower tf_keras model with the kept weights copied in (not yet fine-tuned)."""
    import tf_keras as keras

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in plan.keep:
            key = "units" if "units" in cfg else "filters"
            cfg[key] = int(plan.keep[layer.name].sum())
        return layer.__class__.from_config(cfg)

    try:
        new = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise FormicaryError(f"cannot rebuild this model narrower for channel pruning: "
                             f"{str(exc).splitlines()[0]}",
                             "use a Sequential or functional tf_keras model of standard layers, or "
                             "--prune-structure unstructured.") from exc
    for layer in new.layers:
        old = model.get_layer(layer.name)
        weights = old.get_weights()
        if not weights:
            continue
        role = walk.role.get(layer.name)
        in_mask = _mask(walk, walk.ins[layer.name][0]) if walk.ins.get(layer.name) else None
        out_mask = _mask(walk, walk.outs[layer.name]) if layer.name in walk.outs else None
        cls = type(old).__name__
        if role == "producer" and cls.startswith("Separable"):
            dm = int(old.depth_multiplier)
            dw, pw, *rest = weights
            weights = [dw[..., in_mask, :], pw[..., np.repeat(in_mask, dm), :][..., out_mask],
                       *[b[out_mask] for b in rest]]
        elif role == "producer":
            kernel, *rest = weights
            weights = [kernel[..., in_mask, :][..., out_mask], *[b[out_mask] for b in rest]]
        elif role == "depthwise":
            kernel, *rest = weights
            weights = [kernel[..., in_mask, :], *[b[out_mask] for b in rest]]
        elif role in ("bn", "pass"):
            weights = [w[out_mask] if w.ndim == 1 and w.shape[0] == out_mask.size else w for w in weights]
        layer.set_weights(weights)
    return new


def keras_macs(model: Any) -> int:
    """Multiply-accumulates of one inference, from the Keras layers' shapes (conv, depthwise, separable, dense)."""
    total = 0
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in PRODUCERS + DEPTHWISE:
            continue
        out = layer.output_shape if not isinstance(layer.output_shape, list) else layer.output_shape[0]
        positions = int(np.prod([d for d in out[1:-1]])) if len(out) > 2 else 1
        in_c = int(layer.input_shape[-1])
        if cls in ("Conv1D", "Conv2D"):
            total += positions * int(out[-1]) * int(np.prod(layer.kernel_size)) * in_c // getattr(layer, "groups", 1)
        elif cls == "Dense":
            total += positions * int(out[-1]) * in_c
        elif cls in DEPTHWISE:
            total += positions * int(out[-1]) * int(np.prod(layer.kernel_size))
        else:  # separable: depthwise part + pointwise part
            mid = in_c * int(layer.depth_multiplier)
            total += positions * mid * int(np.prod(layer.kernel_size)) + positions * mid * int(out[-1])
    return total


def count_params(model: Any) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.weights))
