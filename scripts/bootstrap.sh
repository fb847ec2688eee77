#!/usr/bin/env bash
# Installs everything formicary needs on a fresh machine, idempotently:
#   apt packages (arm-none-eabi-gcc, newlib, qemu-system-arm) when root, else one message naming what is missing;
#   the test tools (clang + its libFuzzer runtime for tests/fuzz and tests/mlperf, chromium for the report's
#   browser test) when root, else a warning: those tests then skip;
#   a virtualenv at .venv with formicary and its pinned dependencies;
#   PlatformIO's core package tool-scons, offline, into .pio-core (the registry is not reachable from here);
#   the virtual SBC (aarch64 Debian under qemu-system-aarch64, ~3 min once per machine, cached) when root, else a
#   warning: the tests on it then skip. FORMICARY_SKIP_VIRTUAL_SBC=1 leaves it out.
# Sourced by scripts/demo.sh and scripts/test.sh; exports FORMICARY_ROOT, VENV, PLATFORMIO_* and PATH.
set -euo pipefail
FORMICARY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$FORMICARY_ROOT/.venv"
export FORMICARY_ROOT VENV

log() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------------------
APT_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm gcc python3-venv util-linux)
missing=()
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v cc >/dev/null || missing+=(gcc)
command -v setpriv >/dev/null || missing+=(util-linux)  # QEMUs die with the process that started them
# Test tools: libFuzzer needs clang's runtime package of the same version (Debian 12: clang 14, libclang-rt-14-dev);
# chromium renders the report in tests/report/test_report_browser.py.
clang_major() {  # of the installed clang, else of the clang apt would install
  if command -v clang >/dev/null; then clang -dumpversion | cut -d. -f1; return; fi
  if command -v apt-cache >/dev/null; then
    apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1 || true
  fi
}
has_libfuzzer() {
  command -v clang >/dev/null && [ -f "$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a" ]
}
is_root_with_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {
  [ "$apt_updated" = 1 ] || { DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install --no-install-recommends -y -qq "$@" >/dev/null
}
if [ ${#missing[@]} -gt 0 ]; then
  if is_root_with_apt; then
    log "installing apt packages: ${missing[*]}"
    apt_install "${APT_PACKAGES[@]}"
  else
    echo "formicary needs these system packages and cannot install them (not root or no apt-get):" >&2
    echo "  ${missing[*]}" >&2
    echo "install them, e.g.: sudo apt-get install --no-install-recommends ${APT_PACKAGES[*]}" >&2
    exit 1
  fi
fi
test_missing=()
has_libfuzzer || test_missing+=(clang "libclang-rt-$(clang_major)-dev")
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || test_missing+=(chromium)
command -v socat >/dev/null || test_missing+=(socat)  # the pty the MLCommons runner opens (tests/mlperf)
# CMake + Ninja: tests/export builds a user CMake project around an exported library.
command -v cmake >/dev/null || test_missing+=(cmake)
command -v ninja >/dev/null || test_missing+=(ninja-build)
# tests/sbc: a private loopback sshd plays an SBC for the SSH error cases (host keys, logins, disks, drops)
[ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null || test_missing+=(openssh-server openssh-client)
if [ ${#test_missing[@]} -gt 0 ]; then
  if is_root_with_apt; then
    log "installing test tools for the libFuzzer runs, the browser, MLPerf pty, CMake export and loopback-SSH tests (~1 min): ${test_missing[*]}"
    apt_install "${test_missing[@]}"
  else
    log "cannot install ${test_missing[*]} (not root or no apt-get): the libFuzzer, browser, MLPerf pty, CMake export and loopback-SSH tests will skip" \
        "(sudo apt-get install --no-install-recommends ${test_missing[*]})"
  fi
fi

# The virtual SBC's build tools (mmdebstrap's foreign stage runs arm64 binaries through qemu-user-static).
VSBC_APT_PACKAGES=(mmdebstrap qemu-user-static binfmt-support e2fsprogs openssh-client qemu-system-arm)
vsbc_missing=()
for tool in mmdebstrap qemu-aarch64-static update-binfmts mke2fs ssh ssh-keygen qemu-system-aarch64; do
  command -v "$tool" >/dev/null || { vsbc_missing=("${VSBC_APT_PACKAGES[@]}"); break; }
done
if [ "${FORMICARY_SKIP_VIRTUAL_SBC:-0}" != 1 ] && [ ${#vsbc_missing[@]} -gt 0 ]; then
  if is_root_with_apt; then
    log "installing the virtual SBC's build tools: ${vsbc_missing[*]}"
    apt_install "${vsbc_missing[@]}"
  else
    log "cannot install ${vsbc_missing[*]} (not root or no apt-get): the virtual SBC tests will skip" \
        "(sudo apt-get install --no-install-recommends ${vsbc_missing[*]})"
  fi
fi

# --- Python virtualenv --------------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "formicary needs Python 3.11 (TensorFlow 2.21 wheels); found $("$PYTHON" --version 2>&1)." >&2
  echo "set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || { log "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
stamp="$VENV/.formicary-installed"
want="$(cat "$FORMICARY_ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python packages into $VENV (first time: ~2 min)"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$FORMICARY_ROOT[test,power,onnx,lab]"
  # labgrid's pyserial-labgrid and pyserial install the same `serial` files; whichever came last owns them. The
  # project settles on pyserial-labgrid when the lab extra is installed (docs/lab.md): make it own them.
  "$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$("$VENV/bin/python" -c 'import importlib.metadata as m; print("pyserial-labgrid==" + m.version("pyserial-labgrid"))')"
  echo "$want" > "$stamp"
fi

# --- PlatformIO, offline ---------------------------------------------------------------------------------
export PLATFORMIO_CORE_DIR="${PLATFORMIO_CORE_DIR:-$FORMICARY_ROOT/.pio-core}"
export PLATFORMIO_DISABLE_UPGRADE_CHECK=true PLATFORMIO_SETTING_ENABLE_TELEMETRY=No
export PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL=3650
"$VENV/bin/python" -m formicary.toolchain install-scons >/dev/null

# --- the virtual SBC: built once per machine into the user cache (a no-op when built) ----------------------------
if [ "${FORMICARY_SKIP_VIRTUAL_SBC:-0}" != 1 ]; then
  vsbc_status="$(unset FORMICARY_CACHE_DIR; "$VENV/bin/python" -m formicary.target.virtual_sbc status --json || true)"
  if [[ "$vsbc_status" != *'"built": true'* ]]; then
    if [ "$(id -u)" = 0 ] && command -v mmdebstrap >/dev/null; then
      log "building the virtual SBC (aarch64 Debian + TFLite runtimes; ~3 min, once per machine)"
      # once more on failure: the build downloads from the Debian mirror and PyPI
      (unset FORMICARY_CACHE_DIR; "$VENV/bin/python" -m formicary.target.virtual_sbc build) \
        || (unset FORMICARY_CACHE_DIR; "$VENV/bin/python" -m formicary.target.virtual_sbc build --force) \
        || log "the virtual SBC build failed (see the log it names): its tests will skip"
    else
      log "the virtual SBC is not built and building it needs root: its tests will skip" \
          "(sudo $VENV/bin/python -m formicary.target.virtual_sbc build)"
    fi
  fi
fi

export PATH="$VENV/bin:$PATH"
