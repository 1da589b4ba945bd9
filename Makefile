# make demo: the main job on its built-in default.  make test: the test suite.
# Both create .venv in the checkout and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CONSTRAINTS ?= constraints-cpu.txt
PIP := $(BIN)/python -m pip install --quiet $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS))
EXTRAS ?= dev,onnx,openvino,vision,search,ray

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# reinstall when the package's requirements change
$(VENV)/.installed-$(EXTRAS): pyproject.toml $(TORCH_CONSTRAINTS) | $(BIN)/python
	$(PIP) -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

demo: install
	$(BIN)/staircase demo

test: install
	$(BIN)/python -m pytest -q --durations=10

lint: install
	$(BIN)/ruff check staircase tests scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
