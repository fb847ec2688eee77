"""Power sources for `formicary bench`: one interface (`PowerSource`), each labelled measured or modelled.

- `modelled.ModelledSource`: the board's datasheet power model x measured on-device time (virtual boards: only this)
- `ina.InaStreamSource`: INA219/INA226 samples read by the firmware (firmware/sensors) and streamed to the host
- `joulescope.JoulescopeSource`: a Joulescope JS110/JS220 via the `joulescope` package
- `ppk2.Ppk2Source`: a Nordic Power Profiler Kit II via `ppk2-api`
Host-side monitors synchronise with inference windows by a GPIO line from the DUT (level or timestamp pulses,
as the MLPerf Tiny EnergyRunner does) or by host serial markers.
"""
from formicary.power.sources import InferenceWindow, PowerSamples, PowerSource
from formicary.errors import FormicaryError

POWER_SPECS = "joulescope, ppk2 or ppk2:PORT"

__all__ = ["InferenceWindow", "PowerSamples", "PowerSource", "open_power_source", "POWER_SPECS"]


def open_power_source(spec: str) -> PowerSource:
    """`--power SPEC` -> a host-side monitor: `joulescope` (the one connected), `ppk2` or `ppk2:/dev/ttyACM1`."""
    kind, _, arg = spec.partition(":")
    if kind == "joulescope":
        from formicary.power.joulescope import JoulescopeSource

        return JoulescopeSource()
    if kind == "ppk2":
        from formicary.power.ppk2 import Ppk2Source

        return Ppk2Source(port=arg or None)
    raise FormicaryError(f"unknown power monitor {spec!r}.", f"use one of: {POWER_SPECS}.")
