#!/usr/bin/env bash
# The whole test suite. Installs what it needs first. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$FORMICARY_ROOT"
exec "$VENV/bin/python" -m pytest "$@"
