"""Exception hierarchy: one class per failure category.

Every message names the offending layer / field / file and what is allowed.
"""

from __future__ import annotations


class NnfabError(Exception):
    """Base class of every error nnfab raises on purpose."""


class FrontendError(NnfabError):
    """A model could not be read or translated into the IR."""


class UnsupportedLayerError(FrontendError):
    """A layer / op type or attribute that nnfab does not support."""


class ConfigError(NnfabError, ValueError):
    """A bad configuration key, value, layer name or precision."""


class PrecisionError(NnfabError, ValueError):
    """A fixed-point type that cannot be used where it was put."""


class GraphError(NnfabError):
    """An IR graph that is malformed (dangling tensor, cycle, bad shape)."""


class EmulationError(NnfabError):
    """The emulator could not execute a node."""


class BackendError(NnfabError):
    """A backend could not generate or build a project."""


class ToolNotFoundError(BackendError):
    """An external tool (g++, verilator, vitis_hls, ...) is not installed."""


class ToolError(BackendError):
    """An external tool ran and failed; the message says where its log is."""
