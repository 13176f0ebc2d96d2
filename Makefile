# kubeha — see README.md. `make demo` sets up and runs the main job; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Slow artefacts (Kubernetes, images, guest trees) live outside any clone, keyed by their inputs.
export KUBEHA_CACHE ?= $(shell if [ "$$(id -u)" -eq 0 ]; then echo /var/cache/kubeha; else echo "$${XDG_CACHE_HOME:-$$HOME/.cache}/kubeha"; fi)
PYTEST_ARGS ?=

.PHONY: help setup deps k8s demo dist test test-fast test-e2e lint golden bench bench-cluster clean

help:
	@echo "make demo       set up the virtualenv and generate user-data for examples/ into out/"
	@echo "make test       every test, real consumers included (needs root; installs Debian packages)"
	@echo "make test-fast  the quick unit/golden/CLI tests only"
	@echo "make lint       ruff + mypy"
	@echo "make golden     rewrite tests/cases/*/expected (review the diff!)"
	@echo "make bench      print the benchmark figures (bench-cluster: failover on real Kubernetes)"
	@echo "make k8s        build Kubernetes, etcd, containerd, ... from k8s/lock.json into the cache (once)"
	@echo "make dist       build the sdist and wheel into dist/ (python -m build)"

# kubeha alone (what `make demo` needs); setup adds the dev extras (tests, linters, ansible-core the oracle).
$(VENV)/.kubeha: pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/install-deps.sh --minimal
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.kubeha
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

deps:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make deps: run as root (apt-get install)"; exit 1; fi
	scripts/install-deps.sh

demo: $(VENV)/.kubeha
	$(VENV)/bin/kubeha check examples/cluster.yaml
	$(VENV)/bin/kubeha gen userdata examples/cluster.yaml -o out/cluster
	$(VENV)/bin/kubeha gen userdata examples/seed-hosts.ini -o out/seed

dist: setup
	rm -rf dist
	$(PY) -m build --outdir dist .

# Kubernetes from Go modules (k8s/build.py): a no-op when the cache already holds what the lock names.
k8s:
	PATH="$$PATH:/usr/local/go/bin" python3 k8s/build.py build

test: deps setup k8s
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-e2e: deps setup k8s
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check generator tests bench k8s
	$(VENV)/bin/mypy

golden: setup
	$(PY) -m pytest tests/test_golden.py --update-golden

bench: setup
	$(PY) bench/gen.py
	if [ -d /dev/shm ]; then $(PY) bench/gen.py --dir /dev/shm; fi
	$(PY) bench/images.py
	$(PY) bench/bundle.py
	$(PY) bench/failover.py --runtime containerd
	$(PY) bench/track_process.py

bench-cluster: deps setup k8s
	$(PY) bench/cluster_failover.py

clean:
	rm -rf out dist build bundles/out .pytest_cache .mypy_cache .ruff_cache
