# ChaosMining Explorer. `make run` starts the app, `make test` runs the whole suite; both create the
# virtual environment .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# `make run` serves this machine only; `make run HOST=0.0.0.0` serves the network (read README: what the sandbox protects).
HOST ?= 127.0.0.1

.PHONY: run test setup setup-test chromium datasets compiler lint format bench clean-cache

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-runtime
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed-runtime

setup-test: $(VENV)/.installed-dev

# Debian's Chromium renders PNG/SVG exports (Kaleido) and runs the browser tests.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "note: chromium is missing and cannot be installed without root (apt-get install chromium)"; fi

# Debian's dataset-fashion-mnist (MIT, 31 MB): the Vision page's Fashion-MNIST foreground works without a data root.
datasets:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's dataset-fashion-mnist..."; \
		(apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null)) || \
		echo "note: dataset-fashion-mnist could not be installed (the Fashion-MNIST foreground then needs a data root)"; \
	else echo "note: Fashion-MNIST needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or a data root"; fi

# A C compiler builds the CPU training step of the MLPs (chaosmining/native); without one, PyTorch's operators train.
compiler:
	@if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's gcc..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null) || \
		echo "note: gcc could not be installed (the MLPs then train in PyTorch's operators, about 1.7x slower)"; \
	else echo "note: no C compiler (apt-get install gcc): the MLPs train in PyTorch's operators, about 1.7x slower"; fi

run: setup
	@$(MAKE) --no-print-directory chromium || echo "note: continuing without chromium (PNG/SVG export disabled)"
	@$(MAKE) --no-print-directory datasets || true
	@$(MAKE) --no-print-directory compiler || true
	$(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

test: setup-test chromium datasets compiler
	CHAOSMINING_REQUIRE_BROWSER=1 $(PY) -m pytest

lint: setup-test
	$(VENV)/bin/ruff check chaosmining ui pages app.py tests bench
	$(VENV)/bin/ruff format --check chaosmining ui pages app.py tests bench

format: setup-test
	$(VENV)/bin/ruff format chaosmining ui pages app.py tests bench
	$(VENV)/bin/ruff check --fix chaosmining ui pages app.py tests bench

bench: setup
	$(PY) bench/run_all.py

clean-cache:
	rm -rf cache/*/
