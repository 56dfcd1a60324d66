#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds tumorlab (release preset) and the web UI, and starts the
# main job: `tumorlab serve` on its embedded defaults (SQLite data folder, 127.0.0.1:8080). The
# first start creates the admin account (password from $TUMORLAB_ADMIN_PASSWORD, else generated
# and printed once). No patient data is needed. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release
cmake --build --preset release --target tumorlab
build/release/src/cli/tumorlab info tests/data/demo/phantom_mr.nii.gz
exec build/release/src/cli/tumorlab serve "$@"
