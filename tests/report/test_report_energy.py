"""The report's "where the energy goes" figures: a stacked bar per layer of a run and per variant of a model, from
the bench result's `energy_model` as the results store keeps it (extra_json)."""
from __future__ import annotations

import base64
import io
import re

from formicary.analysis.energy_model import model_energy
from formicary.report import build_report
from formicary.tflite import read_model
from PIL import Image

from tests.report.conftest import _result
from tests.support.energy_models import conv_fc_model


def test_energy_bars_per_layer_and_per_variant(tmp_path):
    from formicary.store import ResultStore

    store = ResultStore(tmp_path / "r.sqlite")
    ids = []
    models = {"float32": conv_fc_model(dtype="float32"), "int8": conv_fc_model(),
              "int8-pruned50": conv_fc_model(conv_out=2)}
    for i, (label, model) in enumerate(models.items(), 1):
        res = _result(i, label, "float32" if label == "float32" else "int8", 0.9, 1_000_000, 10_000, 1.0)
        res["energy_model"] = model_energy(read_model(model), kernels="dsp", arena_bytes=2_000, arena_method="test")
        ids.append(store.record_result(res))
    runs = [store.get_run(i) for i in ids]
    store.close()
    # the store keeps the breakdown whole (extra_json), with its method
    assert runs[1]["extra"]["energy_model"]["method"] == "modelled"
    assert runs[1]["extra"]["energy_model"]["layers"][0]["per_node"]["45nm"]["total_pj"] > 0
    result = build_report(runs, tmp_path / "r.html", png_dir=tmp_path / "png")
    names = [p["name"] for p in result["plots"]]
    assert sorted(n for n in names if n.startswith("energy-layers-")) == [f"energy-layers-run{i}" for i in sorted(ids)]
    assert [n for n in names if n.startswith("energy-variants-")] == ["energy-variants-kws-qemu-m4"]
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    section = html.split("<h2>Where the energy goes (modelled)</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Modelled, not measured" in section and "Jouppi" in section and "dsp kernels" in section
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", section)
    assert len(images) == 4
    for data in images:
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        assert img.format == "PNG" and img.width > 300
    assert "where it goes (modelled, dsp kernels)" in html
    # the int8 variant's weight reads are below float32's in what the bars are drawn from
    f32, i8, pruned = (r["extra"]["energy_model"]["total"]["45nm"] for r in runs)
    assert pruned["weight_read_uj"] < i8["weight_read_uj"] < f32["weight_read_uj"]
