# make demo: the main job on its built-in default.  make test: the test suite.
# Both create .venv in the checkout and install what they need, at the exact versions of
# requirements.lock (make lock regenerates it from pyproject.toml's ranges).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_CONSTRAINTS ?= constraints-cpu.txt
PIP := $(BIN)/python -m pip install --quiet $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS))
EXTRAS ?= dev,onnx,openvino,vision,search,ray
LOCK := requirements.lock

.PHONY: install demo test lint lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# reinstall when the package's requirements or the lock change
$(VENV)/.installed-$(EXTRAS): pyproject.toml $(LOCK) $(TORCH_CONSTRAINTS) | $(BIN)/python
	$(PIP) -r $(LOCK)
	$(PIP) --no-deps -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip check
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

demo: install
	$(BIN)/staircase demo

test: install
	$(BIN)/python -m pytest -q --durations=10

lint: install
	$(BIN)/ruff check staircase tests scripts

# the newest versions pyproject.toml allows, installed in a scratch environment and frozen
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS)) -e ".[$(EXTRAS)]"
	{ sed -n '1,2p' $(LOCK); .lock-venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) runs .pytest_cache
