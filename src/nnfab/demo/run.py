"""Run the demo: convert the shipped jet tagger, emulate it, compare with float Keras."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.api import config_from_keras_model, convert_from_keras_model
from nnfab.demo.data import make_jet_like_data
from nnfab.model import LayerSummary

log = logging.getLogger(__name__)

Step = Callable[[str], None]


@dataclass
class DemoResult:
    """What the demo measured."""

    n_samples: int
    float_accuracy: float
    fixed_accuracy: float
    argmax_agreement: float
    max_abs_diff: float
    softmax_distinct_outputs: int
    layers: list[LayerSummary]
    output_dir: Path
    csim_bit_exact: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    estimate: Any = None  # nnfab.backends.hls.estimate.Estimate of the HLS project
    files: list[Path] = field(default_factory=list)
    rtl: RtlDemo | None = None


@dataclass
class RtlDemo:
    """The Verilog part of the demo: Verilator against the emulator, optional Yosys."""

    style: str
    latency_cycles: int
    measured_latency: int
    ii: int
    n_simulated: int
    bit_exact: bool
    verilog_dir: Path
    synthesis: Any = None  # nnfab.backends.rtl.SynthesisReport
    synthesized: str = ""  # which layers were synthesized


SYNTH_CHOICES = ("small", "full", "none")
SMALL_MODEL_FROM = "fc3_relu"
"""The demo's small synthesis: the jet tagger after this layer (Dense 32->5, softmax)."""


def demo_model_path() -> Path:
    return Path(str(resources.files("nnfab") / "data" / "jet_tagger.keras"))


def run_demo(
    output_dir: str | Path = "nnfab_demo",
    n_samples: int = 20_000,
    precision: str = "ap_fixed<16,6>",
    step: Step | None = None,
    *,
    rtl: bool = True,
    rtl_samples: int = 5_000,
    synth: str = "small",
    synth_part: str = "xc7z020clg400-1",
) -> DemoResult:
    """Convert, emulate and compare; ``step`` is called with a message before each stage.

    With ``rtl``, the Verilog is generated and ``rtl_samples`` samples are simulated with
    Verilator. ``synth``: ``"small"`` synthesizes the network's last layers (output Dense
    and softmax, ~30 s) with Yosys for ``synth_part``, ``"full"`` the whole network
    (many minutes), ``"none"`` skips synthesis.
    """
    if synth not in SYNTH_CHOICES:
        raise ValueError(f"synth must be one of {', '.join(SYNTH_CHOICES)}, got {synth!r}")
    say = step or (lambda message: log.info("%s", message))
    timings: dict[str, float] = {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    say("loading the jet tagger (Keras) and synthetic data")
    t0 = time.perf_counter()
    from nnfab.frontends.keras import load_keras_model

    keras_model = load_keras_model(demo_model_path())
    x, y = make_jet_like_data(n_samples, seed=2)
    timings["load"] = time.perf_counter() - t0

    say("float inference (Keras)")
    t0 = time.perf_counter()
    float_out = np.asarray(keras_model.predict(x, batch_size=4096, verbose=0), dtype=np.float64)
    timings["float_predict"] = time.perf_counter() - t0

    say(f"converting to fixed point ({precision})")
    t0 = time.perf_counter()
    config: dict[str, Any] = config_from_keras_model(keras_model, default_precision=precision)
    hm = convert_from_keras_model(keras_model, hls_config=config, output_dir=out)
    hm.compile()
    timings["convert"] = time.perf_counter() - t0

    say("bit-exact emulation")
    t0 = time.perf_counter()
    fixed_out = np.asarray(hm.predict(x))
    timings["emulate"] = time.perf_counter() - t0
    hm.trace(x[:2000], warn_overflow=False)  # the table below shows the per-layer overflow counts

    say("writing the HLS project and compiling its C simulation (g++)")
    t0 = time.perf_counter()
    project = hm.write(tb_input=x[:100])
    csim_out = np.asarray(hm.predict(x, engine="csim"))
    timings["hls_write_and_compile"] = time.perf_counter() - t0
    csim_equal = bool(np.array_equal(csim_out, fixed_out))
    say("estimating the HLS project's resources and latency")
    estimate = hm.estimate()
    files = [project / "nnfab_model.json", project / "nnfab_config.yml", project / "build_prj.tcl"]
    rtl_result = None
    if rtl:
        rtl_result = _rtl_demo(hm, x[:rtl_samples], fixed_out[:rtl_samples], out, say,
                               timings, synth, synth_part)
        files.append(rtl_result.verilog_dir)
    return DemoResult(
        n_samples=n_samples,
        float_accuracy=float(np.mean(np.argmax(float_out, axis=1) == y)),
        fixed_accuracy=float(np.mean(np.argmax(fixed_out, axis=1) == y)),
        argmax_agreement=float(np.mean(np.argmax(float_out, 1) == np.argmax(fixed_out, 1))),
        max_abs_diff=float(np.max(np.abs(float_out - fixed_out))),
        softmax_distinct_outputs=len(np.unique(fixed_out[:, 0])),
        layers=hm.summary(),
        output_dir=out,
        csim_bit_exact=csim_equal,
        timings=timings,
        files=files,
        estimate=estimate,
        rtl=rtl_result,
    )


def _rtl_demo(hm: Any, x: np.ndarray, expected: np.ndarray, out: Path, say: Step,
              timings: dict[str, float], synth: str, synth_part: str) -> RtlDemo:
    """Generate Verilog, simulate it with Verilator, synthesize (part of) it with Yosys."""
    from nnfab.model import NnfabModel

    say("generating Verilog and building its Verilator model")
    t0 = time.perf_counter()
    prj = hm.to_rtl(out, style="dsp")
    sim = prj.simulate(x)
    timings["rtl_generate_and_simulate"] = time.perf_counter() - t0
    result = RtlDemo(
        style="dsp", latency_cycles=prj.latency, measured_latency=sim.latency, ii=sim.ii,
        n_simulated=len(x), bit_exact=bool(np.array_equal(sim.outputs, expected)),
        verilog_dir=prj.rtl_dir,
    )
    if synth == "none":
        return result
    if synth == "small":
        small = NnfabModel(hm.graph.tail(SMALL_MODEL_FROM), hm.config, part=synth_part)
        target = small.to_rtl(out / "small", style="dsp")
        result.synthesized = " + ".join(n.name for n in small.graph.nodes[1:])
    else:
        target = prj
        result.synthesized = "the whole network"
    say(f"synthesizing {result.synthesized} with Yosys for {synth_part} "
        f"(log in {target.output_dir / 'synth'})")
    t0 = time.perf_counter()
    result.synthesis = target.synthesize(synth_part)
    timings["rtl_synthesize"] = time.perf_counter() - t0
    return result
