#!/usr/bin/env bash
# Build crnas's native core against another torch release.
#
# tch (the Rust libtorch bindings) is locked to one libtorch version, so a wheel built for torch
# 2.13.0 cannot load into another torch. This script builds the same source against the tch release
# that matches TORCH_VERSION, in a scratch copy (your checkout and its .venv stay on torch 2.13.0):
#
#   scripts/build-for-torch.sh 2.11.0 [--python 3.12] [--dir build/torch-2.11.0-py3.12] [--test]
#
# It creates <dir>/venv with that Python and torch, copies the tracked sources to <dir>/src with
# Cargo.toml and pyproject.toml pinned to the matching tch / torch / torchvision, and writes the wheel
# to <dir>/dist. With --test it installs the wheel and the test requirements into <dir>/venv and runs
# the CPU test suite from <dir>/src against that build (with mmcv and detectron2 built for that torch by
# scripts/install-frameworks.sh). Needs the Python version (python3.12 on PATH or through pyenv), a Rust
# toolchain and network access to PyPI and crates.io.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
TORCH="$1"; shift
PY=""; DIR=""; TEST=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    --test) TEST=1; shift ;;
    -h|--help) usage ;;
    *) echo "build-for-torch: unknown argument $1" >&2; usage ;;
  esac
done

# torch release -> matching tch / pyo3-tch / torch-sys and torchvision releases
case "$TORCH" in
  2.13.0) TCH=0.26.0; TORCHVISION=0.28.0 ;;
  2.12.0) TCH=0.25.0; TORCHVISION=0.27.0 ;;
  2.11.0) TCH=0.24.0; TORCHVISION=0.26.0 ;;
  *) echo "build-for-torch: no known tch release for torch $TORCH (known: 2.11.0, 2.12.0, 2.13.0)" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "$PY" ]; then PY="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"; fi
DIR="${DIR:-$ROOT/build/torch-$TORCH-py$PY}"
mkdir -p "$DIR"; DIR="$(cd "$DIR" && pwd)"

# python$PY: a pyenv installation, else one on PATH (a pyenv shim only counts if it runs)
INTERPRETER=""
if command -v pyenv >/dev/null; then
  version="$(pyenv versions --bare | grep -E "^$PY(\.[0-9]+)?$" | tail -n 1 || true)"
  [ -n "$version" ] && INTERPRETER="$(pyenv prefix "$version")/bin/python$PY"
fi
if [ -z "$INTERPRETER" ] || ! "$INTERPRETER" -c "" 2>/dev/null; then INTERPRETER="$(command -v "python$PY" || true)"; fi
if [ -z "$INTERPRETER" ] || ! "$INTERPRETER" -c "" 2>/dev/null; then
  echo "build-for-torch: no working python$PY found (pyenv or PATH)" >&2; exit 1
fi
echo "building crnas for torch $TORCH (tch $TCH) with $INTERPRETER in $DIR"

# the build environment: that Python with that torch (torch-sys links the libtorch inside it)
VENV="$DIR/venv"
[ -x "$VENV/bin/python" ] || "$INTERPRETER" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==$TORCH" "torchvision==$TORCHVISION" numpy "maturin>=1.7,<2"

# a scratch copy of the tracked sources with the versions switched
SRC="$DIR/src"
mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -z | xargs -0 tar -cf - ) | (cd "$SRC" && tar -xf -)
sed -i -E \
  -e "s/^(pyo3-tch = )\"[^\"]+\"/\1\"$TCH\"/" \
  -e "s/^(tch = \{ version = )\"[^\"]+\"/\1\"$TCH\"/" \
  -e "s/^(torch-sys = \{ version = )\"[^\"]+\"/\1\"$TCH\"/" \
  "$SRC/Cargo.toml"
sed -i -E -e "s/\"torch==[^\"]+\"/\"torch==$TORCH\"/" -e "s/\"torchvision==[^\"]+\"/\"torchvision==$TORCHVISION\"/" "$SRC/pyproject.toml"
rm -f "$SRC/Cargo.lock"

export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" PYO3_PYTHON="$VENV/bin/python"
(cd "$SRC" && maturin build --release --interpreter "$VENV/bin/python" --out "$DIR/dist")
WHEEL="$(ls -t "$DIR"/dist/crnas-*.whl | head -n 1)"
echo "wheel: $WHEEL"

if [ "$TEST" = 1 ]; then
  grep -vE '^(torch|torchvision)==' "$SRC/requirements/dev.txt" > "$DIR/requirements-test.txt"
  python -m pip install --quiet -r "$DIR/requirements-test.txt"
  python -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
  # mmcv and detectron2 built against this torch (wheels cached per torch release), timm's model tests
  DETECTRON2_TARBALL="$(cd "$ROOT/.." && pwd)/shared/vendor/detectron2-02b5c4e.tar.gz" PYTHON=python "$SRC/scripts/install-frameworks.sh"
  PYTHON=python "$SRC/scripts/fetch-timm-tests.sh" >/dev/null
  (cd "$SRC" && python -m pytest tests)
fi
