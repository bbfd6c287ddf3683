# nestgrad: set-up, build, demo and tests. Every target installs what it needs, so a fresh clone needs only
#   make demo    (set-up, then train the sine-wave task with eprop_iaf_psc_exp)
#   make test    (set-up, then the whole test suite, including the MPI tests)
#   make mpi     (NEST 3.10 with MPI, built once from source and cached, in .venv-mpi, with our module)
# A second run rebuilds nothing that did not change.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MPI_VENV := .venv-mpi
MPI_PY := $(MPI_VENV)/bin/python
STAMPS := .stamps
NEST_VERSION := 3.10.0
SYSTEM_PACKAGES := build-essential cmake pkg-config binutils libltdl-dev libboost-dev libgsl-dev
MPI_PACKAGES := libopenmpi-dev openmpi-bin
# NEST with MPI takes ~20 minutes to compile: the wheel is cached outside the repository, keyed by versions.
CACHE_DIR ?= $(HOME)/.cache/nestgrad
PY_TAG = $(shell $(PYTHON) -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
MPI_TAG = $(shell dpkg-query -W -f='$${Version}' libopenmpi-dev 2>/dev/null | cut -d- -f1)
WHEELHOUSE = $(CACHE_DIR)/wheels/nest-$(NEST_VERSION)-mpi-openmpi$(MPI_TAG)-$(PY_TAG)

.PHONY: all setup system venv test-deps module demo test test-serial lint bench bench-event bench-nestml bench-v1 mpi clean

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
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

# The NEST module: CMake generates the NESTML models' C++ and compiles everything into one module.
module: $(STAMPS)/venv
	@cmake -S . -B build -DPython_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 \
	  && cmake --build build -j 2 >> build.log 2>&1 && cmake --install build >> build.log 2>&1 \
	  || { cat build.log; echo "Building nestgradmodule failed (log: build.log)"; exit 1; }
	@echo "nestgradmodule is up to date (NEST wheel)"

# Test-only dependencies (hypothesis, import-linter, bmtk, ...), pinned in requirements-test.txt.
test-deps: $(STAMPS)/test-deps
$(STAMPS)/test-deps: requirements-test.txt $(STAMPS)/venv
	$(PY) -m pip install -q -r requirements-test.txt
	@touch $@

$(STAMPS)/editable: pyproject.toml $(STAMPS)/venv
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# --- NEST with MPI ----------------------------------------------------------------------------------------------
$(STAMPS)/system-mpi: | $(STAMPS)/system
	@missing=$$(for p in $(MPI_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

mpi: $(STAMPS)/mpi-venv
	@cmake -S . -B build-mpi -DPython_EXECUTABLE=$(abspath $(MPI_PY)) -DCMAKE_BUILD_TYPE=Release > build-mpi.log 2>&1 \
	  && cmake --build build-mpi -j 2 >> build-mpi.log 2>&1 && cmake --install build-mpi >> build-mpi.log 2>&1 \
	  || { cat build-mpi.log; echo "Building nestgradmodule for NEST with MPI failed (log: build-mpi.log)"; exit 1; }
	@echo "nestgradmodule is up to date (NEST with MPI, $(MPI_VENV))"

$(STAMPS)/mpi-venv: requirements.txt | $(STAMPS)/system-mpi
	@$(MAKE) --no-print-directory mpi-wheel
	@test -x $(MPI_PY) || $(PYTHON) -m venv $(MPI_VENV)
	$(MPI_PY) -m pip install -q $$(ls $(WHEELHOUSE)/nest_simulator-*.whl)
	grep -v '^nest-simulator' requirements.txt > $(STAMPS)/requirements-mpi.txt
	$(MPI_PY) -m pip install -q -r $(STAMPS)/requirements-mpi.txt mpi4py==4.1.2
	$(MPI_PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

mpi-wheel: $(STAMPS)/system-mpi
	@if ls $(WHEELHOUSE)/nest_simulator-*.whl >/dev/null 2>&1; then \
	  echo "NEST $(NEST_VERSION) with MPI: cached wheel in $(WHEELHOUSE)"; \
	else \
	  echo "Building NEST $(NEST_VERSION) with MPI from source (about 20 minutes; cached in $(WHEELHOUSE))"; \
	  rm -rf $(WHEELHOUSE).tmp && mkdir -p $(WHEELHOUSE).tmp && \
	  $(PYTHON) -m venv $(WHEELHOUSE).tmp/venv && \
	  CMAKE_BUILD_PARALLEL_LEVEL=2 $(WHEELHOUSE).tmp/venv/bin/pip wheel -q --no-deps -w $(WHEELHOUSE).tmp \
	    -C cmake.define.with-mpi=ON nest-simulator==$(NEST_VERSION) --no-binary nest-simulator && \
	  mkdir -p $(WHEELHOUSE) && mv $(WHEELHOUSE).tmp/nest_simulator-*.whl $(WHEELHOUSE)/ && rm -rf $(WHEELHOUSE).tmp; \
	fi

# --- running --------------------------------------------------------------------------------------------------
demo: setup
	$(VENV)/bin/nestgrad train python/nestgrad/configs/sine_eprop_iaf_psc_exp.toml --out out/demo --overwrite

test: setup test-deps mpi
	$(PY) -m pytest -q tests

test-serial: setup test-deps
	NESTGRAD_SKIP_MPI=1 $(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check python tests scaling_runs cmake
	$(VENV)/bin/ruff format --check python tests scaling_runs cmake

bench: setup
	$(PY) scaling_runs/bench_iteration_time.py

# Event-driven e-prop vs NEST's eprop_synapse vs static twin (and PyTorch BPTT if torch is installed): ~45 minutes
bench-event: setup
	$(PY) scaling_runs/bench_event_synapse.py --torch

# NESTML-generated e-prop neurons vs NEST's built-in twins (time per training iteration, ratio)
bench-nestml: setup
	$(PY) scaling_runs/bench_nestml_eprop.py

bench-v1: setup
	$(PY) scaling_runs/bench_v1.py

clean:
	rm -rf build build-mpi build.log build-mpi.log $(STAMPS) python/nestgrad/lib out
