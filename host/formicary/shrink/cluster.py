"""Weight clustering with tfmot: every kernel keeps at most K distinct values (K-means++ centroids, fine-tuned).

After pruning, clustering preserves the zeros (tfmot's sparsity-preserving clustering), so the two compose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formicary.errors import FormicaryError
from formicary.shrink import FineTune, fit, kernels, require_labels, wrap_kernel_layers


@dataclass
class ClusterResult:
    clusters: int
    preserve_sparsity: bool
    distinct_values: dict[str, int]   # per kernel, after stripping (zeros counted when sparsity is preserved)

    def to_dict(self) -> dict[str, Any]:
        return {"clusters": self.clusters, "preserve_sparsity": self.preserve_sparsity,
                "distinct_values": self.distinct_values}


def cluster(model: Any, tune: FineTune, clusters: int, preserve_sparsity: bool = False) -> tuple[Any, ClusterResult]:
    """Cluster every kernel of `model` into `clusters` centroids, fine-tune, strip, and check the count."""
    import tensorflow_model_optimization as tfmot

    if clusters < 2:
        raise FormicaryError(f"--cluster {clusters}: need at least 2 clusters", "pass e.g. --cluster 16.")
    require_labels(tune, "--cluster")
    ck = tfmot.clustering.keras
    wrapped = wrap_kernel_layers(model, lambda layer: ck.cluster_weights(
        layer, number_of_clusters=clusters, cluster_centroids_init=ck.CentroidInitialization.KMEANS_PLUS_PLUS,
        preserve_sparsity=preserve_sparsity))
    fit(wrapped, tune, original=model)
    stripped = ck.strip_clustering(wrapped)
    distinct = {name: int(np.unique(k).size) for name, k in kernels(stripped).items()}
    # With preserved sparsity, exact zeros are kept besides the K centroids.
    limit = clusters + (1 if preserve_sparsity else 0)
    over = {name: n for name, n in distinct.items() if n > limit}
    if over:
        raise FormicaryError(f"clustering left more than {clusters} distinct weights in {over}",
                             "report this as a bug with the model attached.")
    return stripped, ClusterResult(clusters, preserve_sparsity, distinct)
