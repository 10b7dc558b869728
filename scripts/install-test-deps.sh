#!/usr/bin/env bash
# Installs what the tests need: the Python test extras and, when missing and run as root, the
# Debian packages for the second host compiler (clang), g++ (C-simulation of the FPGA designs),
# the Cortex-M and RV32 cross compilers with their C libraries, and QEMU for both
# (qemu-system-riscv32 is in qemu-system-misc).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[test]"
missing=()
command -v clang >/dev/null || missing+=(clang)
command -v g++ >/dev/null || missing+=(g++)
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/include/stdlib.h ] || missing+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v riscv64-unknown-elf-gcc >/dev/null || missing+=(gcc-riscv64-unknown-elf)
[ -e /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs ] || missing+=(picolibc-riscv64-unknown-elf)
command -v qemu-system-riscv32 >/dev/null || missing+=(qemu-system-misc)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} missing and not root: the tests that need them will be skipped" >&2
  fi
fi
