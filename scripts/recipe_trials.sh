#!/usr/bin/env bash
# Supernet-recipe trials (docs/results.md): one search per recipe on the built-in data, then every
# search's stage ranking checked against one stand-alone ground truth (scripts/allocation_spread.py
# --searches: 12 allocations x 2 seeds at the demo's detector settings, 1,000 iterations, data seeds
# 1000/1001 that no search saw). Resumable: rerun the same command after a kill; finished searches are
# skipped, searches resume from their checkpoints, stand-alone runs come from the cache
# ($CRNAS_CACHE/standalone). Start it once per core to use every core (the runs are shared by locks;
# set OMP_NUM_THREADS=1).
#
#   scripts/recipe_trials.sh OUT [recipe ...]      # default: quality quality-uniform
#
# Recipes (ResNet50, seed 0, data seed 0; all share the demo's detector, data distribution and schedule):
#   quality          the quality preset: 2,000 stage-supernet iterations, balanced depth sampling,
#                    448 images with 160 archval, 1,000 op-supernet iterations
#   quality-uniform  the same with the paper's uniform sampling over allocations
#   demo448          the demo's 400 / 1,000 iterations, uniform, on the quality preset's 448 images / 160 archval
set -euo pipefail
out=${1:?usage: scripts/recipe_trials.sh OUT [recipe ...]}
shift
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(quality quality-uniform)
python=${PYTHON:-python}
common=(--synthetic --family resnet50 --seed 0 --resume --no-progress)
dirs=()
for recipe in "${recipes[@]}"; do
    case "$recipe" in
        quality) extra=(--preset quality) ;;
        quality-uniform) extra=(--preset quality --stage-sampling uniform) ;;
        demo448) extra=(--preset demo --synthetic 448 --val-fraction 0.357 --op-iterations 1000) ;;
        *) echo "recipe: expected quality, quality-uniform or demo448, got $recipe" >&2; exit 2 ;;
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
