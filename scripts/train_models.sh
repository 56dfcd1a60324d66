#!/usr/bin/env bash
# Trains (or resumes) the two bundled models on ../shared/data, across sessions and machines.
#   scripts/train_models.sh train [BUDGET]   resume both runs in the background for BUDGET (default 100m)
#   scripts/train_models.sh snapshot         stop the runs (SIGTERM: last/ is saved) and copy each
#                                            run's last/model.pt + state.json, log.csv, plans.json
#                                            and split.json into training/<name>/ (committed)
#   scripts/train_models.sh export NAME      export checkpoints/NAME/best as the bundle models/NAME
#                                            (float16 weights; then scripts/evaluate_model.sh and
#                                            write MODEL_CARD.md from its numbers)
# Runs live in checkpoints/<name>/ (ignored by git). On a fresh machine the run is seeded from the
# committed snapshot training/<name>/ (weights, epoch, schedule and rng state; SGD momentum
# restarts from zero), so training goes on where the last session stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TUMORLAB_BIN:-build/ci/src/cli/tumorlab}"
data="${TUMORLAB_SHARED_DATA:-../shared/data}"
declare -A dataset=([mip-pet-2d]=Dataset001_MIPPET [lgg-flair-3d]=Dataset002_LGGFLAIR)
declare -A valpatches=([mip-pet-2d]=96 [lgg-flair-3d]=48)
names=(mip-pet-2d lgg-flair-3d)

seed_run() {
  local name="$1" run="checkpoints/$1" snap="training/$1"
  if [ ! -f "$run/last/state.json" ] && [ -f "$snap/state.json" ]; then
    echo "train_models: seeding $run from the committed snapshot $snap"
    mkdir -p "$run/last"
    cp "$snap/model.pt" "$snap/state.json" "$run/last/"
    cp "$snap/plans.json" "$snap/split.json" "$run/"
    [ -f "$snap/log.csv" ] && cp "$snap/log.csv" "$run/"
  fi
}

case "${1:-}" in
  train)
    budget="${2:-100m}"
    mkdir -p checkpoints
    cp "$bin" checkpoints/tumorlab-train  # rebuilding the tree must not disturb a running job
    for name in "${names[@]}"; do
      seed_run "$name"
      plans="models/$name/plans.json"
      [ -f "checkpoints/$name/plans.json" ] && plans="checkpoints/$name/plans.json"
      nohup checkpoints/tumorlab-train train "$data/${dataset[$name]}" -p "$plans" -o "checkpoints/$name" \
        --threads 1 --workers 1 --validation-patches "${valpatches[$name]}" --time-budget "$budget" \
        >>"checkpoints/$name.log" 2>&1 &
      echo "train_models: $name running (pid $!), log checkpoints/$name.log, epochs in checkpoints/$name/log.csv"
    done
    ;;
  snapshot)
    pkill -TERM -f "tumorlab-train train" || true
    while pgrep -f "tumorlab-train train" >/dev/null; do sleep 2; done
    for name in "${names[@]}"; do
      run="checkpoints/$name"
      [ -f "$run/last/state.json" ] || { echo "train_models: $run has no last/ checkpoint"; continue; }
      mkdir -p "training/$name"
      cp "$run/last/model.pt" "$run/last/state.json" "$run/plans.json" "$run/split.json" "training/$name/"
      [ -f "$run/log.csv" ] && cp "$run/log.csv" "training/$name/"
      echo "train_models: training/$name <- $run/last ($(tail -n 1 "$run/log.csv" | cut -d, -f1) epochs)"
    done
    ;;
  export)
    name="${2:?export NAME}"
    "$bin" train "$data/${dataset[$name]}" -p "checkpoints/$name/plans.json" -o "checkpoints/$name" \
      --export-only --export "models/$name" --export-checkpoint best
    ;;
  *)
    sed -n 2,12p "$0"
    exit 2
    ;;
esac
