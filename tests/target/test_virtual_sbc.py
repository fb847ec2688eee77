"""The virtual SBC (formicary.target.virtual_sbc): what a missing image says, what a built one reports, and that a
booted one answers SSH with the runtimes, filesystems and isolation the SBC tests rely on."""
from __future__ import annotations

import json
import subprocess

import pytest
from formicary.errors import FormicaryError
from formicary.target import virtual_sbc as vsbc


@pytest.fixture
def no_image(tmp_path, monkeypatch):
    """Every place image_dir() looks is an empty folder."""
    monkeypatch.setenv("FORMICARY_VIRTUAL_SBC_DIR", str(tmp_path / "vsbc"))
    monkeypatch.setenv("FORMICARY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "vsbc"


def test_missing_image_is_one_error_naming_the_build_command(no_image, capsys):
    status = vsbc.image_status()
    assert status["built"] is False and status["dir"] == str(no_image)
    with pytest.raises(FormicaryError) as err, vsbc.VirtualSbc():
        pass
    assert "not built" in err.value.cause and str(no_image) in err.value.cause
    assert "python -m formicary.target.virtual_sbc build" in err.value.fix
    assert vsbc.main(["boot", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "virtual_sbc build" in out["error"]["fix"]
    assert vsbc.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["built"] is False


def test_built_image_reports_its_versions():
    status = vsbc.image_status()
    if not status["built"]:
        pytest.skip(f"the virtual SBC image is not built: {status['build_command']}")
    versions = status["versions"]
    assert versions["tflite_runtime"] == "2.14.0"
    assert versions["ai_edge_litert"].startswith("2.3.")
    assert int(versions["litert_numpy"].split(".")[0]) >= 2           # LiteRT 2.3 needs numpy 2
    assert ":1.24." in versions["system_numpy"] or versions["system_numpy"].startswith("1.24.")
    assert versions["python"].startswith("3.11.") and versions["kernel"].endswith("arm64")
    # a sparse ext4 image: files take a few hundred MB, the host disk holds about that much
    assert 300e6 < status["used_bytes"] < 2e9 and status["disk_bytes"] < status["size_bytes"]


PROBE = ("import json, os, sys\n"
         "out = {'python': sys.executable, 'machine': os.uname().machine}\n"
         "import numpy; out['numpy'] = numpy.__version__\n"
         "for mod in ('tflite_runtime', 'ai_edge_litert'):\n"
         "    try:\n"
         "        m = __import__(mod); out[mod] = getattr(m, '__version__', 'present')\n"
         "    except ImportError:\n"
         "        out[mod] = None\n"
         "print(json.dumps(out))\n")


def _ssh(endpoint: vsbc.SshEndpoint, *remote: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(endpoint.ssh_command(*remote), input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.slow
@pytest.mark.xdist_group("virtual_sbc")
def test_booted_sbc_answers_ssh_with_its_runtimes(virtual_sbc):
    endpoint = virtual_sbc
    assert endpoint.host == "127.0.0.1" and endpoint.user == "root"
    assert oct(endpoint.key_path.stat().st_mode & 0o777) == "0o600"
    assert _ssh(endpoint, "cat > /tmp/probe.py", stdin=PROBE).returncode == 0
    pythons = (vsbc.SYSTEM_PYTHON, vsbc.TFLITE_RUNTIME_PYTHON, vsbc.LITERT_PYTHON)
    # one login for everything (each costs ~2 s under emulation): the three Pythons, the 64 KiB tmpfs for
    # full-disk tests (df, then a write that must fail), and the restricted user network (the guest reaches nothing)
    script = "; ".join([*(f"{python} /tmp/probe.py" for python in pythons),
                        "df -k /mnt/full | tail -1",
                        "dd if=/dev/zero of=/mnt/full/fill bs=1k count=128 2>/dev/null; echo dd=$?",
                        # 10.0.2.2 is the host's loopback on an unrestricted user network: the SSH forward listens
                        # there, so reaching it would connect at once
                        ("timeout 5 python3 -c \"import socket; socket.create_connection(('10.0.2.2', "
                         f"{endpoint.port}), timeout=2)\" >/dev/null 2>&1 && echo reached || echo isolated")])
    result = _ssh(endpoint, script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    system, tfl, lrt = (json.loads(line) for line in lines[:3])
    assert {p["machine"] for p in (system, tfl, lrt)} == {"aarch64"}
    # Debian's Python: numpy 1.24 and no runtime at all ("a board without a runtime")
    assert system["numpy"].startswith("1.24.") and system["tflite_runtime"] is None and system["ai_edge_litert"] is None
    assert tfl["tflite_runtime"] == "2.14.0" and tfl["numpy"].startswith("1.24.")
    assert lrt["ai_edge_litert"] is not None and int(lrt["numpy"].split(".")[0]) >= 2 and lrt["tflite_runtime"] is None
    assert lines[3].split()[1] == "64", result.stdout                   # 64 KiB
    assert lines[4] == "dd=1", result.stdout                             # No space left on device
    assert lines[5] == "isolated"
