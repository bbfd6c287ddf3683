# nestgrad: set-up, build, demo and tests. Every target installs what it needs, so a fresh clone needs only
#   make demo    (set-up, then train the sine-wave task with eprop_iaf_psc_exp)
#   make test    (set-up, then the whole test suite)
# A second run rebuilds nothing that did not change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
BUILD := build
SYSTEM_PACKAGES := build-essential cmake pkg-config binutils libltdl-dev libboost-dev libgsl-dev
MODULE := python/nestgrad/lib/nestgradmodule.so

.PHONY: all setup system venv module demo test lint bench clean

all: setup

setup: module $(STAMPS)/editable

# System packages: installed only when one is missing (needs root, as on CI and the dev machines).
system: $(STAMPS)/system
$(STAMPS)/system:
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# The virtual environment with the pinned dependencies; redone when requirements.txt changes.
venv: $(STAMPS)/venv
$(STAMPS)/venv: requirements.txt | $(STAMPS)/system
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

# The NEST module: CMake generates the NESTML models' C++ and compiles everything into one module.
module: $(STAMPS)/venv
	@cmake -S . -B $(BUILD) -DPython_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=Release > $(BUILD).log 2>&1 \
	  && cmake --build $(BUILD) -j 2 >> $(BUILD).log 2>&1 && cmake --install $(BUILD) >> $(BUILD).log 2>&1 \
	  || { cat $(BUILD).log; echo "Building nestgradmodule failed (log: $(BUILD).log)"; exit 1; }
	@echo "nestgradmodule is up to date: $(MODULE)"

$(STAMPS)/editable: pyproject.toml $(STAMPS)/venv
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

demo: setup
	$(VENV)/bin/nestgrad train python/nestgrad/configs/sine_eprop_iaf_psc_exp.toml --out out/demo --overwrite

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check python tests scaling_runs
	$(VENV)/bin/ruff format --check python tests scaling_runs

bench: setup
	$(PY) scaling_runs/bench_iteration_time.py

clean:
	rm -rf $(BUILD) $(BUILD).log $(STAMPS) python/nestgrad/lib out
