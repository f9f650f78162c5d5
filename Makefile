# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv/.
# .venv/ is ROS 2 Kilted with everything (training included); .venv-jazzy/ is ROS 2 Jazzy with the
# runtime only and no torch, where `make test` runs test/ a second time.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INTERFACES_STAMP := $(VENV)/.interfaces
JAZZY_VENV ?= .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.installed
PYTHON ?= python3

# Keep DDS on the loopback with a domain of our own (real robots keep their own settings); the
# Jazzy run gets another domain, so its nodes never meet the Kilted run's.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 73
JAZZY_DOMAIN_ID ?= 74
export PYTHONUNBUFFERED := 1

# vision_msgs' LabelInfo and VisionClass, built into each venv from interfaces/.
INTERFACE_SOURCES := scripts/build_interfaces.sh $(wildcard interfaces/*.cmake \
	interfaces/*/package.xml interfaces/*/CMakeLists.txt interfaces/*/msg/*.msg)

.PHONY: setup setup-jazzy demo test lint bench clean

setup: $(STAMP) $(INTERFACES_STAMP)

$(STAMP): requirements.txt setup.py training/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e . -e training
	touch $(VENV)/COLCON_IGNORE $@   # colcon must not crawl the venv

$(INTERFACES_STAMP): $(STAMP) requirements-interfaces.txt $(INTERFACE_SOURCES)
	$(PY) -m pip install -r requirements-interfaces.txt
	bash scripts/build_interfaces.sh $(VENV)
	touch $@

setup-jazzy: $(JAZZY_STAMP)

$(JAZZY_STAMP): requirements-jazzy.txt setup.py $(INTERFACE_SOURCES)
	test -x $(JAZZY_PY) || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install -q --upgrade pip setuptools wheel
	$(JAZZY_PY) -m pip install -r requirements-jazzy.txt
	$(JAZZY_PY) -m pip install --no-deps -e .
	bash scripts/build_interfaces.sh $(JAZZY_VENV)
	touch $(JAZZY_VENV)/COLCON_IGNORE $@

demo: setup
	bash scripts/demo.sh

lint: setup
	$(VENV)/bin/ruff check .

# The runtime's tests (test/) run on Kilted and again on Jazzy, where torch is not installed.
test: setup setup-jazzy lint
	$(PY) -m pytest -q test training/tests
	@! $(JAZZY_PY) -c 'import torch' 2>/dev/null || { \
		echo '$(JAZZY_VENV) has torch: the runtime tests must run without it' >&2; exit 1; }
	ROS_DOMAIN_ID=$(JAZZY_DOMAIN_ID) $(JAZZY_PY) -m pytest -q test

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf build install log runs reports data
