"""The bit-exact NumPy emulator: THE reference semantics of nnfab."""

from nnfab.emulate.interpreter import EmulationResult, Emulator

__all__ = ["EmulationResult", "Emulator"]
