"""Host side of the MLPerf Tiny / EEMBC device-under-test UART protocol (firmware/mlperf)."""
from formicary.mlperf.runner import (
    MlperfDut,
    open_dut,
    run_accuracy,
    run_mlperf,
    run_performance,
)

__all__ = ["MlperfDut", "open_dut", "run_accuracy", "run_mlperf", "run_performance"]
