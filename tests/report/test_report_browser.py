"""The HTML report in a real headless Chromium (system /usr/bin/chromium via playwright)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.report import write_report
from tests.report.test_report import CONFIG, HOSTILE, a_figure, branchy_graph

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    exe = str(CHROMIUM) if CHROMIUM.is_file() else str(shutil.which("chromium"))
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def test_report_renders_in_chromium(browser: Any, tmp_path: Path) -> None:
    hm = nnfab.convert_graph(branchy_graph(), CONFIG, output_dir=tmp_path / "prj")
    x = np.random.default_rng(0).normal(0, 3, (200, 4))
    y = np.random.default_rng(1).integers(0, 3, 200)
    path = write_report(hm, X=x, y=y, figures={"a figure": a_figure()})

    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")

    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    names = page.eval_on_selector_all("#layer-table tbody tr",
                                      "rows => rows.map(r => r.dataset.layer)")
    assert names == [n.name for n in hm.graph.nodes]
    cell = page.eval_on_selector(f'tr[data-layer="{HOSTILE.replace(chr(34), chr(92) + chr(34))}"]'
                                 " td.name", "td => td.textContent")
    assert cell == HOSTILE
    images = page.eval_on_selector_all(
        "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) >= 1
    assert all(done and w > 0 and h > 0 for done, w, h in images), images
    box = page.eval_on_selector("svg.nnfab-graph", "s => { const r = s.getBBox(); "
                                "const c = s.getBoundingClientRect(); "
                                "return [r.width, r.height, c.width, c.height]; }")
    assert min(box) > 0, box
    rects = page.eval_on_selector_all(
        "svg.nnfab-graph g.node rect",
        "rs => rs.map(r => { const b = r.getBoundingClientRect(); return b.width * b.height; })")
    assert len(rects) == len(hm.graph.nodes) and min(rects) > 0
    assert page.evaluate("() => document.scripts.length") == 0
    page.close()
