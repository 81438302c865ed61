#!/usr/bin/env bash
# Supernet-recipe trials (docs/results.md): one search per recipe on the built-in data, then every
# search's stage ranking checked against one stand-alone ground truth (scripts/allocation_spread.py
# --searches: 12 allocations at the demo's detector settings, 1,000 iterations, data seeds 1000/1001
# that no search saw; 2 seeds with BatchNorm, 3 with GroupNorm — the recipes of one call share a norm).
# Resumable: rerun the same command after a kill; finished searches are skipped, searches resume from
# their checkpoints, stand-alone runs come from the cache ($CRNAS_CACHE/standalone). Start it once per
# core to use every core (the runs are shared by locks; set OMP_NUM_THREADS=1).
#
#   scripts/recipe_trials.sh OUT [recipe ...]      # default: quality-bn quality-bn-uniform
#
# Recipes (ResNet50, seed 0, data seed 0; all share the demo's detector, data distribution and schedule):
#   quality-bn          the quality preset before GroupNorm: 2,000 stage-supernet iterations, balanced depth
#                       sampling, 448 images with 160 archval, 1,000 op-supernet iterations, BatchNorm
#   quality-bn-uniform  the same with the paper's uniform sampling over allocations
#   demo448             the demo's 400 / 1,000 iterations, uniform, on the quality preset's 448 images / 160 archval
#   quality-gn          quality-bn with GroupNorm backbones (docs/design.md#norm)
#   quality-gn-fs       quality-gn split few-shot by C2's depth: 3 parts x 700 iterations (docs/design.md#few-shot)
#   quality-supernet    quality-gn with 4,000 stage-supernet iterations (the compute of quality-gn-fs; the quality
#                       preset until the depth fit replaced its stage supernet, named quality then)
#   quality             the quality preset as it is now: the stage search by a line through 12 stand-alone probes
#                       (docs/design.md#depth-fit), no stage supernet
set -euo pipefail
out=${1:?usage: scripts/recipe_trials.sh OUT [recipe ...]}
shift
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(quality-bn quality-bn-uniform)
python=${PYTHON:-python}
common=(--synthetic --family resnet50 --seed 0 --resume --no-progress)
recipe_args() {  # sets extra (the recipe's search arguments) and n (its norm)
    case "$1" in
        quality-bn) extra=(--preset quality --stage-ranker supernet --norm batch --stage-iterations 2000); n=batch ;;
        quality-bn-uniform) extra=(--preset quality --stage-ranker supernet --norm batch --stage-iterations 2000 --stage-sampling uniform)
                            n=batch ;;
        demo448) extra=(--preset demo --synthetic 448 --val-fraction 0.357 --op-iterations 1000); n=batch ;;
        quality-gn) extra=(--preset quality --stage-ranker supernet --norm group --stage-iterations 2000); n=group ;;
        quality-gn-fs) extra=(--preset quality --stage-ranker supernet --norm group --stage-iterations 2000 --split-stage C2 --split-groups 3
                              --split-iterations 700)
                       n=group ;;
        quality-supernet) extra=(--preset quality --stage-ranker supernet); n=group ;;
        quality) extra=(--preset quality); n=group ;;
        *) echo "recipe: expected quality-bn, quality-bn-uniform, demo448, quality-gn, quality-gn-fs, quality-supernet or quality, got $1" >&2
           exit 2 ;;
    esac
}
norm=
for recipe in "${recipes[@]}"; do  # one ground truth: one norm
    recipe_args "$recipe"
    if [ -n "$norm" ] && [ "$norm" != "$n" ]; then
        echo "recipes: expected one norm per call (the ground truth's), got $norm and $n" >&2; exit 2
    fi
    norm=$n
done
dirs=()
for recipe in "${recipes[@]}"; do
    recipe_args "$recipe"
    dir="$out/$recipe"
    if [ ! -f "$dir/result.json" ]; then
        t0=$(date +%s)
        "$python" -m crnas search "${common[@]}" "${extra[@]}" --out "$dir"
        echo "$recipe: search $(( $(date +%s) - t0 )) s" | tee -a "$out/timings.txt"
    fi
    dirs+=("$dir")
done
if [ "$norm" = group ]; then seeds=(0 1 2); else seeds=(0 1); fi
"$python" "$(dirname "$0")/allocation_spread.py" --preset demo --norm "$norm" --allocations 12 --seeds "${seeds[@]}" --iterations 1000 \
    --train-images 288 --eval-images 300 --out "$out/spread.json" --no-progress --searches "${dirs[@]}"
