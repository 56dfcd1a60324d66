#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs every Debian package tumorlab needs.
# Safe to run again: apt-get only installs what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  clang-14 libfuzzer-14-dev libclang-rt-14-dev clang-format clang-tidy
  # imaging: ITK (+ GDCM tools, needed for ITK's CMake config to load), DCMTK
  libinsighttoolkit5-dev libgdcm-dev libgdcm-tools dcmtk libdcmtk-dev libopenjp2-7-dev
  zlib1g-dev libpng-dev libzip-dev
  # machine learning: Debian's LibTorch 1.13 (CPU, oneDNN) and a fast BLAS
  libtorch-dev libopenblas0-openmp python3-torch python3-numpy
  # store, server, command line
  libsqlite3-dev sqlite3 libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libsodium-dev libssl-dev openssl
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev dcm2niix
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# Node packages for the web UI (from the browser-UI issue on): npm ci is idempotent.
if [ -f "$(dirname "$0")/../web/package-lock.json" ]; then
  (cd "$(dirname "$0")/../web" && npm ci --no-audit --no-fund)
fi
