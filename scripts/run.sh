#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds tumorlab (release preset) and runs the main job.
# Until the server exists (next issues), the main job is `tumorlab --help` and a demo `info`
# on the synthetic phantom in tests/data/demo (no patient data needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release
cmake --build --preset release --target tumorlab
build/release/tumorlab --help
build/release/tumorlab info tests/data/demo/phantom_mr.nii.gz
