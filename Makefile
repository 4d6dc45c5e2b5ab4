# The two set-up commands of the README, `make demo` and `make test`, and `make test-all`.
# Each creates (or reuses) the virtual environment .venv and installs ganrl into it.
PYTHON ?= python3
VENV ?= .venv
# cpu or gpu: which TensorFlow build the environment gets (see README).
TF_BUILD ?= cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ganrl-installed-$(TF_BUILD)
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: venv demo test test-all lint

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(TF_BUILD),test]"
	touch $(STAMP)

demo: venv
	PYTHON=$(PY) ./demo.sh

# The fast tier: every test but the slow ones (learning tests and end-to-end script runs,
# marked `slow`, see pytest.ini).
test: venv
	$(PY) -m pytest -q -m "not slow" tests

# Every test (what CI runs).
test-all: venv
	$(PY) -m pytest -q tests

# Formatting and lint (ruff.toml): what CI checks before the tests.
lint: venv
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
