# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv/.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Keep DDS on the loopback with a domain of our own (real robots keep their own settings).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 73
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py training/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e . -e training
	touch $(VENV)/COLCON_IGNORE $@   # colcon must not crawl the venv

demo: setup
	bash scripts/demo.sh

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest -q test

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf build install log runs reports data
