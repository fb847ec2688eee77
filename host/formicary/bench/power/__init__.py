"""Power sources for `formicary bench`: one interface (`PowerSource`), each labelled measured or modelled.

- `modelled.ModelledSource`: the board's datasheet power model x measured on-device time (virtual boards: only this)
- `ina.InaStreamSource`: INA219/INA226 samples read by the firmware (firmware/sensors) and streamed to the host
- `joulescope.JoulescopeSource`: a Joulescope JS110/JS220 via the `joulescope` package
- `ppk2.Ppk2Source`: a Nordic Power Profiler Kit II via `ppk2-api`
Host-side monitors synchronise with inference windows by a GPIO line from the DUT (level or timestamp pulses,
as the MLPerf Tiny EnergyRunner does) or by host serial markers.
"""
from formicary.bench.power.sources import InferenceWindow, PowerSamples, PowerSource

__all__ = ["InferenceWindow", "PowerSamples", "PowerSource"]
