#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz": clang-14 + ASan + UBSan) and runs each for a
# fixed number of runs from a fixed seed on the seed corpus the unit tests wrote
# (build/ci/fuzz-seeds/<target>), so that a run is repeatable: what passes here passes in CI.
# For open-ended fuzzing, run build/fuzz/tests/fuzz/fuzz_<target> by hand without -runs.
# Limits: RSS 3 GiB; single mallocs up to 4.1 GiB are let through because DCMTK allocates an
# element's declared 32-bit length inside deflated data (untouched pages) before it notices the
# stream is short; our own buffers are capped by TUMORLAB_MAX_VOLUME_BYTES (64 MiB here).
# Usage: scripts/fuzz.sh [runs per target, default 8000]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-8000}"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
status=0
for target in nifti dicom zip; do
  corpus="build/fuzz/corpus/$target"
  mkdir -p "$corpus"
  seeds="build/ci/fuzz-seeds/$target"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  # The DICOM target decodes whole series (~20x slower per run than NIfTI): a quarter of the runs.
  n="$runs"
  [ "$target" = dicom ] && n=$((runs / 4))
  echo "fuzz: $target for $n runs ($(ls "$corpus" | wc -l) seeds)"
  if ! ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "build/fuzz/tests/fuzz/fuzz_$target" "$corpus" -runs="$n" -seed=20261201 -max_total_time=300 -rss_limit_mb=3072 -malloc_limit_mb=4200 \
      -timeout=20 -print_final_stats=1 -artifact_prefix="build/fuzz/crash-$target-" 2>"build/fuzz/$target.log"; then
    echo "fuzz: $target FAILED; see build/fuzz/$target.log and build/fuzz/crash-$target-*"
    tail -40 "build/fuzz/$target.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "build/fuzz/$target.log" | tail -2 || true
  fi
done
exit $status
