"""The results store: bench runs recorded incrementally in SQLite, listed, compared and exported.

Public API: `ResultStore(path|None)`, `default_store_path()`; regression checks in `formicary.store.compare`.
See docs/results-store.md.
"""
from formicary.store.results import ENV_VAR, ResultStore, default_store_path
from formicary.store.schema import SCHEMA_VERSION

__all__ = ["ENV_VAR", "SCHEMA_VERSION", "ResultStore", "default_store_path"]
