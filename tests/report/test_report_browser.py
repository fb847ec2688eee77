"""The report renders in a real headless browser (Debian's chromium): a screenshot that is not blank."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from formicary.report import build_report
from PIL import Image, ImageStat

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _screenshot(html, png, profile):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,2000", html.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium): "
                    "cannot check the report renders in a real browser")
def test_report_renders_in_headless_chromium(report_store, tmp_path):
    store, ids = report_store
    html = tmp_path / "report.html"
    build_report([store.get_run(i) for i in ids.values()], html)
    png = tmp_path / "shot.png"
    proc = _screenshot(html, png, tmp_path / "profile")
    assert proc.returncode == 0 and png.is_file(), proc.stderr[-2000:]
    img = Image.open(png).convert("RGB")
    assert img.size == (1200, 2000)
    stat = ImageStat.Stat(img)
    assert min(stat.var) > 500, f"screenshot looks blank (variance {stat.var})"
    # The plots are drawn: a blank or text-only page has very few distinct colours; a page with PNGs has many.
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 200

    # Control: the same check rejects a blank page, so the assertions above can fail.
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    blank_png = tmp_path / "blank.png"
    _screenshot(blank, blank_png, tmp_path / "profile2")
    assert max(ImageStat.Stat(Image.open(blank_png).convert("RGB")).var) < 1
