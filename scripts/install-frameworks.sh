#!/usr/bin/env bash
# Install the detection frameworks that tests/integrations run against into the active Python
# (make test calls it): mmcv with its ops compiled for the CPU (PyPI sdist; mmdet 3.3 needs mmcv < 2.2)
# and detectron2 (no wheels on PyPI; built from the tarball in ../shared/vendor, see its README.md).
#
# Both are C++ extensions built against the installed torch, so their wheels are kept in a cache
# outside the repository, one directory per torch release and Python version, and built only once:
#   ${CRNAS_WHEEL_CACHE:-~/.cache/crnas/wheels}/torch-<version>-cp<XY>/
# (not in pip's own wheel cache, which is keyed by the sdist alone and would hand a wheel built against
# another torch back).
# Their runtime dependencies are pinned in requirements/dev.txt: the wheels are installed with
# --no-index, so a dependency missing there fails the install instead of pulling an unpinned one.
# Build parallelism: MAX_JOBS (torch.utils.cpp_extension's variable; ninja from requirements/dev.txt).
# The extensions are compiled without debug information (-g0 after Python's -g): faster, smaller wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
MMCV_VERSION=2.1.0
DETECTRON2_TARBALL=${DETECTRON2_TARBALL:-../shared/vendor/detectron2-02b5c4e.tar.gz}

[[ -f $DETECTRON2_TARBALL ]] || { echo "install-frameworks: $DETECTRON2_TARBALL: no such file (detectron2's source tarball, see ../shared/vendor/README.md)" >&2; exit 1; }
# the commit in the tarball's name becomes the wheel's local version: 0.6+02b5c4e
d2_commit=$(basename "$DETECTRON2_TARBALL" .tar.gz)
d2_commit=${d2_commit#detectron2-}
d2_version=$(tar -xzOf "$DETECTRON2_TARBALL" detectron2/detectron2/__init__.py | sed -n 's/^__version__ = "\(.*\)"/\1/p')+$d2_commit

tag=$("$PYTHON" -c 'import sys, torch; print(f"torch-{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}")')
wheels=${CRNAS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crnas/wheels}/$tag
mkdir -p "$wheels"
export CFLAGS="${CFLAGS:+$CFLAGS }-g0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_wheel() { compgen -G "$wheels/$1-*.whl" >/dev/null; }

if ! have_wheel "mmcv-$MMCV_VERSION"; then
    echo "install-frameworks: building mmcv $MMCV_VERSION with CPU ops for $tag (once; cached in $wheels)"
    # --no-build-isolation: the build needs the installed torch; its setup.py imports pkg_resources (setuptools < 81,
    # pinned in requirements/dev.txt)
    MMCV_WITH_OPS=1 FORCE_CUDA=0 "$PYTHON" -m pip wheel --no-deps --no-build-isolation --no-cache-dir \
        --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$tmp/mmcv"
    mv "$tmp"/mmcv/mmcv-*.whl "$wheels/"
fi
if ! have_wheel "detectron2-$d2_version"; then
    echo "install-frameworks: building detectron2 $d2_version for $tag (once; cached in $wheels)"
    D2_VERSION_SUFFIX="+$d2_commit" FORCE_CUDA=0 "$PYTHON" -m pip wheel --no-deps --no-build-isolation --no-cache-dir \
        "$DETECTRON2_TARBALL" -w "$tmp/detectron2"
    mv "$tmp"/detectron2/detectron2-*.whl "$wheels/"
fi

# mmcv-lite (an older requirements/dev.txt) ships the same `mmcv` package without the ops
if "$PYTHON" -m pip show --quiet mmcv-lite 2>/dev/null; then
    "$PYTHON" -m pip uninstall --quiet --yes mmcv-lite
fi
# forced: an installed mmcv/detectron2 of the same version may have been built against another torch
"$PYTHON" -m pip install --quiet --no-index --find-links "$wheels" --no-deps --force-reinstall \
    "mmcv==$MMCV_VERSION" "detectron2==$d2_version"
# and their dependencies must already be there (requirements/dev.txt): with --no-index, a missing one fails
"$PYTHON" -m pip install --quiet --no-index --find-links "$wheels" "mmcv==$MMCV_VERSION" "detectron2==$d2_version"
"$PYTHON" -c 'import mmcv.ops, detectron2._C, mmdet.models'
