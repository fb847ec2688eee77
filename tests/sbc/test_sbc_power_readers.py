"""The on-board agent's power readers (INA219/INA226 over smbus2, the ina2xx hwmon driver, a Pi 5's
`vcgencmd pmic_read_adc`) against recorded fixtures, and the energy a bench makes of their samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from formicary.target import sbc_agent as agent

FIXTURES = Path(__file__).parent / "fixtures"


class RecordedBus:
    """What smbus2.SMBus.read_i2c_block_data returned on the wire: register -> [MSB, LSB]."""

    def __init__(self, regs: dict[int, int]) -> None:
        self.regs, self.reads = regs, []

    def read_i2c_block_data(self, addr: int, reg: int, n: int) -> list[int]:
        self.reads.append((addr, reg, n))
        v = self.regs[reg]
        return [(v >> 8) & 0xFF, v & 0xFF]


@pytest.mark.parametrize("chip, shunt_reg, bus_reg", [
    (219, 0x0FA0, (1270 << 3) | 0b10),  # 40.00 mV shunt; 5.080 V bus (4 mV LSB, bits 15..3; CNVR set)
    (226, 0x3E80, 4064),                # 40.00 mV shunt (2.5 µV LSB); 5.080 V bus (1.25 mV LSB)
])
def test_ina_over_i2c(chip: int, shunt_reg: int, bus_reg: int) -> None:
    bus = RecordedBus({0x01: shunt_reg, 0x02: bus_reg})
    ina = agent.InaI2c(chip, bus, address=0x41, shunt_ohm=0.1)
    assert ina.read_w() == pytest.approx(5.080 * 0.400, rel=1e-9)  # 40 mV over 0.1 ohm = 0.4 A
    assert bus.reads == [(0x41, 0x01, 2), (0x41, 0x02, 2)]


def test_ina_negative_shunt_and_agreement_with_the_firmware_decoder() -> None:
    from formicary.power.ina import decode_registers

    bus_v, cur, _ = agent.ina_decode(219, 0xFF38, 1270 << 3, 0.1)  # -200 LSB = -2 mV
    assert cur == pytest.approx(-0.02)
    for chip, shunt, busr in ((219, 0x0FA0, 1270 << 3), (226, 0x3E80, 4064), (226, 0xC180, 4064)):
        b, c, _ = agent.ina_decode(chip, shunt, busr, 0.1)
        signed = shunt - 0x10000 if shunt >= 0x8000 else shunt
        fb, fs, *_ = decode_registers(chip, 1_000_000, busr, signed, 0, 0)
        assert b == pytest.approx(fb) and c == pytest.approx(fs / 0.1)


def test_ina_without_smbus2_names_the_install(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_smbus(name, *a, **k):
        if name == "smbus2":
            raise ImportError("No module named 'smbus2'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_smbus)
    with pytest.raises(agent.AgentError) as e:
        agent.InaI2c(219, 1)
    assert "pip install smbus2" in e.value.message


def _hwmon(root: Path, name: str, **files: str) -> Path:
    d = root / "hwmon3"
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    for leaf, value in files.items():
        (d / leaf).write_text(value + "\n")
    return d


def test_hwmon_power_and_current_times_voltage(tmp_path) -> None:
    d = _hwmon(tmp_path / "a", "ina226", power1_input="2032000", curr1_input="400", in1_input="5080")
    assert agent.find_hwmon(str(tmp_path / "a")) == str(d)
    h = agent.Hwmon(str(d))
    assert h.read_w() == pytest.approx(2.032) and "ina226" in h.name
    d2 = _hwmon(tmp_path / "b", "ina219", curr1_input="400", in1_input="5080")  # no power1_input
    assert agent.Hwmon(str(d2)).read_w() == pytest.approx(0.4 * 5.08)
    _hwmon(tmp_path / "c", "cpu_thermal", temp1_input="45000")
    assert agent.find_hwmon(str(tmp_path / "c")) is None


def test_pmic_read_adc_fixture() -> None:
    text = (FIXTURES / "pmic_read_adc_pi5.txt").read_text()
    rails = agent.parse_pmic_read_adc(text)
    assert len(rails) == 12 and "EXT5V" not in rails and "BATT" not in rails  # voltage-only channels
    assert rails["VDD_CORE"] == pytest.approx((0.85642, 0.72393))
    expected = sum(a * v for a, v in rails.values())
    pmic = agent.Pmic(runner=lambda cmd: text)
    assert pmic.read_w() == pytest.approx(expected) and 1.0 < expected < 2.0
    with pytest.raises(agent.AgentError):
        agent.Pmic(runner=lambda cmd: "error=1 error_msg=\"Command not registered\"\n")


def test_sensor_specs(tmp_path) -> None:
    assert agent.open_sensor(None) is None and agent.open_sensor("none") is None
    d = _hwmon(tmp_path, "ina219", power1_input="1000000")
    assert agent.open_sensor(f"hwmon:{d}").read_w() == pytest.approx(1.0)
    with pytest.raises(agent.AgentError):
        agent.open_sensor("thermocouple")


def test_measured_energy_from_the_agents_power_event() -> None:
    from formicary.bench.sbc import _energy
    from formicary.boards import load_board

    t = np.arange(0.0, 1.0, 0.001)
    ev = {"source": "ina226@0x40", "samples": [[float(x), 2.0] for x in t],
          "windows": [[0.1, 0.3, 10], [0.5, 0.6, 5]]}
    e, trace = _energy(load_board("rpi-4"), [20.0] * 15, ev, None, [15], None)
    assert e["method"] == "measured" and "on the board" in e["source"]
    assert e["uj_per_inference"] == pytest.approx(2.0 * 0.3 / 15 * 1e6, rel=1e-6)  # 2 W over 0.3 s, 15 inferences
    assert len(trace) == len(t)
    modelled, _ = _energy(load_board("rpi-4"), [20.0] * 15, None, None, [15], None)
    assert modelled["method"] == "modelled" and modelled["uj_per_inference"] == pytest.approx(5.1 * 600 * 20)
