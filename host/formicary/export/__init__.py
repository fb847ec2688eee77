"""`formicary export`: a generated model as a self-contained library for the user's own firmware.

library.py assembles the library folder (models with prefixed symbols, formicary-rt, the kernels they use, one
shared arena when asked) and re-exports into it; formats.py writes each build system's metadata and README.
"""
from formicary.export.library import EXPORT_FORMATS, MANIFEST, export_model, read_export

__all__ = ["EXPORT_FORMATS", "MANIFEST", "export_model", "read_export"]
