"""Knowledge distillation: train a small student on a larger teacher's temperature-softened probabilities.

    loss = alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(y, s)

t and s are the teacher's and the student's logits (pre-softmax outputs), y the integer labels, T the
temperature; the T² keeps the soft term's gradients on the scale of the hard term's as T changes (Hinton et al.,
"Distilling the Knowledge in a Neural Network", 2015). alpha = 0 is plain training on the labels: the labels-only
baseline runs through the very same loop (same initial weights, batch order, optimizer), only without a teacher.

Logits: a model whose last layer ends in a softmax (a Dense/Conv with activation="softmax", a Softmax layer or an
Activation("softmax") layer) is read *before* that softmax: a Softmax/Activation layer's input is taken, a layer
with a built-in softmax is rebuilt once without it (same weights) — exact logits, unlike log(probabilities),
which loses everything below float32's smallest probability. A model whose last layer is linear already outputs
logits. Any other output activation is refused. The student's own output layer (e.g. its softmax) is kept as given
in the exported model: it is trained through a logits view sharing all its layers, and the rebuilt head's
weights are copied back.

The teacher is frozen: its logits on the training set are computed once up front (no augmentation, so they never
change), which makes distilling no slower than training on labels. Batches are drawn in an order fixed by the
seed (NumPy), so a seed gives the same student, and the baseline sees the same batches as the distilled run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from formicary.data import Dataset
from formicary.errors import FormicaryError

# Chosen by measurement on the digits task (docs/shrinking.md "Knowledge distillation": sweep of T × alpha).
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.7
# Students are trained (mostly from scratch), not fine-tuned: the rate the digits CNN is trained with.
LEARNING_RATE = 3e-3


@dataclass
class StudentTraining:
    """How to train a student: data, epochs, batch size, seed (batch order), rate; T and alpha for distillation."""

    train: Dataset
    epochs: int
    batch_size: int = 32
    seed: int = 0
    learning_rate: float = LEARNING_RATE
    temperature: float = DEFAULT_TEMPERATURE
    alpha: float = DEFAULT_ALPHA


def validate(temperature: float, alpha: float) -> None:
    """Option errors (no TensorFlow needed)."""
    if not np.isfinite(temperature) or temperature <= 0:
        raise FormicaryError(f"--temperature {temperature}: must be a positive number",
                             f"pass e.g. --temperature {DEFAULT_TEMPERATURE:g} (1 = the teacher's own "
                             "probabilities; higher = softer).")
    if not np.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise FormicaryError(f"--distill-alpha {alpha}: must be in [0, 1] (the weight of the teacher's soft "
                             "targets; 1 - alpha weighs the labels)", f"pass e.g. --distill-alpha {DEFAULT_ALPHA:g}.")


def kd_loss(labels: Any, student_logits: Any, teacher_logits: Any, temperature: float, alpha: float) -> Any:
    """The batch mean of alpha·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1−alpha)·CE(y, s), as a TensorFlow scalar."""
    import tensorflow as tf

    s = tf.cast(student_logits, tf.float32)
    t = tf.cast(teacher_logits, tf.float32)
    log_ps = tf.nn.log_softmax(s / temperature, axis=-1)
    log_pt = tf.nn.log_softmax(t / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int64), logits=s)
    return tf.reduce_mean(alpha * temperature ** 2 * kl + (1.0 - alpha) * ce)


def _activation(layer: Any) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def logits_view(model: Any, role: str) -> tuple[Any, Callable[[], None], str]:
    """(a model sharing `model`'s layers whose output is the logits, a function copying trained weights back into
    `model`'s output layer, how the logits were obtained). `role` ("teacher"/"student") names it in errors."""
    import tf_keras as keras

    last = model.layers[-1]
    cls = type(last).__name__
    units = int(model.outputs[0].shape[-1] or 0)
    if len(model.outputs) != 1 or units < 2:
        raise FormicaryError(f"the {role} has {len(model.outputs)} output(s) of {units} unit(s); distillation "
                             "needs one classifier output with a unit per class (≥ 2)",
                             f"use a {role} whose single output scores every class.")
    if cls == "Softmax" or (cls == "Activation" and _activation(last) == "softmax"):
        return keras.Model(model.inputs, last.input), lambda: None, f"input of the final {cls} layer"
    act = _activation(last)
    if act == "linear":
        return model, lambda: None, "model outputs (linear last layer: already logits)"
    if act != "softmax":
        raise FormicaryError(f"the {role}'s last layer {last.name} ({cls}) ends in {act or 'an unknown function'}, "
                             "not a softmax or a linear output, so its logits cannot be recovered",
                             f"give a {role} whose last layer is linear or a softmax.")
    config = {**last.get_config(), "activation": "linear", "name": f"{last.name}_logits"}
    head = type(last).from_config(config)
    try:
        view = keras.Model(model.inputs, head(last.input))
    except (AttributeError, ValueError) as exc:
        raise FormicaryError(f"cannot rebuild the {role}'s output layer {last.name} without its softmax: "
                             f"{str(exc).splitlines()[0]}",
                             f"use a Sequential or functional tf_keras {role}, or end it with a separate "
                             "Softmax layer.") from exc
    head.set_weights(last.get_weights())

    def copy_back() -> None:
        last.set_weights(head.get_weights())

    return view, copy_back, f"{last.name} rebuilt without its softmax (same weights)"


def teacher_logits(teacher: Any, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, str]:
    """The frozen teacher's logits on `x` (computed once) and how they were obtained."""
    from formicary.model.keras_io import quiet_native_logs

    view, _, how = logits_view(teacher, "teacher")
    with quiet_native_logs():
        out = view.predict(x.astype(np.float32, copy=False), batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float32).reshape(len(x), -1), how


def check_pair(teacher: Any, student: Any, teacher_name: str, student_name: str) -> None:
    """Same input shape and class count, or one FormicaryError saying which differs."""
    from formicary.model.keras_io import input_shape

    t_in, s_in = input_shape(teacher)[1:], input_shape(student)[1:]
    if tuple(t_in) != tuple(s_in):
        raise FormicaryError(f"teacher {teacher_name} takes inputs {tuple(t_in)} but student {student_name} takes "
                             f"{tuple(s_in)}", "distil between models with the same input shape (for a built-in "
                             "student the shape is taken from the teacher).",
                             details={"teacher_input": list(t_in), "student_input": list(s_in)})
    t_c, s_c = int(teacher.outputs[0].shape[-1] or 0), int(student.outputs[0].shape[-1] or 0)
    if t_c != s_c:
        raise FormicaryError(f"teacher {teacher_name} has {t_c} classes but student {student_name} has {s_c}",
                             "the teacher must score the same classes as the student (same labels).",
                             details={"teacher_classes": t_c, "student_classes": s_c})


def train_student(student: Any, how: StudentTraining, soft_targets: np.ndarray | None = None) -> dict[str, Any]:
    """Train `student` in place: on the distillation loss when `soft_targets` (teacher logits, one row per training
    sample) is given, else on the labels alone (cross-entropy). Returns what was done, with per-epoch losses."""
    import tensorflow as tf
    import tf_keras as keras

    from formicary.model.keras_io import quiet_native_logs

    train = how.train
    if train.y is None:
        raise FormicaryError("training a student needs labels, but the --train data has none",
                             "pass --train data with labels `y` (the hard-label part of the loss).")
    view, copy_back, student_how = logits_view(student, "student")
    x = train.x.astype(np.float32, copy=False)
    y = train.y.astype(np.int64)
    optimizer = keras.optimizers.Adam(learning_rate=how.learning_rate)
    variables = view.trainable_variables
    temperature, alpha = float(how.temperature), float(how.alpha)

    @tf.function(reduce_retracing=True)
    def kd_step(xb, yb, tb):
        with tf.GradientTape() as tape:
            loss = kd_loss(yb, view(xb, training=True), tb, temperature, alpha)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function(reduce_retracing=True)
    def label_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = view(xb, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(how.seed)
    losses: list[float] = []
    start = time.perf_counter()
    with quiet_native_logs():
        for _ in range(how.epochs):
            order = rng.permutation(len(x))
            total = 0.0
            for lo in range(0, len(x), how.batch_size):
                idx = order[lo:lo + how.batch_size]
                if soft_targets is None:
                    loss = label_step(x[idx], y[idx])
                else:
                    loss = kd_step(x[idx], y[idx], soft_targets[idx])
                total += float(loss) * len(idx)
            losses.append(round(total / len(x), 5))
    copy_back()
    return {"loss": "distillation" if soft_targets is not None else "labels only (cross-entropy)",
            "temperature": temperature if soft_targets is not None else None,
            "alpha": alpha if soft_targets is not None else None,
            "epochs": how.epochs, "batch_size": how.batch_size, "learning_rate": how.learning_rate,
            "seed": how.seed, "samples": len(x), "student_logits": student_how,
            "epoch_losses": losses, "train_seconds": round(time.perf_counter() - start, 3)}


def distill(student: Any, teacher: Any, how: StudentTraining, *, teacher_name: str = "teacher",
            student_name: str = "student") -> dict[str, Any]:
    """Check the pair, compute the teacher's logits on the training set and train `student` on the mixed loss."""
    validate(how.temperature, how.alpha)
    check_pair(teacher, student, teacher_name, student_name)
    soft, teacher_how = teacher_logits(teacher, how.train.x)
    info = train_student(student, how, soft)
    info["teacher_logits"] = teacher_how
    return info
