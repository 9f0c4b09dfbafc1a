# Every target creates .venv and installs the project when needed, so a fresh clone needs only
# Python 3.11+ and pip.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	scripts/run

test: $(STAMP)
	scripts/test

check: $(STAMP)
	scripts/check

bench: $(STAMP)
	scripts/bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
