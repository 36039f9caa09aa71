"""``NnfabModel``: a converted, typed network and everything one does with it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.emulate import EmulationResult, Emulator
from nnfab.errors import ConfigError
from nnfab.ir import Graph

log = logging.getLogger(__name__)

ENGINES = ("emulator", "csim")
HLS_BACKENDS = ("Vitis", "Vivado")
ACCELERATOR_BACKENDS = ("VivadoAccelerator", "VitisAccelerator", "CoyoteAccelerator")
BACKENDS = HLS_BACKENDS + ACCELERATOR_BACKENDS


@dataclass
class LayerSummary:
    """One row of the per-layer table."""

    name: str
    op: str
    source_class: str
    shape: tuple[int, ...]
    result: str
    precision: dict[str, str]
    reuse_factor: int
    strategy: str
    overflows: dict[str, int]
    values: dict[str, int]


class NnfabModel:
    """A converted model: the typed IR graph plus its target settings.

    ``predict`` and ``trace`` run the bit-exact emulator; ``compile`` prepares it
    (weights quantized, tables built) and is called on first use if needed.
    """

    def __init__(
        self,
        graph: Graph,
        config: dict[str, Any],
        *,
        output_dir: str | Path = "nnfab_prj",
        project_name: str = "myproject",
        backend: str = "Vitis",
        part: str = "xcvu9p-flgb2104-2l-e",
        board: str | None = None,
        clock_period: float = 5.0,
        accel: Any = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if not isinstance(clock_period, int | float) or clock_period <= 0:
            raise ConfigError(f"clock_period must be a positive number of ns, got {clock_period!r}")
        self.graph = graph
        self.config = config
        self.output_dir = Path(output_dir)
        self.project_name = project_name
        self.backend = backend
        self.part = part
        self.board = board
        self.clock_period = float(clock_period)
        if backend in ACCELERATOR_BACKENDS and accel is None:
            from nnfab.accel.interface import AccelSettings

            accel = AccelSettings.make(backend, board)
        self.accel = accel
        """``nnfab.accel.AccelSettings`` for accelerator backends (board, interface, bus
        width, route), else None."""
        self.hls_settings: dict[str, Any] = {}
        """More HLS project settings: max_unroll, max_partition, clock_uncertainty
        (``nnfab.backends.hls.ProjectSettings``)."""
        self._emulator: Emulator | None = None
        self._csim: Any = None  # nnfab.backends.hls.CSimLibrary, built on first csim use
        self.last_result: EmulationResult | None = None
        self._accel_files: Any = None

    @property
    def hls_backend(self) -> str:
        """The HLS tool flavour: ``Vivado`` for VivadoAccelerator, else ``Vitis``."""
        if self.backend in HLS_BACKENDS:
            return self.backend
        return "Vivado" if self.backend == "VivadoAccelerator" else "Vitis"

    @property
    def io_type(self) -> str:
        return self.graph.io_type

    # ------------------------------------------------------------ emulator
    def compile(self) -> None:
        """Prepare the bit-exact emulator (fast: no compiler involved)."""
        self._emulator = Emulator(self.graph)

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            self.compile()
        assert self._emulator is not None
        return self._emulator

    warn_overflow: bool | None = None
    """Log overflow warnings after ``predict``/``trace``: None (default) follows the
    environment variable ``NNFAB_WARN_OVERFLOW`` (on unless it is 0/false/no/off)."""

    def predict(
        self, x: Any, engine: str = "emulator", *, warn_overflow: bool | None = None
    ) -> np.ndarray | list[np.ndarray]:
        """Bit-exact outputs for a batch (first axis); a list when there are several outputs.

        ``engine="emulator"`` (default) runs the NumPy emulator; ``engine="csim"`` runs the
        generated HLS C++ compiled with g++ (built on first use, cached by content hash).
        ``x`` may also be the path of a ``.npy`` or HDF5 file: see ``predict_file``.
        After an emulator run, one warning per layer whose values saturated or wrapped at a
        cast (counts in ``overflow_report()``); ``warn_overflow=False`` silences it (also
        the attribute ``warn_overflow`` and ``NNFAB_WARN_OVERFLOW=0``).
        """
        if self._check_engine(engine) == "csim":
            return self.csim.predict(x)
        if isinstance(x, str | Path):
            return self.predict_file(x, warn_overflow=warn_overflow)
        self.last_result = self.emulator.run(x)
        self._warn_overflows(warn_overflow)
        outs = [self.last_result.outputs[name] for name in self.graph.outputs]
        return outs[0] if len(outs) == 1 else outs

    def trace(
        self, x: Any, engine: str = "emulator", *, warn_overflow: bool | None = None
    ) -> dict[str, np.ndarray]:
        """Every layer's output for a batch: ``{layer name: array}`` (warnings as predict)."""
        if self._check_engine(engine) == "csim":
            return self.csim.trace(x)
        if isinstance(x, str | Path):
            raise ConfigError(f"trace takes an array of samples, got the path {str(x)!r}; "
                              "load a slice of it (np.load(path, mmap_mode='r')[:n])")
        self.last_result = self.emulator.run(x, trace=True)
        self._warn_overflows(warn_overflow)
        return dict(self.last_result.traces)

    def predict_file(
        self,
        path: str | Path,
        *,
        dataset: str | None = None,
        output: str | Path | None = None,
        chunk_size: int | None = None,
        progress: bool = True,
        warn_overflow: bool | None = None,
    ) -> np.ndarray | list[np.ndarray]:
        """Bit-exact outputs for every sample of a ``.npy`` file (memory-mapped) or an HDF5
        dataset (``dataset``: its name; default the file's only one), in chunks of
        ``chunk_size`` samples, so memory stays bounded (``nnfab.emulate.large``).

        With ``output`` (a ``.npy`` path; ``<stem>_<name>.npy`` per output when there are
        several) outputs are written there and returned as read-only memmaps; without it
        they are returned in memory (at most 512 MiB). A progress bar on stderr when it is
        a terminal and ``progress``. Overflow counts add up over the chunks: one warning
        per layer at the end.
        """
        from nnfab.emulate.large import predict_file

        outs, self.last_result = predict_file(self, path, dataset=dataset, output=output,
                                              chunk_size=chunk_size, progress=progress)
        self._warn_overflows(warn_overflow)
        return outs

    def _warn_overflows(self, warn: bool | None) -> None:
        """Log the last run's overflows, one warning per layer, unless silenced."""
        if warn is None:
            warn = self.warn_overflow
        if warn is None:
            env = os.environ.get("NNFAB_WARN_OVERFLOW", "1").strip().lower()
            warn = env not in ("0", "false", "no", "off")
        if not warn or self.last_result is None:
            return
        from nnfab.emulate.interpreter import overflow_messages

        for message in overflow_messages(self.graph, self.last_result.overflows,
                                         self.last_result.totals):
            log.warning("%s", message)

    @staticmethod
    def _check_engine(engine: str) -> str:
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        return engine

    @property
    def csim(self) -> Any:
        """The compiled C simulation (``nnfab.backends.hls.CSimLibrary``), built on demand."""
        if self._csim is None:
            from nnfab.backends.hls import CSimLibrary

            self._csim = CSimLibrary(self)
            self._csim.compile()
        return self._csim

    # -------------------------------------------------------------- projects
    def write(self, tb_input: Any = None) -> Path:
        """Write the HLS project (plus the IR and configuration) into ``output_dir``.

        With ``tb_input`` (a batch of inputs), the project's C testbench gets those inputs
        and the emulator's outputs for them, and checks the firmware bit for bit.
        """
        from nnfab.backends.hls import write_project
        from nnfab.config import save_config

        tb_output = self.predict(tb_input) if tb_input is not None else None
        root = write_project(self, self.output_dir, tb_input=tb_input, tb_output=tb_output)
        self.save_ir(root / "nnfab_model.json")
        save_config(self.config, root / "nnfab_config.yml")
        log.info("wrote HLS project %s", root)
        if self.accel is not None:
            from nnfab.accel.project import write_accelerator

            self._accel_files = write_accelerator(self, x_test=tb_input)
        return root

    def build(
        self,
        csim: bool = True,
        synth: bool = True,
        cosim: bool = False,
        export: bool = False,
        vsynth: bool = False,
        *,
        bitfile: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Write the HLS project and run the vendor tool on it; returns the report dict.

        Finds vitis_hls / vitis-run (backend Vitis) or vivado_hls (backend Vivado), and
        vivado for ``vsynth``, on PATH or through NNFAB_VITIS_HLS, NNFAB_VITIS_RUN,
        NNFAB_VIVADO_HLS, NNFAB_VIVADO. The log is ``output_dir/nnfab_build.log``; a failing
        tool raises ``ToolError`` naming it; without a tool, ``ToolNotFoundError`` says
        where the project is and the command to run later. The dict holds latency (cycles,
        ns), interval, pipeline type and LUT/FF/DSP/BRAM_18K/URAM used / available / %
        (``nnfab.backends.hls.reports``).

        With ``bitfile=True`` (accelerator backends) the whole board project is written
        and the vendor steps run when the tools are here (HLS IP export, then Vivado's
        implementation; outputs copied to ``deploy/nnfab_nn.bit`` and ``.hwh``); without
        them the dict says ``status: "written"`` and gives the one command to run
        elsewhere (``nnfab.accel.project.build_bitfile``).
        """
        from nnfab.backends.hls.build import build_project

        if bitfile:
            if self.accel is None:
                raise ConfigError("build(bitfile=True) needs an accelerator backend: convert "
                                  "with backend='VivadoAccelerator' and board='pynq-z2' (or "
                                  "another board)")
            from nnfab.accel.project import build_bitfile

            if self._accel_files is None:  # else: written by write(), test vectors kept
                self.write()
            return build_bitfile(self, self._accel_files, timeout=timeout)
        root = self.write()
        return build_project(root, csim=csim, synth=synth, cosim=cosim, export=export,
                             vsynth=vsynth, timeout=timeout)

    def package(self, *, require_bitfile: bool = True) -> Path:
        """The board package ``<output_dir>/nnfab_nn_package.tar.gz`` (``nnfab.accel.package``):
        bitfile and hwh (or xclbin), driver, test vectors and ``validate.py``."""
        from nnfab.accel.package import package

        if self.accel is None:
            raise ConfigError("package() needs an accelerator backend (backend="
                              "'VivadoAccelerator' and a board)")
        if not (self.output_dir / "deploy" / "nnfab_driver.py").is_file():
            self.write()
        return package(self.output_dir, require_bitfile=require_bitfile)

    def fit(self, *, synth: bool = False) -> Any:
        """The network's resources against the board (``nnfab.accel.fit.FitReport``)."""
        from nnfab.accel.fit import check_fit

        if self.accel is None:
            raise ConfigError("fit() needs an accelerator backend and a board")
        return check_fit(self, synth=synth)

    def estimate(self) -> Any:
        """Analytic ESTIMATES (no vendor tool) of the HLS project: per layer multipliers,
        DSPs, weight memory / BRAM_18K, latency and II; totals against the part
        (``nnfab.backends.hls.estimate.Estimate``: ``.layers``, ``.totals()``,
        ``.fits()``, ``.as_dict()``)."""
        from nnfab.backends.hls.estimate import estimate

        return estimate(self)

    def report(self, path: str | Path | None = None, **options: Any) -> Path:
        """One self-contained HTML report (``nnfab.report.write_report``): the graph, a
        per-layer table (types, ReuseFactor, strategy, estimate, tool reports), profiling
        figures and accuracy with ``X``/``y``, and which engines agreed bit for bit
        (``verify=("csim", "rtl")``). Written to ``<output_dir>/nnfab_report.html`` by
        default; see ``docs/report.md``."""
        from nnfab.report import write_report

        return write_report(self, path, **options)

    def to_rtl(
        self,
        output_dir: str | Path | None = None,
        *,
        style: str = "lut",
        adders_per_stage: int | None = None,
        pipeline: Any = "clock",
    ) -> Any:
        """Verilog for this model (``nnfab.backends.rtl.RTLProject``), written on demand.

        ``output_dir`` defaults to ``<output_dir>/rtl``. ``style="lut"`` builds constant
        multiplications from shifts and adds (no DSP), ``"dsp"`` leaves ``*`` to the
        synthesis tool. Pipelining inside adder trees: ``pipeline=k`` (an int, the same
        as ``adders_per_stage=k``) puts a register stage every ``k`` adder levels;
        ``pipeline=2.5`` or ``pipeline={"clock_period": 2.5}`` targets a clock period in
        ns, converted to adder levels per stage with a fixed delay per adder level for
        the part's FPGA family (``nnfab.backends.rtl.project.PIPELINE_TIMING``, e.g.
        0.55 ns per level plus 0.6 ns per stage on UltraScale+: 2.5 ns -> 3 levels).
        The default, ``pipeline="clock"``, targets the model's own ``clock_period`` (5 ns
        unless set, or the board's clock); ``pipeline=None`` puts registers at layer
        boundaries only. Giving ``adders_per_stage`` overrides the default.
        Dense layers with ``ReuseFactor`` R > 1 are folded on ``ceil(n_in*n_out/R)``
        multipliers and take a sample every R cycles (``.ii`` is the largest R); in a
        network with convolutions (a pixel stream) Conv1D/Conv2D layers fold the same
        way per output pixel, and pixels come every (largest) R cycles.
        The project has ``.latency``, ``.ii``, ``.write()``, ``.simulate(x)`` (Verilator,
        bit-exact with ``predict``) and ``.synthesize(part)`` (Yosys).
        """
        from nnfab.backends.rtl import RTLProject

        target = Path(output_dir) if output_dir is not None else self.output_dir / "rtl"
        if isinstance(pipeline, str) and pipeline == "clock":
            pipeline = None if adders_per_stage is not None else {
                "clock_period": float(self.clock_period)}
        return RTLProject(self, target, style=style, adders_per_stage=adders_per_stage,
                          pipeline=pipeline)

    def overflow_report(self) -> dict[str, dict[str, int]]:
        """Per layer, how many values overflowed at each cast during the last run."""
        if self.last_result is None:
            raise ConfigError("no run yet: call predict(x) or trace(x) first")
        return {k: dict(v) for k, v in self.last_result.overflows.items()}

    def summary(self) -> list[LayerSummary]:
        """Per-layer types and (after a run) overflow counts."""
        overflows = self.last_result.overflows if self.last_result else {}
        totals = self.last_result.totals if self.last_result else {}
        rows = []
        for node in self.graph.nodes:
            t = self.graph.tensors[node.name]
            rows.append(
                LayerSummary(
                    name=node.name,
                    op=node.op,
                    source_class=node.source_class,
                    shape=t.shape,
                    result=str(t.type),
                    precision={k: str(v) for k, v in node.precision.items()},
                    reuse_factor=node.reuse_factor,
                    strategy=node.strategy,
                    overflows=dict(overflows.get(node.name, {})),
                    values=dict(totals.get(node.name, {})),
                )
            )
        return rows

    def save_ir(self, path: str | Path) -> None:
        """Write the typed IR graph as JSON."""
        self.graph.save(path)

    def __repr__(self) -> str:
        return (
            f"NnfabModel({self.graph.name!r}, {len(self.graph)} layers, backend={self.backend!r}, "
            f"part={self.part!r}, io_type={self.io_type!r})"
        )
