"""The HTML report: self-contained, every plot embedded and exportable, units and methods on every figure."""
from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import pytest
from formicary.errors import FormicaryError
from formicary.report import build_report
from formicary.report.pareto import dominates, pareto_front
from PIL import Image


def test_pareto_front():
    # (accuracy max, latency min)
    pts = [(0.93, 9.0), (0.915, 3.0), (0.90, 2.9), (0.925, 5.0), (0.88, 3.5), (0.915, 3.0)]
    assert pareto_front(pts, ("max", "min")) == [0, 1, 2, 3, 5]
    assert dominates((0.915, 3.0), (0.88, 3.5), ("max", "min"))
    assert not dominates((0.915, 3.0), (0.915, 3.0), ("max", "min"))
    assert pareto_front([], ("min",)) == []
    with pytest.raises(ValueError):
        pareto_front([(1, 2)], ("min",))


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def test_report_is_self_contained_with_all_plots(report_store, tmp_path):
    store, ids = report_store
    runs = [store.get_run(i) for i in ids.values()]
    out = tmp_path / "out" / "report.html"
    result = build_report(runs, out, png_dir=tmp_path / "png")
    html = out.read_text(encoding="utf-8")
    # Nothing fetched from elsewhere: no scripts, no external links or images.
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//|file:)""", html)
    assert "<script" not in html
    names = [p["name"] for p in result["plots"]]
    # One latency plot per unit, one layer plot per run with layers, one variant plot per (model, board, unit).
    assert sorted(n for n in names if n.startswith("latency-")) == ["latency-cycles", "latency-instructions"]
    assert len([n for n in names if n.startswith("layers-")]) == len(runs) - 1  # the partial run has no layers
    assert sorted(n for n in names if n.startswith("variants-")) == [
        "variants-kws-nucleo-f446re-cycles", "variants-kws-qemu-m4-instructions"]
    images = _images(html)
    assert len(images) == len(names)
    for plot, embedded in zip(result["plots"], images):
        exported = (tmp_path / "png" / f"{plot['name']}.png").read_bytes()
        assert exported == embedded
        img = Image.open(io.BytesIO(exported))
        assert img.format == "PNG" and img.width > 300 and img.height > 100
    assert result["runs"] == [r["id"] for r in runs]


def test_every_figure_carries_unit_and_method(report_store, tmp_path):
    store, ids = report_store
    runs = [store.get_run(ids[k]) for k in ("int8", "cycles", "partial")]
    build_report(runs, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    int8 = runs[0]
    median = f"{int8['latency']['median']:,.2f}".rstrip("0").rstrip(".")
    assert re.search(re.escape(f"<b>{median}") + r"[^<]*</b> instructions<br><small>qemu-icount-systick, n=30",
                     text)
    assert "</b> cycles<br><small>dwt-cyccnt" in text
    assert "µJ/inference<br><small>modelled: qemu-m4 power model x latency" in text
    assert "<b>91.50</b> %<br><small>top-1 on device" in text
    assert "floor (every byte once, modelled)" in text
    assert "different units (cycles, instructions)" in text
    assert "board unplugged" in text and "status-incomplete" in text
    # Every number in the summary table is followed by a unit.
    summary = text.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    for number in re.findall(r"<b>([\d,.]+)</b>([^<]*)", summary):
        assert number[1].strip(), f"number {number[0]} has no unit"


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(FormicaryError, match="no runs"):
        build_report([], tmp_path / "r.html")


def test_report_cli(report_store, tmp_path):
    store, ids = report_store
    out = tmp_path / "cli.html"
    cmd = [sys.executable, "-c", "from formicary.cli import main; main()", "report", str(ids["int8"]),
           str(ids["float32"]), "-o", str(out), "--png-dir", str(tmp_path / "pngs"), "--store", str(store.path),
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout)
    assert result["runs"] == [ids["int8"], ids["float32"]] and out.is_file()
    assert all((tmp_path / "pngs" / f"{p['name']}.png").is_file() for p in result["plots"])
    default = subprocess.run([sys.executable, "-c", "from formicary.cli import main; main()", "report", "-o",
                              str(tmp_path / "all.html"), "--store", str(store.path), "--json"],
                             capture_output=True, text=True, check=False, timeout=120)
    assert default.returncode == 0, default.stderr
    assert sorted(json.loads(default.stdout)["runs"]) == sorted(ids.values())


def test_speedup_table_compares_variants_against_float32_and_says_why_not(tmp_path):
    """Each shrunk variant against float32 of the same model and board: speed-up, flash, accuracy, kernel set;
    a variant that does not gain carries the reason (reference int8 kernels, dense-shaped pruning)."""
    from formicary.store import ResultStore
    from tests.report.conftest import _result

    store = ResultStore(tmp_path / "r.sqlite")
    rows = [("float32", "float32", 0.95, 400_000, 40_000, "reference", None),
            ("int8", "int8", 0.95, 480_000, 10_000, "reference", None),
            ("int8", "int8", 0.95, 100_000, 10_000, "dsp", None),
            ("int8-pruned50", "int8", 0.94, 480_000, 10_000, "dsp", "unstructured"),
            ("int8-pruned50", "int8", 0.95, 50_000, 3_000, "dsp", "channel")]
    ids = []
    for i, (label, quant, acc, lat, size, kernels, structure) in enumerate(rows, 1):
        res = _result(i, label, quant, acc, lat, size, 1.0)
        res["firmware"]["kernels"] = kernels
        res["model"]["variant"]["prune_structure"] = structure
        res["latency"]["samples"] = [lat] * 5
        ids.append(store.record_result(res))
    runs = [store.get_run(i) for i in ids]
    store.close()
    build_report(runs, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    section = html.split("Shrinking: speed-ups against the baseline", 1)[1].split("<h2>", 1)[0]
    table_rows = section.split("<tr>")[2:]
    assert len(table_rows) == 5 and "baseline" in table_rows[0]
    assert "<b>0.83×</b>" in table_rows[1] and "portable reference kernels" in table_rows[1]
    assert "<b>4.00×</b>" in table_rows[2] and "reference kernels" not in table_rows[2] and ">dsp<" in table_rows[2]
    assert "unstructured pruning leaves every layer" in table_rows[3] and "pruned: unstructured" in table_rows[3]
    assert "pruned: channel" in table_rows[4]
    assert "<b>8.00×</b>" in table_rows[4] and "(+0.00 points)" in table_rows[4]
    assert "50,000 bytes (1.60× smaller)" in table_rows[2]  # firmware flash 40,000 + model vs float32's 80,000
    assert "speed-up = baseline median / variant median, both in instructions" in section
