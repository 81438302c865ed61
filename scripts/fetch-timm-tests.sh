#!/usr/bin/env bash
# Print the directory holding timm's own model tests (tests/test_models.py and its conftest.py) for the
# installed timm release, fetching them once from that release's sdist on PyPI (`pip download`) into
#   ${CRNAS_CACHE:-~/.cache/crnas}/timm-tests/<version>/
# tests/integrations/test_timm_suite.py runs them against the models crnas registers; make test fetches
# them ahead (so the tests need no network).
set -euo pipefail

PYTHON=${PYTHON:-python}
version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("timm"))')
dest=${CRNAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crnas}/timm-tests/$version
if [[ ! -f $dest/test_models.py ]]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "timm==$version" -d "$tmp" >&2
    tar -xzf "$tmp/timm-$version.tar.gz" -C "$tmp" "timm-$version/tests/test_models.py" "timm-$version/tests/conftest.py"
    mkdir -p "$dest"
    mv "$tmp/timm-$version/tests/conftest.py" "$tmp/timm-$version/tests/test_models.py" "$dest/"
fi
echo "$dest"
