"""A script that calls ``nnfab.sweep`` at its top level (no ``__main__`` guard) still runs,
once, on worker threads, and says why; warnings reach stderr without logging set up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import numpy as np
import nnfab
from tests.graphs import mlp_graph

rng = np.random.default_rng(0)
x = rng.normal(0, 1, (64, 4))
y = rng.integers(0, 2, 64)
result = nnfab.sweep(mlp_graph((4, 3, 2)), x, y, precision=[8, 10], reuse=[1],
                     strategy=["Latency"], n_workers=2, progress=False)
print("POINTS", len(result.table))
"""


def test_unguarded_script_runs_once_on_threads(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("POINTS 2") == 1  # the script body ran once, not in workers
    assert "worker thread" in run.stderr and '__name__ == "__main__"' in run.stderr
