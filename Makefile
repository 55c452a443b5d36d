# Two commands on a fresh machine: `make demo` and `make test`.
#   .venv         the workstation environment: edgecnn[train,dev] (TensorFlow, LiteRT, OpenCV, pytest)
#   .venv-device  what a Raspberry Pi installs: edgecnn[device] only, no TensorFlow; the tests prove the device
#                 commands run there.
PYTHON ?= python3
VENV := .venv
DEVICE_VENV := .venv-device

.PHONY: demo test reference-models clean

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

# Rebuild the shipped reference bundles (firmware_models/) and their calibration sets (calibration/).
reference-models: $(VENV)/.installed
	$(VENV)/bin/edgecnn pipeline --config examples/reference_classify.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-classify firmware_models/shapes_compact calibration/shapes64-v1
	$(VENV)/bin/edgecnn pipeline --config examples/reference_steer.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-steer firmware_models/roads_pilotnet calibration/roads200x66-v1

clean:
	rm -rf $(VENV) $(DEVICE_VENV) runs .pytest_cache
