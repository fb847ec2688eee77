"""`formicary bench` with a host-side power monitor: the real Ppk2Source (ppk2-api) reading a simulated PPK2 on
a pseudo-terminal while the virtual board runs; windows from the host's serial markers around every RUN."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.usefixtures("arm_qemu_tools")]


def test_bench_with_simulated_ppk2(kws_model_path, tmp_path):
    pytest.importorskip("ppk2_api.ppk2_api", reason="ppk2-api package not installed (pip install .[power])")
    from formicary.power.ppk2 import Ppk2Source
    from formicary.bench.runner import run_bench
    from formicary.store import ResultStore

    from tests.support.fake_ppk2 import FakePpk2

    amps = 12e-3
    fake = FakePpk2(lambda idx: (np.full(idx.size, amps), np.zeros(idx.size, np.uint8)))
    try:
        res = run_bench(kws_model_path, "qemu-m4", runs=6, inputs=3, warmup=1, store=tmp_path / "r.db",
                        out_dir=tmp_path / "fw", power=Ppk2Source(port=fake.port, supply_mv=3300))
    finally:
        fake.close()
    e = res["energy"]
    assert e["method"] == "measured" and e["source"] == "ppk2" and "serial markers" in e["sync"]
    assert e["inferences"] == 7  # 6 timed + 1 warm-up ran inside the windows
    expected_uj = 3.3 * amps * e["duration_s"] / e["inferences"] * 1e6
    assert e["uj_per_inference"] == pytest.approx(expected_uj, rel=0.03)
    assert e["meets_min_duration"] is False  # a 10 s MLPerf window needs more runs: reported, not hidden
    assert res["power_samples"] and all(w == pytest.approx(3.3 * amps, rel=0.03) for _, w in res["power_samples"])
    with ResultStore(tmp_path / "r.db") as st:
        run = st.get_run(res["run_id"])
    assert run["energy"]["method"] == "measured" and run["power_samples"]
