# tricklab: the targets the README names. `make up` and `make test` install on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
# Extra wheel index for torch, e.g. https://download.pytorch.org/whl/cpu (CPU-only wheels)
TORCH_INDEX ?=
STAMP   := $(VENV)/.installed

.PHONY: up test test-fast lint fmt bench clean install browser

install: $(STAMP)

# torch first (pinned), then the package; pip finds torch satisfied and adds nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Options for `tricklab up`, e.g. make up UP_ARGS="--port 8001 --redis-port 6390"
UP_ARGS ?=
up: $(STAMP)
	@if [ -x $(BIN)/tricklab ] && $(BIN)/python -c "import tricklab.client.cli" 2>/dev/null; \
	  then exec $(BIN)/tricklab up $(UP_ARGS); else exec $(BIN)/python -m tricklab.client.up $(UP_ARGS); fi

test: $(STAMP) browser
	$(BIN)/pytest -q

# The dashboard test drives a real headless Chromium (Debian's chromium + chromium-driver).
# Installed here when missing and we may (root with apt-get); otherwise that test skips
# and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium + chromium-driver for the dashboard test"; \
	    apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } || \
	    echo "note: could not install chromium; the dashboard browser test will skip"; \
	  else echo "note: no chromium on PATH; the dashboard browser test will skip"; fi; }

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --follow-imports=silent api worker
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/preview.py
	$(BIN)/python bench/train_overhead.py
	$(BIN)/python bench/train_instructions.py
	$(BIN)/python bench/curves.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/api_load.py

clean:
	rm -rf var/artifacts .pytest_cache .ruff_cache .mypy_cache
