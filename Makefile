# `make run` and `make test` work on a fresh machine: each creates .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# Test files run in parallel (pytest-xdist): most end-to-end time is waiting on real clocks.
JOBS   ?= 4
HASH    = $(shell cksum < pyproject.toml | cut -d' ' -f1)
# `make run` installs Tocsin only; `make test` adds the test extras (which also satisfy run).
STAMP_RUN  = $(VENV)/.installed-run-$(HASH)
STAMP_TEST = $(VENV)/.installed-test-$(HASH)
# glibc keeps freed decode buffers instead of returning them per request (docs/performance-notes.md: 2-3x on ingest).
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824

.PHONY: run test bench demo clean

# setup.py and the C sources: a change rebuilds the compiled span path (collector/receiver/spanwire).
SOURCES = pyproject.toml setup.py $(wildcard collector/receiver/spanwire/*.c collector/receiver/spanwire/*.h)

$(STAMP_RUN): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	rm -f $(VENV)/.installed-run-*; touch $(STAMP_RUN)

$(STAMP_TEST): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $(STAMP_TEST) $(STAMP_RUN)

run: $(STAMP_RUN)
	mkdir -p data
	$(VENV)/bin/tocsin serve --config tocsin.yaml

# Tests that measure a latency or a takeover time against a bound (marker `serial`) run after
# the parallel part, one at a time, so that the rest of the suite does not load the machine
# under them. Exit status 5 is pytest's "no test selected" (e.g. PYTEST_ARGS picks one file).
test: $(STAMP_TEST)
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(JOBS) --dist loadgroup -m "not serial" $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: $(STAMP_TEST)
	$(PY) -m bench

demo: $(STAMP_RUN)
	$(VENV)/bin/tocsin demo

clean:
	rm -rf $(VENV) data .pytest_cache
