"""The subgraphs of a .tflite as bench names them: index, name and operator count, read straight from the
flatbuffer's subgraph table with the `tflite` schema bindings (only names and op counts: unlike
formicary.tflite.reader, which parses every tensor and operator, it needs nothing else to be consistent).

Routes (formicary.store.routes) name the subgraphs an inference ran; a mixture-of-experts export names its branch
subgraphs after the experts, so the names make the expert-usage histogram readable.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from formicary.errors import FormicaryError


def read_subgraphs(source: str | Path | bytes) -> list[dict[str, Any]]:
    """[{"index", "name", "ops"}] for every subgraph, in flatbuffer order. A subgraph without a name gets
    "subgraph<i>" (subgraph 0: "main"). Raises FormicaryError for a file that is not a readable .tflite."""
    import tflite

    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FormicaryError("the model is not a TFLite flatbuffer (no 'TFL3' identifier in its header).",
                             "pass a .tflite file produced by the TFLite converter or `formicary compile`.")
    try:
        model = tflite.Model.GetRootAs(data, 0)
        out = []
        for i in range(model.SubgraphsLength()):
            graph = model.Subgraphs(i)
            raw = graph.Name()
            name = raw.decode("utf-8", errors="replace") if raw else ""
            out.append({"index": i, "name": name or ("main" if i == 0 else f"subgraph{i}"),
                        "ops": int(graph.OperatorsLength())})
    except Exception as exc:  # corrupt flatbuffers fail in many low-level ways (struct.error, IndexError, ...)
        raise FormicaryError(f"the model's subgraph table is unreadable ({type(exc).__name__}: {exc}).",
                             "re-export the model.") from exc
    return out


__all__ = ["read_subgraphs"]
