# tricklab: the targets the README names. `make up` and `make test` install on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
# Extra wheel index for torch, e.g. https://download.pytorch.org/whl/cpu (CPU-only wheels)
TORCH_INDEX ?=
STAMP   := $(VENV)/.installed

.PHONY: up test test-fast lint fmt bench clean install

install: $(STAMP)

# torch first (pinned), then the package; pip finds torch satisfied and adds nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	@if [ -x $(BIN)/tricklab ] && $(BIN)/python -c "import tricklab.cli" 2>/dev/null; \
	  then exec $(BIN)/tricklab up; else exec $(BIN)/python -m tricklab.up; fi

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --follow-imports=silent api worker

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/e2e.py

clean:
	rm -rf var/artifacts .pytest_cache .ruff_cache .mypy_cache
