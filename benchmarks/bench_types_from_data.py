"""Types from data on the shipped jet tagger: the uniform default against proposals.

    python benchmarks/bench_types_from_data.py [--samples 5000] [--test-samples 20000]

Runs ``nnfab.tuning.config_from_data`` on the 16-64-32-32-5 jet tagger
(``src/nnfab/data/jet_tagger.keras``) with ``make_jet_like_data`` samples, for three
settings: no budget (integer bits from the data, the default's 10 fractional bits), an
accuracy budget of 1 % and an error budget of 0.05 at the softmax outputs. Prints, per
setting, accuracy (float reference, default ``ap_fixed<16,6>``, proposal) on the data
the types were chosen on and on held-out data (another seed), total bits (weights,
biases and one sample's layer outputs), the HLS resource ESTIMATES
(``NnfabModel.estimate().totals()``: analytic, not synthesis) and the time to propose
(the Keras model is read once, before the clock starts).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import nnfab
from nnfab.demo.data import make_jet_like_data
from nnfab.tuning import config_from_data, float_graph

JET = Path(nnfab.__file__).parent / "data" / "jet_tagger.keras"
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("no budget", {}),
    ("accuracy -1%", {"accuracy_budget": 0.01}),
    ("max error 0.05", {"error_budget": 0.05}),
]


def _accuracy(config: dict[str, Any], graph: nnfab.Graph, x: np.ndarray, y: np.ndarray) -> float:
    out = nnfab.convert_graph(graph.copy(), config).predict(x)
    return float(np.mean(np.asarray(out).argmax(1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--test-samples", type=int, default=20000)
    parser.add_argument("-v", "--verbose", action="store_true", help="log the search")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    logging.getLogger("nnfab.model").setLevel(logging.ERROR)  # the default's overflows
    x, y = make_jet_like_data(args.samples, seed=0)
    x_test, y_test = make_jet_like_data(args.test_samples, seed=1)
    graph = float_graph(str(JET))
    wide = {"Model": {"Precision": "ap_fixed<32,12>"}}
    default = nnfab.config.config_from_graph(graph, "name", "ap_fixed<16,6>")
    rows = [("setting", "acc float", "acc default", "acc proposal", "test float",
             "test default", "test proposal", "bits default", "bits proposal", "DSP default",
             "DSP proposal", "mult. proposal", "seconds")]
    tables = []
    for name, kwargs in SETTINGS:
        start = time.perf_counter()
        proposal = config_from_data(graph, x, y=y, **kwargs)
        seconds = time.perf_counter() - start
        tables.append((name, proposal.table()))
        acc = proposal.accuracy
        res = proposal.resources
        rows.append((
            name, f"{acc['float']:.4f}", f"{acc['default']:.4f}", f"{acc['proposal']:.4f}",
            f"{_accuracy(wide, graph, x_test, y_test):.4f}",
            f"{_accuracy(default, graph, x_test, y_test):.4f}",
            f"{_accuracy(proposal.config, graph, x_test, y_test):.4f}",
            str(proposal.bits["default"]), str(proposal.bits["proposal"]),
            str(res["default"]["dsp"]), str(res["proposal"]["dsp"]),
            str(res["proposal"]["multipliers"]), f"{seconds:.1f}",
        ))
    print(f"jet tagger 16-64-32-32-5, {args.samples} samples to choose the types, "
          f"{args.test_samples} held out; resources are ESTIMATES (analytic)")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    for name, text in tables:
        print(f"\n=== {name}\n{text}")


if __name__ == "__main__":
    main()
