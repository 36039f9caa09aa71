#!/usr/bin/env bash
# Build the Python 3.11 venv that runs QKeras, the reference for nnfab's QKeras tests,
# and, when NNFAB_QKERAS_ORACLE names a directory, write the reference outputs there.
# Idempotent: an existing venv with the pinned versions is kept, and the outputs are
# only regenerated when missing or older than make_outputs.py.
#
#   scripts/qkeras_oracle/setup.sh [VENV_DIR]     (default: $NNFAB_QKERAS_VENV or
#                                                  <repo>/.venv-qkeras)
# Outputs go to $NNFAB_QKERAS_ORACLE (default <repo>/.oracle/qkeras), where the tests
# look for them; the models come from $NNFAB_MODELS_DIR (default <repo>/tests/data/models).
#   NNFAB_QKERAS_ORACLE=OUT_DIR scripts/qkeras_oracle/setup.sh
#   NNFAB_QKERAS_ORACLE=OUT_DIR python -m pytest tests/frontends/test_qkeras.py
#
# By hand: VENV_DIR/bin/python scripts/qkeras_oracle/make_outputs.py OUT_DIR
#          [--models-dir DIR]  (DIR/keras/qkeras_3layer.json)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${1:-${NNFAB_QKERAS_VENV:-$REPO/.venv-qkeras}}"
NNFAB_QKERAS_ORACLE="${NNFAB_QKERAS_ORACLE:-$REPO/.oracle/qkeras}"
NNFAB_MODELS_DIR="${NNFAB_MODELS_DIR:-$REPO/tests/data/models}"
PYTHON="${NNFAB_QKERAS_PYTHON:-python3.11}"
TF_VERSION="2.14.1"
QKERAS_VERSION="0.9.0"

check() {
    "$VENV/bin/python" - "$TF_VERSION" "$QKERAS_VERSION" <<'PY' >/dev/null 2>&1
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import qkeras, tensorflow
assert tensorflow.__version__ == sys.argv[1], tensorflow.__version__
assert qkeras.__version__ == sys.argv[2], qkeras.__version__
PY
}

if [ -x "$VENV/bin/python" ] && check; then
    echo "QKeras venv ready: $VENV (tensorflow-cpu $TF_VERSION, qkeras $QKERAS_VERSION)"
else
    if ! command -v "$PYTHON" >/dev/null; then
        echo "error: $PYTHON not found; TensorFlow $TF_VERSION needs Python 3.9-3.11" \
             "(set NNFAB_QKERAS_PYTHON)" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$VENV"
    # qkeras 0.9.0 declares 'pyparser' but imports 'pyparsing': install it explicitly.
    # tf-keras is pinned to the release pip settles on anyway: without the pin the
    # resolver downloads several 600 MB TensorFlow wheels while backtracking.
    "$VENV/bin/pip" install --disable-pip-version-check \
        "tensorflow-cpu==$TF_VERSION" "qkeras==$QKERAS_VERSION" "tf-keras==2.15.0" pyparsing
    if ! check; then
        echo "error: $VENV was built but cannot import tensorflow $TF_VERSION + qkeras" \
             "$QKERAS_VERSION; run: $VENV/bin/python -c 'import qkeras'" >&2
        exit 1
    fi
    echo "QKeras venv ready: $VENV"
fi

if [ ! -f "$NNFAB_MODELS_DIR/keras/qkeras_3layer.json" ]; then
    echo "QKeras oracle skipped: $NNFAB_MODELS_DIR/keras/qkeras_3layer.json not found" \
         "(set NNFAB_MODELS_DIR to a directory holding keras/qkeras_3layer.json + _weights.h5);" \
         "the QKeras comparison tests will skip"
    exit 0
fi

manifest="$NNFAB_QKERAS_ORACLE/manifest.json"
if [ -f "$manifest" ] && [ "$manifest" -nt "$HERE/make_outputs.py" ]; then
    echo "QKeras reference outputs up to date: $NNFAB_QKERAS_ORACLE"
else
    "$VENV/bin/python" "$HERE/make_outputs.py" "$NNFAB_QKERAS_ORACLE" \
        --models-dir "$NNFAB_MODELS_DIR"
fi
