#!/usr/bin/env bash
# The main job on a built-in default: train a small CNN on scikit-learn's digits, shrink, quantize, compile,
# build firmware for a virtual board, flash it, benchmark it and report. Installs what it needs first.
set -euo pipefail
# the main job runs on a virtual microcontroller: the virtual SBC image (bootstrap.sh, for the tests) is not needed
export FORMICARY_SKIP_VIRTUAL_SBC="${FORMICARY_SKIP_VIRTUAL_SBC:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$VENV/bin/formicary" demo "$@"
