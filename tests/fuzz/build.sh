#!/usr/bin/env bash
# Build the libFuzzer harness for the firmware's frame parser + command dispatcher with ASan and UBSan.
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev).
# Usage: tests/fuzz/build.sh [OUT]   then   OUT -max_total_time=60 tests/fuzz/corpus
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$HERE/fuzz_app}"
CC="${CC:-clang}"
APP=()  # the firmware app without its Cortex-M main()
for f in "$ROOT"/firmware/app/*.c; do [[ $f == */main.c ]] || APP+=("$f"); done
"$CC" -g -O1 -std=c11 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DFM_BOARD_NAME='"host-fuzz"' -DFM_CLOCK_HZ=25000000u -DFM_VIRTUAL=1 -DFM_FAKE_IN_BYTES=40 -DFM_FAKE_STAGED=1 -DFM_MAX_WARMUP=4 \
  -I"$ROOT/firmware/app" -I"$ROOT/firmware/protocol" -I"$ROOT/firmware/port" -I"$ROOT/firmware/runtime/include" \
  -I"$ROOT/tests/device/fixtures/fake_model" -I"$HERE" \
  "$HERE/fuzz_app.c" "$HERE/host_port.c" \
  "${APP[@]}" \
  "$ROOT/firmware/protocol/fm_frame.c" "$ROOT/firmware/port/fm_port_defaults.c" \
  "$ROOT/tests/device/fixtures/fake_model/fm_model.c" \
  -o "$OUT"
echo "$OUT"
