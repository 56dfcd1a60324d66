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
  # tests and benchmarks (chromium: the browser end-to-end tests, driven by playwright-core)
  libgtest-dev libgmock-dev libbenchmark-dev dcm2niix chromium
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

# Node.js and npm for the web UI (Debian's, unless a newer Node.js is already installed).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing Debian's nodejs and npm"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi

# The browser UI (web/): `npm ci` from the committed package-lock.json, only when the lock file
# changed since the last install (a stamp in node_modules), then `npm run build` into web/dist
# when a source is newer than the last build. Both steps are skipped when nothing changed.
WEB="$(cd "$(dirname "$0")/.." && pwd)/web"
if [ -f "$WEB/package-lock.json" ]; then
  lock_sum="$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$WEB/node_modules/.tumorlab-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    (cd "$WEB" && npm ci --no-audit --no-fund)
    echo "$lock_sum" > "$WEB/node_modules/.tumorlab-lock-sha256"
  else
    echo "setup: web/node_modules up to date"
  fi
  if [ ! -f "$WEB/dist/index.html" ] || [ -n "$(find "$WEB/src" "$WEB/index.html" "$WEB/package-lock.json" "$WEB"/vite.config.* "$WEB/tsconfig.json" -newer "$WEB/dist/index.html" 2>/dev/null | head -1)" ]; then
    (cd "$WEB" && npm run build)
  else
    echo "setup: web/dist up to date"
  fi
fi
