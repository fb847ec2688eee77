"""The firmware on QEMU virtual boards: boot, handshake, correct results, deterministic instruction counts,
and the fault cases (garbage on the line, QEMU killed, reset mid-run, wrong model, QEMU missing)."""
from __future__ import annotations

import numpy as np
import pytest
from formicary.device.session import DeviceResetError, ModelMismatchError
from formicary.errors import FormicaryError

from tests.support.device import fake_expected, fake_input

pytestmark = pytest.mark.qemu

VIRTUAL = ["qemu-m4", "qemu-stm32f405", "qemu-m7", "qemu-m55"]


@pytest.mark.parametrize("board", VIRTUAL)
def test_boot_handshake_and_correct_output(qemu_board, board):
    conn = qemu_board(board)
    s = conn.session
    assert s.info.board == board and s.info.virtual and s.info.timing_unit == "instructions"
    for seed in range(3):
        x = fake_input(seed)
        (y,), result = s.infer([x.tobytes()], runs=2, warmup=1)
        assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
        assert result.unit == "instructions" and result.method.startswith("qemu-icount")


@pytest.mark.parametrize("board", ["qemu-m4", "qemu-stm32f405"])
def test_instruction_counts_are_deterministic(qemu_board, board):
    counts = []
    for _ in range(2):  # two separate QEMU processes
        conn = qemu_board(board)
        (y,), result = conn.session.infer([fake_input(5).tobytes()], runs=5, warmup=1)
        counts.append(result.values)
        conn.close()
    assert counts[0] == counts[1]
    assert len(set(counts[0])) == 1  # and identical within a run
    # 12,000 MACs with an integer modulo each: some instructions per MAC, far from 0 and from absurd
    assert 12_000 * 3 < counts[0][0] < 12_000 * 40


def test_same_code_same_count_on_m4_and_stm32(qemu_board):
    """QEMU retires the same instructions for the same -mcpu=cortex-m4 code whatever the board: counts agree
    within one SysTick period (40 instructions at 25 MHz), which checks the ticks -> instructions conversion."""
    x = fake_input(9).tobytes()
    values = {}
    for board in ("qemu-m4", "qemu-stm32f405"):
        (_,), result = qemu_board(board).session.infer([x], runs=1)
        values[board] = result.values[0]
    assert abs(values["qemu-m4"] - values["qemu-stm32f405"]) <= 40 + 6, values


def test_layer_timings(qemu_board):
    s = qemu_board("qemu-m4").session
    (_,), result = s.infer([fake_input(1).tobytes()], runs=2, profile=True)
    layers = s.read_layer_timings()
    assert [l.op_type for l in layers] == ["FULLY_CONNECTED", "QUANTIZE"]
    total = sum(l.value for l in layers)
    assert layers[0].value > 50 * layers[1].value  # the dense op dominates
    assert total <= result.values[-1] <= total + 2_000  # hooks and timer reads are the only other work


def test_garbage_on_the_line_resyncs_and_never_accepts_a_wrong_result(qemu_board):
    conn = qemu_board("qemu-m4", timeout=0.3)
    s = conn.session
    clean_x = fake_input(2)
    (_,), clean = s.infer([clean_x.tobytes()], runs=3)
    noisy = NoisyTransport(s.t, seed=4, flip_rate=4e-4, burst_every=1500)
    s.t = noisy
    s.retries = 12
    for seed in range(10):
        x = fake_input(seed)
        (y,), result = s.infer([x.tobytes()], runs=3)
        assert np.array_equal(np.frombuffer(y, np.int8), fake_expected(x))
        if seed == 2:
            assert result.values == clean.values
    assert noisy.damaged_out > 0 and noisy.bursts > 0 and noisy.bursts_in > 0
    # the damage was noticed (CRC/COBS, both directions) and recovered from, by retry or resync
    assert s.stats.damaged_frames > 0 and s.stats.device_framing_errors > 0 and s.stats.retries > 0


def test_qemu_killed_mid_run_gives_clear_error_and_keeps_results(qemu_board):
    conn = qemu_board("qemu-m4", run_timeout=2.0)
    s = conn.session
    s.load_input(0, fake_input(0).tobytes())
    seen = []

    def on_result(i, value):
        seen.append(value)
        if len(seen) == 3:
            conn.qemu.kill()

    with pytest.raises(FormicaryError) as err:
        s.run(runs=256, on_result=on_result)
    assert "QEMU" in err.value.cause and "killed" in err.value.cause
    assert err.value.partial is not None and err.value.partial["runs_completed"] >= 3
    assert err.value.partial["values"][:3] == seen[:3]


def test_reset_mid_run_is_detected(qemu_board):
    conn = qemu_board("qemu-stm32f405")
    s = conn.session
    s.load_input(0, fake_input(0).tobytes())

    def on_result(i, value):
        if i == 2:
            conn.qemu.reset()

    with pytest.raises(DeviceResetError) as err:
        s.run(runs=256, on_result=on_result)
    assert err.value.partial["runs_completed"] >= 3


def test_wrong_model_on_the_board(qemu_board):
    with pytest.raises(ModelMismatchError, match="different model"):
        qemu_board("qemu-m4", expect_model_hash="0" * 64)


def test_missing_qemu_is_a_clear_error(fake_firmware, monkeypatch):
    from formicary.device import qemu

    fw = fake_firmware("qemu-m4")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FormicaryError) as err:
        qemu.launch("qemu-m4", fw.elf)
    assert "qemu-system-arm" in err.value.cause and "apt-get install qemu-system-arm" in err.value.fix


def test_qemu_dying_at_start_is_a_clear_error(tmp_path):
    from formicary.device import connect_qemu

    bogus = tmp_path / "not-an-elf.elf"
    bogus.write_bytes(b"\x7fELF garbage")
    with pytest.raises(FormicaryError) as err:
        connect_qemu("qemu-m4", bogus, boot_timeout=5)
    # QEMU 7.2 loads the bytes, the CPU locks up and QEMU aborts: reported as such, with QEMU's own words
    assert "QEMU" in err.value.cause and ("exited" in err.value.cause or "signal" in err.value.cause)
    assert any("Lockup" in m or "Could not load" in m for m in err.value.details["qemu_messages"])
    with pytest.raises(FormicaryError, match="does not exist"):
        connect_qemu("qemu-m4", tmp_path / "missing.elf")


def test_qemu_dies_with_a_process_killed_hard(fake_firmware, tmp_path):
    """A bench or fleet worker SIGKILLed right after starting QEMU must not leave the virtual board running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    fw = fake_firmware("qemu-m4")
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom formicary.device.qemu import launch\n"
         f"q = launch('qemu-m4', {str(fw.elf)!r})\nprint(q.pid, flush=True)\ntime.sleep(600)\n"],
        stdout=subprocess.PIPE, text=True)
    qemu_pid = int(owner.stdout.readline())
    os.kill(qemu_pid, 0)  # running, paused, waiting for its host
    owner.send_signal(signal.SIGKILL)  # no clean-up code runs
    owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(qemu_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(qemu_pid, signal.SIGKILL)
    pytest.fail("QEMU outlived the process that launched it")


def test_pio_upload_target_starts_the_virtual_board(fake_firmware):
    """`pio run -t upload` on a virtual board (what `formicary flash` does for real boards) goes through the
    dev-platform's qemu protocol: a detached QEMU whose serial URL is printed and answers HELLO."""
    import os
    import re
    import signal

    from formicary.device.session import connect_serial
    from formicary.toolchain import run_pio

    fw = fake_firmware("qemu-m4")
    proc = run_pio(["run", "-e", "qemu-m4", "-t", "upload"], cwd=fw.project_dir)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-2000:]
    m = re.search(r"process group (\d+)\); serial: (socket://\S+)", log)
    assert m, log[-2000:]
    pgid, url = int(m.group(1)), m.group(2)
    try:
        conn = connect_serial(url, timeout=10.0)
        try:
            assert conn.session.info.board == "qemu-m4" and conn.session.info.virtual
        finally:
            conn.close()
    finally:
        os.killpg(pgid, signal.SIGKILL)


class NoisyTransport:
    """Wraps a transport and damages the line both ways: random bit flips and bursts of random bytes."""

    def __init__(self, inner, seed: int, flip_rate: float, burst_every: int) -> None:
        self.inner, self.rng = inner, np.random.default_rng(seed)
        self.flip_rate, self.burst_every = flip_rate, burst_every
        self.damaged_out = self.damaged_in = self.bursts = 0
        self._since_burst = 0
        self._reads = 0
        self.bursts_in = 0

    def _damage(self, data: bytes) -> tuple[bytes, int]:
        buf = bytearray(data)
        hits = np.nonzero(self.rng.random(len(buf)) < self.flip_rate)[0]
        for i in hits:
            buf[i] ^= 1 << int(self.rng.integers(0, 8))
        return bytes(buf), len(hits)

    def write(self, data: bytes) -> None:
        data, n = self._damage(data)
        self.damaged_out += n
        self._since_burst += len(data)
        if self._since_burst >= self.burst_every:
            self._since_burst = 0
            self.bursts += 1
            self.inner.write(self.rng.integers(0, 256, 40, dtype=np.uint8).tobytes())
        self.inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data = self.inner.read(max_bytes, timeout)
        if not data:
            return data
        data, n = self._damage(data)
        self.damaged_in += n
        if data[:1] == b"\x00":  # at a frame boundary: now and then garbage from the device's side too
            self._reads += 1
            if self._reads % 9 == 0:
                self.bursts_in += 1
                data = self.rng.integers(0, 256, 30, dtype=np.uint8).tobytes() + data
        return data

    def close(self) -> None:
        self.inner.close()


def test_qemu_starts_while_grpc_threads_are_busy(fake_firmware):
    """labgrid's client keeps gRPC threads busy while a fleet or the HIL plugin starts QEMUs. A fork with Python
    code in the child (a preexec_fn) ran gRPC's atfork handlers there and the child died with SIGSEGV in ~40 % of
    starts (CI failure of stop 22); launches must not depend on what other threads of the process are doing."""
    from formicary.device.qemu import launch

    from tests.support.busy_grpc import busy_grpc_threads

    fw = fake_firmware("qemu-m4")
    with busy_grpc_threads():
        for _ in range(30):
            inst = launch("qemu-m4", fw.elf, attempts=1)  # no retry: each start must succeed on its own
            try:
                inst.check_alive()
            finally:
                inst.close()
