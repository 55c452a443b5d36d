# Two commands on a fresh machine: `make demo` and `make test`.
#   .venv         the workstation environment: edgecnn[train,dev] (TensorFlow, LiteRT, OpenCV, pytest)
#   .venv-device  what a Raspberry Pi installs: edgecnn[device] only, no TensorFlow; the tests prove the device
#                 commands run there.
PYTHON ?= python3
VENV := .venv
DEVICE_VENV := .venv-device

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[train,dev]"
	touch $@

$(DEVICE_VENV)/.installed: pyproject.toml
	test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEVICE_VENV)/bin/python -m pip install --quiet -e ".[device]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/edgecnn pipeline --config examples/demo_classify.toml
	$(VENV)/bin/edgecnn pipeline --config examples/demo_steer.toml

test: $(VENV)/.installed $(DEVICE_VENV)/.installed
	EDGECNN_DEVICE_PYTHON=$(CURDIR)/$(DEVICE_VENV)/bin/python $(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEVICE_VENV) runs .pytest_cache
