#!/usr/bin/env bash
# The main job on a built-in default: train a small CNN on scikit-learn's digits, shrink, quantize, compile,
# build firmware for a virtual board, flash it, benchmark it and report. Installs what it needs first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$VENV/bin/formicary" demo "$@"
