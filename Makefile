# Two commands on a fresh machine: `make demo` and `make test`.
#   .venv         the workstation environment: edgecnn[train,dev] (TensorFlow, LiteRT, OpenCV, pytest)
#   .venv-device  what a Raspberry Pi installs: edgecnn[device,car] only, no TensorFlow; the tests prove the device
#                 commands run there.
#   .venv-legacy  the legacy fallback: edgecnn[legacy] (tflite-runtime 2.14, numpy < 2, no ai-edge-litert, no
#                 TensorFlow); the tests prove classify/inspect/benchmark/steer run there.
#   .venv-donkey  donkeycar 5.3.0 in its own venv (numpy < 2): the tests read our tubs with donkeycar's own Tub.
#   /usr/bin/chromium  Debian's browser, driven by Playwright in the live page test (installed when root).
PYTHON ?= python3
VENV := .venv
DEVICE_VENV := .venv-device
LEGACY_VENV := .venv-legacy
DONKEY_VENV := .venv-donkey

.PHONY: demo test reference-models clean chromium

$(VENV)/.installed: pyproject.toml tools/robustness/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[train,dev,car]"
	# the robustness campaign (`edgecnn robustness`), a developer tool kept out of the device package
	$(VENV)/bin/python -m pip install --quiet --no-deps -e tools/robustness
	touch $@

$(DEVICE_VENV)/.installed: pyproject.toml
	test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEVICE_VENV)/bin/python -m pip install --quiet -e ".[device,car]"
	touch $@

$(LEGACY_VENV)/.installed: pyproject.toml
	test -x $(LEGACY_VENV)/bin/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LEGACY_VENV)/bin/python -m pip install --quiet -e ".[legacy]"
	touch $@

$(DONKEY_VENV)/.installed:
	test -x $(DONKEY_VENV)/bin/python || $(PYTHON) -m venv $(DONKEY_VENV)
	$(DONKEY_VENV)/bin/python -m pip install --quiet donkeycar==5.3.0 tflite-runtime "numpy<2" \
		opencv-python-headless typing_extensions
	touch $@

# Playwright cannot download its own browser here; the system's chromium is what the test drives.
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || \
		echo "no /usr/bin/chromium and not root: the live page browser test will be skipped"

demo: $(VENV)/.installed
	$(VENV)/bin/edgecnn pipeline --config examples/demo_classify.toml
	$(VENV)/bin/edgecnn pipeline --config examples/demo_steer.toml

test: $(VENV)/.installed $(DEVICE_VENV)/.installed $(LEGACY_VENV)/.installed $(DONKEY_VENV)/.installed chromium
	EDGECNN_DEVICE_PYTHON=$(CURDIR)/$(DEVICE_VENV)/bin/python EDGECNN_LEGACY_PYTHON=$(CURDIR)/$(LEGACY_VENV)/bin/python \
		$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

# Rebuild the shipped reference bundles (firmware_models/) and their calibration sets (calibration/).
reference-models: $(VENV)/.installed
	$(VENV)/bin/edgecnn pipeline --config examples/reference_classify.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-classify firmware_models/shapes_compact calibration/shapes64-v1
	$(VENV)/bin/edgecnn pipeline --config examples/reference_steer.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-steer firmware_models/roads_pilotnet calibration/roads200x66-v1

clean:
	rm -rf $(VENV) $(DEVICE_VENV) $(LEGACY_VENV) $(DONKEY_VENV) runs .pytest_cache
