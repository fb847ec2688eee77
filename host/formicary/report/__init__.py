"""Self-contained HTML reports (and PNG plots) from runs in the results store. See docs/results-store.md."""
from formicary.report.build import build_report

__all__ = ["build_report"]
