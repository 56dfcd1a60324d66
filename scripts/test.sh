#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds everything (ci preset) and runs every test:
# unit and integration suites (CTest; those that need ../shared/data skip with a message when
# it is absent), then each libFuzzer target for a fixed, seeded number of runs on the seeds the tests wrote.
# Usage: scripts/test.sh [fuzz runs per target, default 8000]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset ci
cmake --build --preset ci
ctest --preset ci
scripts/fuzz.sh "${1:-8000}"
echo "test.sh: all tests passed"
