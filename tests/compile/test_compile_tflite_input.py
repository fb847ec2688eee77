"""A .tflite input is analysed and validated by TFLM, not re-optimised. No TensorFlow needed."""
from __future__ import annotations

import json
import subprocess
import sys


def test_kws_tflite_is_validated_not_reoptimised(kws_model_path, kws_data_dir, tmp_path, capfd, cli):
    proc = cli("compile", str(kws_model_path), "--val", str(kws_data_dir), "--prune", "0.5",
               "-o", str(tmp_path / "o"), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)["report"]
    assert report["compile"]["reoptimised"] is False and "not re-optimised" in report["compile"]["note"]
    assert "ignored for a .tflite input: --prune" in report["compile"]["warnings"][0]
    acc = report["accuracy"]
    assert acc["float"] is None and acc["samples"] == 200
    # The MLPerf Tiny KWS reference model classifies most of these 200 test inputs correctly.
    assert 0.8 <= acc["quantized"] <= 1.0
    assert (tmp_path / "o" / "model.tflite").read_bytes() == kws_model_path.read_bytes()
    assert "not re-optimised" in proc.stderr


def test_tflite_input_never_imports_tensorflow(kws_model_path, tmp_path):
    code = ("import sys, formicary.compile as c\n"
            "try:\n    import formicary.analysis\n"
            "except ModuleNotFoundError:\n"
            "    import types; m = types.ModuleType('formicary.analysis'); sys.modules[m.__name__] = m\n"
            "    m.analyse = lambda model, board=None: {}\n"
            f"r = c.compile_model({str(kws_model_path)!r}, {str(tmp_path / 'o')!r})\n"
            "assert r.report['compile']['tflm_check'] == 'passed' and 'accuracy' not in r.report\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
