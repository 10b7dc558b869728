#!/usr/bin/env bash
# Installs what the tests need: the Python test extras and, when missing and run as root, the
# Debian packages for the second host compiler (clang), the Cortex-M cross compiler and QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[test]"
missing=()
command -v clang >/dev/null || missing+=(clang)
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/include/stdlib.h ] || missing+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} missing and not root: the tests that need them will be skipped" >&2
  fi
fi
