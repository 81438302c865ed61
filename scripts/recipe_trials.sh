#!/usr/bin/env bash
# Supernet-recipe trials (docs/results.md): one demo-scale search per recipe on the built-in data,
# then every search's stage ranking checked against one stand-alone ground truth
# (scripts/allocation_spread.py --searches). Resumable: rerun the same command after a kill; finished
# searches are skipped, stand-alone runs come from the cache ($CRNAS_CACHE/standalone).
#
#   scripts/recipe_trials.sh OUT [recipe ...]      # default: every recipe below
#
# Recipes (all: --preset demo --family resnet50 --seed 0, data seed 0, 448 images with 160 archval):
#   uniform2k   2,000 stage-supernet iterations, uniform allocation sampling (5x the demo)
#   balanced2k  the same with --stage-sampling balanced
#   uniform400  the demo's 400 iterations (the baseline recipe)
set -euo pipefail
out=${1:?usage: scripts/recipe_trials.sh OUT [recipe ...]}
shift
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(uniform400 uniform2k balanced2k)
python=${PYTHON:-python}
common=(--synthetic 448 --val-fraction 0.357 --preset demo --family resnet50 --seed 0 --op-iterations 1000 --resume --no-progress)
dirs=()
for recipe in "${recipes[@]}"; do
    case "$recipe" in
        uniform400) extra=(--stage-iterations 400) ;;
        uniform2k) extra=(--stage-iterations 2000) ;;
        balanced2k) extra=(--stage-iterations 2000 --stage-sampling balanced) ;;
        *) echo "recipe: expected uniform400, uniform2k or balanced2k, got $recipe" >&2; exit 2 ;;
    esac
    dir="$out/$recipe"
    if [ ! -f "$dir/result.json" ]; then
        t0=$(date +%s)
        "$python" -m crnas search "${common[@]}" "${extra[@]}" --out "$dir"
        echo "$recipe: search $(( $(date +%s) - t0 )) s" | tee -a "$out/timings.txt"
    fi
    dirs+=("$dir")
done
"$python" "$(dirname "$0")/allocation_spread.py" --preset demo --allocations 12 --seeds 0 1 --iterations 1000 \
    --train-images 288 --eval-images 300 --out "$out/spread.json" --no-progress --searches "${dirs[@]}"
