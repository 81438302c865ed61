#!/usr/bin/env bash
# Check the two ways crnas is installed outside the dev venv, each into a fresh virtualenv that has
# only the pinned torch: the wheel from `maturin build --release`, and `pip install
# --no-build-isolation .` from the sources. Each must import and run the native op without
# LD_LIBRARY_PATH. Uses build/packaging/ (about 5 GB: two venvs with torch).
#
#   scripts/check-packaging.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$ROOT/build/packaging"
PY="${PYTHON:-python3}"
TORCH="$(sed -nE 's/^torch==(.+)$/\1/p' "$ROOT/requirements/dev.txt")"
TORCHVISION="$(sed -nE 's/^torchvision==(.+)$/\1/p' "$ROOT/requirements/dev.txt")"
mkdir -p "$WORK"
unset LD_LIBRARY_PATH

smoke() {  # $1: python of a venv with crnas installed
  (cd "$WORK" && env -u PYTHONPATH "$1" - <<'EOF'
import torch, crnas
from crnas.ops import multi_dilation_conv2d, reference
assert crnas.native_available(), "native core did not load"
assert "site-packages" in crnas.__file__, crnas.__file__
x, w, m = torch.randn(2, 4, 9, 9, dtype=torch.float64), torch.randn(4, 4, 3, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64)
assert torch.allclose(multi_dilation_conv2d(x, w, m), reference.multi_dilation_conv2d(x, w, m))
print("ok:", crnas.__file__, "torch", torch.__version__, "arch", crnas.Architecture.paper("cr_resnet50"))
EOF
  )
}

fresh_venv() {  # $1: directory
  rm -rf "$1"
  "$PY" -m venv "$1"
  "$1/bin/python" -m pip install --quiet --upgrade pip
  "$1/bin/python" -m pip install --quiet "torch==$TORCH" "torchvision==$TORCHVISION" numpy
}

echo "== wheel (maturin build --release)"
rm -rf "$WORK/dist"
(cd "$ROOT" && maturin build --release --out "$WORK/dist")
WHEEL="$(ls "$WORK"/dist/crnas-*.whl)"
ls -l "$WHEEL"
fresh_venv "$WORK/venv-wheel"
"$WORK/venv-wheel/bin/python" -m pip install --quiet "$WHEEL"
smoke "$WORK/venv-wheel/bin/python"

echo "== pip install --no-build-isolation . (from a clean copy of the tracked sources)"
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
(cd "$ROOT" && git ls-files -z | xargs -0 tar -cf -) | (cd "$WORK/src" && tar -xf -)
fresh_venv "$WORK/venv-source"
"$WORK/venv-source/bin/python" -m pip install --quiet maturin
(cd "$WORK/src" && VIRTUAL_ENV="$WORK/venv-source" PATH="$WORK/venv-source/bin:$PATH" \
  "$WORK/venv-source/bin/python" -m pip install --no-build-isolation .)
smoke "$WORK/venv-source/bin/python"
echo "packaging: both installs import and run the native op"
