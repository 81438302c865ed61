#!/bin/sh
# Cargo runner: run a test binary with the active Python's torch/lib on the loader path.
eval "$(python3 - <<'PY'
import importlib.util, os, shlex
spec = importlib.util.find_spec("torch")
if spec is None:
    raise SystemExit("torch-run.sh: torch is not importable; activate the venv (make test does)")
t = spec.submodule_search_locations[0]
print("TL=" + shlex.quote(os.path.join(t, "lib"))); print("SP=" + shlex.quote(os.path.dirname(t)))
PY
)" || exit 1
export LD_LIBRARY_PATH="$TL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$SP${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
