# Two commands for a new user:  `make demo`  (runtime install + main job)  and  `make test`
# (adds the test extra: pytest, hypothesis, ruff, import-linter, ray, optuna... + the tests).
# torch comes first, by default the CPU build (TORCH_INDEX, an extra index that pip prefers for
# its +cpu wheels), so pip never resolves a multi-GB CUDA wheel. Choose another build with
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128   # CUDA 12.8
#   make demo TORCH_INDEX=                                          # whatever plain PyPI gives
#   make demo TORCH='torch==2.13.0'                                 # another torch version
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install install-test demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# the runtime only: what analyze/verify/train/experiment/report need
$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) '$(TORCH)'
	$(BIN)/pip install -q -e .
	touch $@

# the test extra on top (pyproject.toml: [project.optional-dependencies] test)
$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.runtime

install-test: $(VENV)/.test

demo: install
	$(BIN)/cnnlab demo

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

bench: install-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
