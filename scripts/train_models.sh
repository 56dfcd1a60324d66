#!/usr/bin/env bash
# Trains (or resumes) the two bundled models on ../shared/data.
#   scripts/train_models.sh train [BUDGET] [EPOCHS]
#                                            start or resume both runs in the background for BUDGET
#                                            (default 100m); a run resumes from its last/ checkpoint;
#                                            EPOCHS overrides the plans' epoch count (the poly learning
#                                            rate schedule then ends at EPOCHS)
#   scripts/train_models.sh stop             stop the runs (SIGTERM: each saves last/ first)
#   scripts/train_models.sh export NAME      export checkpoints/NAME/best as the bundle models/NAME
#                                            (float16 weights; then scripts/evaluate_model.sh and
#                                            write MODEL_CARD.md from its numbers)
# Runs live in checkpoints/<name>/ (a build output, ignored by git): only a finished bundle under
# models/ is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TUMORLAB_BIN:-build/ci/src/cli/tumorlab}"
data="${TUMORLAB_SHARED_DATA:-../shared/data}"
declare -A dataset=([mip-pet-2d]=Dataset001_MIPPET [lgg-flair-3d]=Dataset002_LGGFLAIR)
declare -A valpatches=([mip-pet-2d]=96 [lgg-flair-3d]=48)
names=(mip-pet-2d lgg-flair-3d)

case "${1:-}" in
  train)
    budget="${2:-100m}"
    epochs=()
    [[ -n "${3:-}" ]] && epochs=(--epochs "$3")
    mkdir -p checkpoints
    cp "$bin" checkpoints/tumorlab-train  # rebuilding the tree must not disturb a running job
    for name in "${names[@]}"; do
      nohup checkpoints/tumorlab-train train "$data/${dataset[$name]}" -p "models/$name/plans.json" -o "checkpoints/$name" \
        --threads 1 --workers 1 --validation-patches "${valpatches[$name]}" --time-budget "$budget" "${epochs[@]}" \
        >>"checkpoints/$name.log" 2>&1 &
      pid=$!
      # Builds and tests on the same cores run in their own scheduler autogroups (one per
      # session), where `nice` does not reach: give the training's group the priority (root only).
      echo -10 >"/proc/$pid/autogroup" 2>/dev/null || true
      echo "train_models: $name running (pid $pid), log checkpoints/$name.log, epochs in checkpoints/$name/log.csv"
    done
    ;;
  stop)
    pkill -TERM -f "tumorlab-train train" || true
    while pgrep -f "tumorlab-train train" >/dev/null; do sleep 2; done
    ;;
  export)
    name="${2:?export NAME}"
    "$bin" train "$data/${dataset[$name]}" -p "checkpoints/$name/plans.json" -o "checkpoints/$name" \
      --export-only --export "models/$name" --export-checkpoint best
    ;;
  *)
    sed -n 2,13p "$0"
    exit 2
    ;;
esac
