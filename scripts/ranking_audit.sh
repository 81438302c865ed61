#!/usr/bin/env bash
# The ranking-audit experiment of docs/results.md: a search (resumable) and its audit (resumable), with
# the wall time of each recorded in OUT/experiment.json. Rerun the same command to continue after a kill.
#
#   scripts/ranking_audit.sh demo   OUT      # the demo preset as `make demo` runs it
#   scripts/ranking_audit.sh demo5x OUT      # 5x the supernet iterations and 5x the archval images
#
# Stand-alone runs are cached in $CRNAS_CACHE (default ~/.cache/crnas), so both audits share the runs
# they have in common. Extra arguments go to `crnas audit` (e.g. --seeds 0 1).
set -euo pipefail
variant=${1:?usage: scripts/ranking_audit.sh demo|demo5x OUT [audit args...]}
out=${2:?usage: scripts/ranking_audit.sh demo|demo5x OUT [audit args...]}
shift 2
case "$variant" in
    demo)   search=(--synthetic --preset demo) ;;
    # 448 images with 5/14 held out: archval 160 (5x the demo's 32), archtrain 288 as in the demo
    demo5x) search=(--synthetic 448 --val-fraction 0.357 --preset demo --stage-iterations 2000 --op-iterations 1000) ;;
    *) echo "variant: expected demo or demo5x, got $variant" >&2; exit 2 ;;
esac
python=${PYTHON:-python}
t0=$(date +%s)
"$python" -m crnas search "${search[@]}" --family resnet50 --seed 0 --out "$out" --resume --no-progress
t1=$(date +%s)
"$python" -m crnas audit "$out" --allocations 12 --no-progress "$@"
t2=$(date +%s)
"$python" - "$out" "$variant" $((t1 - t0)) $((t2 - t1)) <<'PY'
import json, os, platform, sys
out, variant, search_s, audit_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
info = {"variant": variant, "search_wall_s_this_run": search_s, "audit_wall_s_this_run": audit_s,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
open(os.path.join(out, "experiment.json"), "w").write(json.dumps(info, indent=2) + "\n")
print(json.dumps(info))
PY
