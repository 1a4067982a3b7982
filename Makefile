# `make run` and `make test` work on a fresh machine: each creates .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# Test files run in parallel (pytest-xdist): most end-to-end time is waiting on real clocks.
JOBS   ?= 4
STAMP   = $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# glibc keeps freed decode buffers instead of returning them per request (PERF_NOTES: 2-3x on ingest).
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824

.PHONY: run test bench demo clean

# setup.py and the C sources: a change rebuilds the compiled span path (collector/receiver/spanwire).
$(STAMP): pyproject.toml setup.py $(wildcard collector/receiver/spanwire/*.c collector/receiver/spanwire/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(VENV)/bin/tocsin serve --config tocsin.yaml

test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(JOBS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

demo: $(STAMP)
	$(VENV)/bin/tocsin demo

clean:
	rm -rf $(VENV) data .pytest_cache
