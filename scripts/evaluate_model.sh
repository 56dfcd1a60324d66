#!/usr/bin/env bash
# Measures a model bundle on the held-out cases of its split (the numbers of its MODEL_CARD.md):
# predicts every validation case of split.json with `tumorlab predict` and scores it with
# `tumorlab evaluate` against the dataset's labelsTr. Patients (cases with a non-empty label)
# and controls (empty label) are summarised separately as well as together.
# Usage: scripts/evaluate_model.sh MODEL_DIR DATASET_DIR OUT_DIR [--record] [extra predict options...]
#   --record  also store the summary in MODEL_DIR/bundle.json as "evaluation" (with the date and the
#             predict options), which the server shows on its models screen
# Example: scripts/evaluate_model.sh models/mip-pet-2d ../shared/data/Dataset001_MIPPET build/eval/mip
set -euo pipefail
model="$1" dataset="$2" out="$3"
shift 3
record=0
if [ "${1:-}" = "--record" ]; then record=1; shift; fi
bin="${TUMORLAB_BIN:-build/ci/src/cli/tumorlab}"
split="$model/split.json"
[ -f "$split" ] || { echo "evaluate_model: $split not found (the bundle's held-out split)" >&2; exit 2; }
ending=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['file_ending'])" "$dataset/dataset.json")
rm -rf "$out"
mkdir -p "$out/images" "$out/labels-all" "$out/labels-patients" "$out/labels-controls" "$out/pred"
# The held-out cases, channels grouped as in imagesTr; references split into patients and controls.
python3 - "$split" "$dataset" "$out" "$ending" <<'EOF'
import json, os, sys, glob
split, dataset, out, ending = sys.argv[1:]
cases = json.load(open(split))["validation"]
for c in cases:
    for img in sorted(glob.glob(os.path.join(dataset, "imagesTr", c + "_[0-9][0-9][0-9][0-9]" + ending))):
        os.symlink(os.path.abspath(img), os.path.join(out, "images", os.path.basename(img)))
    lab = os.path.join(dataset, "labelsTr", c + ending)
    os.symlink(os.path.abspath(lab), os.path.join(out, "labels-all", c + ending))
print(f"evaluate_model: {len(cases)} held-out cases")
EOF
start=$(date +%s.%N)
"$bin" predict -m "$model" "$out/images" -o "$out/pred" --timings "$out/timings.json" "$@"
end=$(date +%s.%N)
"$bin" evaluate --pred "$out/pred" --ref "$out/labels-all" --json "$out/all.json" --csv "$out/all.csv" -q
# Patients vs controls from the per-case voxel counts in the reference.
python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
d = json.load(open(os.path.join(out, "all.json")))
rows = [r["metrics"] for r in d["cases"]]
def key(r, *names):
    for n in names:
        if n in r and r[n] is not None:
            return r[n]
    return None
pat = [r for r in rows if (key(r, "ref_voxels") or 0) > 0]
ctl = [r for r in rows if (key(r, "ref_voxels") or 0) == 0]
def mean(v):
    v = [x for x in v if x is not None]
    return sum(v) / len(v) if v else float("nan")
summary = {
    "cases": len(rows), "patients": len(pat), "controls": len(ctl),
    "patients_mean_dice": mean([key(r, "dice") for r in pat]),
    "patients_median_dice": sorted([key(r, "dice") for r in pat])[len(pat) // 2] if pat else None,
    "patients_mean_hd95_mm": mean([key(r, "hd95_mm") for r in pat]),
    "patients_mean_lesion_f1": mean([key(r, "lesion_f1") for r in pat]),
    "all_mean_dice": mean([key(r, "dice") for r in rows]),
    "controls_with_false_positive": sum(1 for r in ctl if (key(r, "pred_voxels") or 0) > 0),
    "controls_mean_fp_volume_ml": mean([key(r, "fp_volume_ml") for r in ctl]),
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
EOF
if [ "$record" = 1 ]; then
  python3 - "$model" "$out" "$(basename "$dataset")" "$*" <<'EOF'
import datetime, json, os, sys
model, out, dataset, settings = sys.argv[1:]
s = json.load(open(os.path.join(out, "summary.json")))
path = os.path.join(model, "bundle.json")
b = json.load(open(path))
ev = {k: s[k] for k in ("cases", "patients", "controls", "patients_mean_dice", "patients_median_dice",
                        "patients_mean_hd95_mm", "patients_mean_lesion_f1", "controls_with_false_positive")}
ev = {k: (None if isinstance(v, float) and v != v else v) for k, v in ev.items()}  # NaN is not JSON
ev.update({"dataset": dataset, "split": "split.json validation (held out from training)",
           "settings": settings or "default",
           "bf16": json.load(open(os.path.join(out, "timings.json")))["bf16"],  # the plans' default or --bf16/--fp32
           "measured": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")})
b["evaluation"] = ev
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(b, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
print(f"evaluate_model: recorded in {path}")
EOF
fi
echo "evaluate_model: predict took $(python3 -c "print(round($end - $start, 1))") s for all cases; results in $out"
