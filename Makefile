# make test  - create/refresh .venv, build the native core, install the detection frameworks the
#              integration tests run against (built once, wheels cached outside the repository), run
#              cargo and Python tests
# make demo  - same set-up, then the main job (the search) on the built-in synthetic dataset
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv

export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(VIRTUAL_ENV)/bin:$(PATH)
# torch-sys needs the venv's torch; pyo3 must see the same interpreter for maturin and cargo
# (otherwise the pyo3 crates rebuild every time the two alternate).
export PYO3_PYTHON := $(VIRTUAL_ENV)/bin/python
export PYO3_ENVIRONMENT_SIGNATURE := $(shell $(PYTHON) -c 'import sys; print(f"cpython-{sys.version_info[0]}.{sys.version_info[1]}-64bit")')

STAMP := $(VENV)/.deps-installed
FRAMEWORKS_STAMP := $(VENV)/.frameworks-installed

.PHONY: venv frameworks build test test-rust test-python demo bench lint wheel check-packaging clean

$(STAMP): requirements/dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements/dev.txt
	touch $@

venv: $(STAMP)

# mmcv with its CPU ops and detectron2 (C++ extensions against the venv's torch; the first build takes
# long, later ones reuse the wheels in ~/.cache/crnas/wheels), and timm's own model tests.
$(FRAMEWORKS_STAMP): $(STAMP) scripts/install-frameworks.sh scripts/fetch-timm-tests.sh
	PYTHON=$(VENV)/bin/python scripts/install-frameworks.sh
	PYTHON=$(VENV)/bin/python scripts/fetch-timm-tests.sh
	touch $@

frameworks: $(FRAMEWORKS_STAMP)

build: venv
	maturin develop --release

test-rust: build
	cargo test --release

test-python: build frameworks
	python -m pytest

test: test-rust test-python

# The main job: the hierarchical search (demo preset) on the built-in synthetic data; re-running
# `make demo` continues / reuses runs/demo.
DEMO_DIR ?= runs/demo
demo: build
	python -m crnas search --synthetic --family resnet50 --preset demo --out $(DEMO_DIR) --resume
	python -m crnas plot $(DEMO_DIR)
	@echo "result: $(DEMO_DIR)/result.json, log: $(DEMO_DIR)/search.log, figures: $(DEMO_DIR)/figures/"

bench: build
	python benches/bench_multi_dilation.py

# The native stubs against the binary, the package's types ([tool.mypy] in pyproject.toml), Python
# style, Rust lints.
lint: build
	python -m mypy.stubtest crnas._core
	python -m mypy
	ruff check python tests benches scripts
	cargo clippy --release --all-targets -- -D warnings

wheel: venv
	maturin build --release --out dist

# Fresh-venv installs of the wheel and of `pip install --no-build-isolation .` (about 5 GB under build/).
check-packaging: venv
	scripts/check-packaging.sh

clean:
	rm -rf target dist python/crnas/_core*.so
