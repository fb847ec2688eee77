"""Quantization-aware training with tfmot (8-bit), preserving earlier pruning/clustering when present.

The returned model still carries fake-quant wrappers; the converter turns them into a full-integer model.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from formicary.errors import FormicaryError
from formicary.shrink import FineTune, fit, require_labels


def qat(model: Any, tune: FineTune, pruned: bool = False, clustered: bool = False) -> tuple[Any, dict[str, Any]]:
    """Wrap `model` for 8-bit QAT (PQAT/CQAT schemes keep zeros and centroids) and fine-tune it."""
    import tensorflow_model_optimization as tfmot

    require_labels(tune, "--qat")
    qk = tfmot.quantization.keras
    if clustered:
        scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=pruned)
        name = "cluster-preserving QAT" + (" (sparsity-preserving)" if pruned else "")
    elif pruned:
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        name = "prune-preserving QAT"
    else:
        scheme = None
        name = "QAT (default 8-bit scheme)"
    try:
        annotated = qk.quantize_annotate_model(model)
        wrapped = qk.quantize_apply(annotated, scheme) if scheme is not None else qk.quantize_apply(annotated)
    except (ValueError, RuntimeError) as exc:
        raise FormicaryError(f"tfmot cannot apply QAT to this model: {str(exc).splitlines()[0]}",
                             "drop --qat (post-training int8 quantization still works) or use layers tfmot "
                             "supports for QAT.") from exc
    with _no_frozen_kernel_warnings():
        fit(wrapped, tune, original=model)
    return wrapped, {"scheme": name, "epochs": tune.epochs}


@contextlib.contextmanager
def _no_frozen_kernel_warnings() -> Iterator[None]:
    # Cluster-preserving QAT trains the centroids, not the original kernels, so TensorFlow warns on every
    # step that those kernels get no gradient. Expected here; hide it rather than alarm the user.
    import tensorflow as tf

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Gradients do not exist")

    logger = tf.get_logger()
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
