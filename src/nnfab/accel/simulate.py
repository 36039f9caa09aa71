"""The board, simulated: the driver written to ``deploy/`` runs unchanged against a
simulated DMA whose stream goes through a model of the firmware.

A stand-in ``pynq`` module (``Overlay``, ``allocate``, the DMA channels and the IP's
register file) is put in ``sys.modules`` while the driver runs; the bytes the driver
sends are handed to a transport:

- ``verilator``: the Verilog AXI4-Stream wrapper around nnfab's Verilog
  (``nnfab.accel.axis_rtl``), cycle by cycle, optionally with random TVALID gaps and
  TREADY stalls;
- ``csim``: the HLS AXI4-Stream top compiled with g++ (``nnfab.accel.axis_hls``);
- ``emulator``: the bus format decoded in Python and run through the emulator (a
  check of the driver alone).

``simulate(project)`` picks the transport of the project's route (``auto``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import runpy
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nnfab.accel.drivers.nnfab_driver import Codec
from nnfab.errors import ConfigError

log = logging.getLogger(__name__)

ENGINES = ("auto", "verilator", "csim", "emulator")


class Transport(Protocol):
    """Moves one transfer through a model of the firmware: input bytes -> output bytes."""

    name: str

    def transfer(self, data: np.ndarray) -> np.ndarray: ...

    def kernel(self, data: np.ndarray, n_samples: int) -> np.ndarray:
        """The memory-mapped (Alveo) kernel: ``n_samples`` from the input buffer."""
        ...


class _StreamKernel:
    """A kernel run as one stream transfer of the buffer's first ``n_samples``."""

    codec: Codec

    def kernel(self, data: np.ndarray, n_samples: int) -> np.ndarray:
        out = self.transfer(data[: self.codec.in_stream_bytes(n_samples)])  # type: ignore[attr-defined]
        padded = np.zeros(self.codec.out_bytes(n_samples), dtype=np.uint8)
        padded[: out.size] = out
        return padded


@dataclass
class TransferStats:
    """What the simulated DMA saw."""

    transfers: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cycles: int = 0
    register_writes: list[tuple[int, int]] = field(default_factory=list)


# ---------------------------------------------------------------- transports
class EmulatorTransport(_StreamKernel):
    """Decodes the bus format, runs the emulator, encodes the outputs."""

    name = "emulator"

    def __init__(self, model: Any, desc: dict[str, Any]) -> None:
        self.model = model
        self.codec = Codec(desc)

    def transfer(self, data: np.ndarray) -> np.ndarray:
        c = self.codec
        per_sample = c.inp["elements"]
        n_lanes = (data.size * 8 // c.inp["lane"]) // per_sample * per_sample
        from nnfab.accel.drivers.nnfab_driver import from_mantissas, pack_lanes, unpack_lanes

        if c.floats:
            x = unpack_lanes(data, n_lanes, 32, floats=True).astype(np.float64)
        else:
            x = from_mantissas(unpack_lanes(data, n_lanes, c.inp["lane"],
                                            signed=c.inp["signed"]), c.inp)
        n = n_lanes // per_sample
        y = np.asarray(self.model.predict(x.reshape((n, *c.in_shape)))).reshape(-1)
        if c.floats:
            return pack_lanes(y.astype(np.float32), 32, c.bus_width)[: c.out_stream_bytes(n)]
        mantissas = np.rint(y * 2.0 ** int(c.out["frac"])).astype(np.int64)
        return pack_lanes(mantissas, c.out["lane"], c.bus_width)[: c.out_stream_bytes(n)]


class VerilatorTransport(_StreamKernel):
    """The Verilog wrapper + network under Verilator (``AxisRtlWrapper.simulate_bytes``)."""

    name = "verilator"

    def __init__(self, model: Any, desc: dict[str, Any], root: Path, *, in_gap: float = 0.0,
                 out_stall: float = 0.0, seed: int = 0) -> None:
        from nnfab.accel.project import axis_wrapper

        self.wrapper = axis_wrapper(model)
        self.codec = Codec(desc)
        self.in_gap, self.out_stall, self.seed = in_gap, out_stall, seed
        self.cycles = 0

    def transfer(self, data: np.ndarray) -> np.ndarray:
        result = self.wrapper.simulate_bytes(data, in_gap=self.in_gap, out_stall=self.out_stall,
                                             seed=self.seed)
        self.seed += 1
        self.cycles += int(result.cycles)
        return np.asarray(result.data, dtype=np.uint8)


class CSimTransport:
    """The HLS AXI4-Stream top compiled with g++ (``AxisCSim.run_bytes``)."""

    name = "csim"

    def __init__(self, model: Any, root: Path) -> None:
        from nnfab.accel.axis_hls import AxisCSim

        self.csim = AxisCSim(model, root / "accel" / "csim")

    def transfer(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(self.csim.run_bytes(data), dtype=np.uint8)

    def kernel(self, data: np.ndarray, n_samples: int) -> np.ndarray:
        return np.asarray(self.csim.run_kernel(data, n_samples), dtype=np.uint8)


# ---------------------------------------------------------------- the stand-in pynq
class _Buffer(np.ndarray):
    """``pynq.allocate``'s buffer: an ndarray with cache and free no-ops."""

    def flush(self) -> None:
        pass

    def invalidate(self) -> None:
        pass

    def freebuffer(self) -> None:
        pass


class _Channel:
    def __init__(self, dma: _Dma, name: str) -> None:
        self.dma, self.name = dma, name
        self.buffer: np.ndarray | None = None
        self.nbytes = 0
        self.running = False

    def transfer(self, array: np.ndarray, start: int = 0, nbytes: int = 0) -> None:
        if self.running:
            raise RuntimeError(f"DMA {self.name} channel: transfer while a transfer is running")
        nbytes = nbytes or array.nbytes - start
        if nbytes > self.dma.max_bytes:
            raise RuntimeError(f"DMA {self.name}: {nbytes} bytes exceed the length register "
                               f"({self.dma.max_bytes} bytes)")
        if nbytes > array.nbytes - start:
            raise RuntimeError(f"DMA {self.name}: {nbytes} bytes from offset {start} overrun "
                               f"the {array.nbytes}-byte buffer")
        self.buffer, self.nbytes, self.running = array, nbytes, True
        self.start = start
        if self.name == "send":
            self.dma.kick()

    def wait(self) -> None:
        if not self.running:
            raise RuntimeError(f"DMA {self.name} channel not started")
        self.running = False


class _Dma:
    """``axi_dma_0``: MM2S bytes go through the transport into the S2MM buffer."""

    def __init__(self, board: SimulatedBoard) -> None:
        self.board = board
        desc = board.desc
        self.max_bytes = (1 << int(desc.get("dma_length_bits", 26))) - 1
        self.beat_bytes = int(desc["bus_width"]) // 8
        self.sendchannel = _Channel(self, "send")
        self.recvchannel = _Channel(self, "recv")

    def kick(self) -> None:
        send, recv = self.sendchannel, self.recvchannel
        if not recv.running:
            raise RuntimeError("DMA: the receive channel must be started before sending "
                               "(the stream would stall)")
        if self.board.desc.get("route") == "hls" and not self.board.started:
            raise RuntimeError("the network IP was not started (write 0x81 to its control "
                               "register at offset 0x00)")
        assert send.buffer is not None and recv.buffer is not None
        data = np.asarray(send.buffer).view(np.uint8).reshape(-1)
        data = data[send.start:send.start + send.nbytes]
        out = self.board.transport.transfer(np.array(data))
        st = self.board.stats
        st.transfers += 1
        st.bytes_in += int(data.size)
        st.bytes_out += int(out.size)
        if out.size > recv.nbytes:
            raise RuntimeError(f"DMA recv: the stream carried {out.size} bytes into a "
                               f"{recv.nbytes}-byte transfer")
        view = np.asarray(recv.buffer).view(np.uint8).reshape(-1)
        view[recv.start:recv.start + out.size] = out


class _Ip:
    """``nnfab_nn_0``: the HLS IP's s_axilite register file."""

    def __init__(self, board: SimulatedBoard) -> None:
        self.board = board

    def write(self, offset: int, value: int) -> None:
        self.board.stats.register_writes.append((offset, value))
        if offset == 0 and value & 1:
            self.board.started = True

    def read(self, offset: int) -> int:
        return 0x4 if offset == 0 else 0  # ap_idle


def _fake_pynq(board: SimulatedBoard) -> types.ModuleType:
    mod = types.ModuleType("pynq")

    class Overlay:
        def __init__(self, bitfile: str, download: bool = True) -> None:
            self.bitfile = bitfile
            self.axi_dma_0 = _Dma(board)
            if board.desc.get("route") == "hls":
                self.nnfab_nn_0 = _Ip(board)

    def allocate(shape: Any, dtype: Any = np.uint8, **_: Any) -> _Buffer:
        return np.zeros(shape, dtype=dtype).view(_Buffer)

    mod.Overlay = Overlay  # type: ignore[attr-defined]
    mod.allocate = allocate  # type: ignore[attr-defined]
    mod.__nnfab_simulated__ = True  # type: ignore[attr-defined]
    return mod


def _fake_pyxrt(board: SimulatedBoard) -> types.ModuleType:
    """XRT's Python bindings, as far as ``nnfab_xrt_driver.py`` uses them."""
    mod = types.ModuleType("pyxrt")
    desc = board.desc

    class xclBOSyncDirection:  # noqa: N801 (XRT's name)
        XCL_BO_SYNC_BO_TO_DEVICE = 0
        XCL_BO_SYNC_BO_FROM_DEVICE = 1

    class bo:  # noqa: N801
        normal = 0

        def __init__(self, device: Any, size: int, flags: int, group: int) -> None:
            self.mem = np.zeros(int(size), dtype=np.uint8)
            self.group = group

        def write(self, data: bytes, offset: int) -> None:
            raw = np.frombuffer(bytes(data), dtype=np.uint8)
            if offset + raw.size > self.mem.size:
                raise RuntimeError(f"bo.write: {raw.size} bytes at {offset} overflow a "
                                   f"{self.mem.size}-byte buffer")
            self.mem[offset:offset + raw.size] = raw

        def sync(self, direction: int, size: int = 0, offset: int = 0) -> None:
            if offset + size > self.mem.size:
                raise RuntimeError("bo.sync past the end of the buffer")

        def read(self, size: int, offset: int) -> bytes:
            return self.mem[offset:offset + size].tobytes()

    class _Run:
        def wait(self, timeout_ms: int = 0) -> int:
            return 0

    class kernel:  # noqa: N801
        shared = 0

        def __init__(self, device: Any, uuid: Any, name: str, mode: int = 0) -> None:
            want = f"{desc['project']}_kernel"
            if name != want:
                raise RuntimeError(f"no kernel {name!r} in the xclbin (it holds {want!r})")

        def group_id(self, index: int) -> int:
            return index

        def __call__(self, bo_in: bo, bo_out: bo, n_samples: Any) -> _Run:
            n = int(n_samples)
            out = board.transport.kernel(bo_in.mem.copy(), n)
            st = board.stats
            st.transfers += 1
            st.bytes_in += Codec(desc).in_bytes(n)
            st.bytes_out += int(out.size)
            if out.size > bo_out.mem.size:
                raise RuntimeError("the kernel wrote past the end of the output buffer")
            bo_out.mem[: out.size] = out
            return _Run()

    class device:  # noqa: N801
        def __init__(self, index: int = 0) -> None:
            self.index = index

        def load_xclbin(self, path: str) -> str:
            return "simulated-uuid"

    for name, value in (("xclBOSyncDirection", xclBOSyncDirection), ("bo", bo),
                        ("kernel", kernel), ("device", device)):
        setattr(mod, name, value)
    return mod


def _fake_coyote(board: SimulatedBoard) -> types.ModuleType:
    """``libnnfab_coyote.so`` (nnfab's Coyote host library) as ``nnfab_coyote_driver``
    sees it: one local transfer per ``run``, through the transport."""
    mod = types.ModuleType("nnfab_coyote_native")
    sessions: set[int] = set()

    def open_(vfid: int) -> int:
        if vfid != 0:
            raise RuntimeError(f"the simulated card has vFPGA 0 only, not {vfid}")
        sessions.add(len(sessions) + 1)
        return len(sessions)

    def run(session: int, data: np.ndarray, out: np.ndarray) -> int:
        if session not in sessions:
            raise RuntimeError("Coyote: run on a closed session")
        result = board.transport.transfer(np.array(data, dtype=np.uint8))
        st = board.stats
        st.transfers += 1
        st.bytes_in += int(data.size)
        st.bytes_out += int(result.size)
        if result.size > out.size:
            raise RuntimeError(f"Coyote: {result.size} output bytes into a {out.size}-byte "
                               "buffer")
        out[: result.size] = result
        return int(result.size)

    def close(session: int) -> None:
        sessions.discard(session)

    mod.open = open_  # type: ignore[attr-defined]
    mod.run = run  # type: ignore[attr-defined]
    mod.close = close  # type: ignore[attr-defined]
    return mod


# ---------------------------------------------------------------- the board
class SimulatedBoard:
    """A project's ``deploy/`` directory run as on the board, with a simulated transport."""

    def __init__(self, project: Any, engine: str = "auto", *, in_gap: float = 0.0,
                 out_stall: float = 0.0, seed: int = 0) -> None:
        from nnfab.accel.project import load_accel_model

        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        model = project if hasattr(project, "graph") else load_accel_model(project)
        if getattr(model, "accel", None) is None:
            raise ConfigError("simulate: the model has no accelerator settings; convert with "
                              "backend='VivadoAccelerator' (or another accelerator) and a board")
        self.model = model
        self.root = Path(model.output_dir)
        self.deploy = self.root / "deploy"
        driver = self.deploy / "nnfab_driver.py"
        if not driver.is_file():
            raise ConfigError(f"{driver} not found: write the accelerator project first "
                              "(hm.write() or nnfab convert --backend VivadoAccelerator)")
        import json

        self.desc = json.loads((self.deploy / "nnfab_nn.json").read_text())
        if engine == "auto":
            engine = "verilator" if self.desc["route"] == "rtl" else "csim"
        self.engine = engine
        self.transport = self._transport(engine, in_gap, out_stall, seed)
        self.stats = TransferStats()
        self.started = False
        from nnfab.accel.project import EXTRA_DRIVERS

        self.alveo = self.desc["kind"] == "alveo"
        self.driver_module, self.overlay_class = EXTRA_DRIVERS.get(
            self.desc["kind"], ("nnfab_driver", "NeuralNetworkOverlay"))
        driver = self.deploy / f"{self.driver_module}.py"
        self.driver = self._load_driver(driver)

    def _transport(self, engine: str, in_gap: float, out_stall: float, seed: int) -> Transport:
        if engine == "emulator":
            return EmulatorTransport(self.model, self.desc)
        if engine == "verilator":
            if self.desc["route"] != "rtl":
                raise ConfigError("engine='verilator' runs the Verilog route; this project "
                                  "uses route='hls' (use engine='csim')")
            return VerilatorTransport(self.model, self.desc, self.root, in_gap=in_gap,
                                      out_stall=out_stall, seed=seed)
        if self.desc["route"] != "hls":
            raise ConfigError("engine='csim' runs the HLS route; this project uses "
                              "route='rtl' (use engine='verilator')")
        return CSimTransport(self.model, self.root)

    def _load_driver(self, path: Path) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(f"{path.stem}_board", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        with self._board_modules():
            spec.loader.exec_module(module)
        return module

    @contextlib.contextmanager
    def _board_modules(self) -> Iterator[None]:
        """The deploy directory first on sys.path, its driver modules imported fresh."""
        names = ("nnfab_driver", "nnfab_xrt_driver", "nnfab_coyote_driver")
        saved_mods = {n: sys.modules.pop(n) for n in names if n in sys.modules}
        saved_path = list(sys.path)
        sys.path.insert(0, str(self.deploy))
        try:
            yield
        finally:
            sys.path[:] = saved_path
            for n in names:
                sys.modules.pop(n, None)
            sys.modules.update(saved_mods)

    @contextlib.contextmanager
    def board_python(self) -> Iterator[None]:
        """``import pynq`` gives the simulated board while inside this block."""
        fakes = {"pynq": _fake_pynq(self), "pyxrt": _fake_pyxrt(self),
                 "nnfab_coyote_native": _fake_coyote(self)}
        saved = {n: sys.modules.get(n) for n in fakes}
        sys.modules.update(fakes)
        try:
            yield
        finally:
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module

    @property
    def bitfile(self) -> str:
        suffix = "xclbin" if self.alveo else "bit"
        return str(self.deploy / f"{self.desc['bitfile']}.{suffix}")

    def overlay(self, x_shape: tuple[int, ...] | None = None,
                y_shape: tuple[int, ...] | None = None, **kw: Any) -> Any:
        """The driver's overlay (``NeuralNetworkOverlay``, on Alveo ``AlveoOverlay``)."""
        cls = getattr(self.driver, self.overlay_class)
        with self.board_python():
            return cls(self.bitfile, x_shape, y_shape, **kw)

    def predict(self, x: Any, profile: bool = False, *, max_batch: int | None = None) -> Any:
        """``NeuralNetworkOverlay.predict`` through the simulated transport (a network with
        several inputs: a list or dict of batches, or the packed bus batch)."""
        if self.desc.get("inputs") and isinstance(x, list | tuple | dict):
            from nnfab.accel.drivers.nnfab_driver import pack_inputs

            x = pack_inputs(self.desc, x)
        x = np.asarray(x)
        batch_shape = x.shape if x.ndim == len(self.desc["input"]["shape"]) + 1 else None
        nn = self.overlay(batch_shape, None, max_batch=max_batch)
        with self.board_python():
            return nn.predict(x, profile=profile)

    def run_validate(self) -> tuple[int, str]:
        """Run ``deploy/validate.py`` as on the board; returns (exit code, its output)."""
        script = self.deploy / "validate.py"
        if not script.is_file():
            raise ConfigError(f"{script} not found: write the accelerator project first")
        out = io.StringIO()
        code = 0
        try:
            with self._board_modules(), self.board_python(), contextlib.redirect_stdout(out):
                runpy.run_path(str(script), run_name="__main__")
        except SystemExit as e:
            code = int(e.code or 0) if not isinstance(e.code, str) else 1
        return code, out.getvalue()


def simulate(project: Any, engine: str = "auto", **kw: Any) -> SimulatedBoard:
    """The simulated board of a written accelerator project (a path or the model)."""
    return SimulatedBoard(project, engine, **kw)
