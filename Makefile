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

.PHONY: demo test venvs reference-models clean chromium

# Each venv: its own requirements (read from pyproject.toml) first, then the project itself, editable, without
# dependencies. `make test` builds the four venvs and chromium in parallel (make -j4); the requirements installs
# run side by side (pip's cache is safe to share), the editable installs one at a time (`flock pyproject.toml`):
# each builds the project in this tree (edgecnn.egg-info), which two builds must not write at once.
REQS = $(PYTHON) -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	print("\n".join(p["dependencies"] + [r for e in sys.argv[1:] for r in p["optional-dependencies"][e]]))'
ONE_BUILD_AT_A_TIME := $(if $(shell command -v flock),flock pyproject.toml,)

$(VENV)/.installed: pyproject.toml tools/robustness/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REQS) train dev car > $(VENV)/requirements.txt
	$(VENV)/bin/python -m pip install --quiet -r $(VENV)/requirements.txt
	$(ONE_BUILD_AT_A_TIME) $(VENV)/bin/python -m pip install --quiet --no-deps -e .
	# the robustness campaign (`edgecnn robustness`), a developer tool kept out of the device package
	$(VENV)/bin/python -m pip install --quiet --no-deps -e tools/robustness
	touch $@

$(DEVICE_VENV)/.installed: pyproject.toml
	test -x $(DEVICE_VENV)/bin/python || $(PYTHON) -m venv $(DEVICE_VENV)
	$(DEVICE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REQS) device car > $(DEVICE_VENV)/requirements.txt
	$(DEVICE_VENV)/bin/python -m pip install --quiet -r $(DEVICE_VENV)/requirements.txt
	$(ONE_BUILD_AT_A_TIME) $(DEVICE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(LEGACY_VENV)/.installed: pyproject.toml
	test -x $(LEGACY_VENV)/bin/python || $(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REQS) legacy > $(LEGACY_VENV)/requirements.txt
	$(LEGACY_VENV)/bin/python -m pip install --quiet -r $(LEGACY_VENV)/requirements.txt
	$(ONE_BUILD_AT_A_TIME) $(LEGACY_VENV)/bin/python -m pip install --quiet --no-deps -e .
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

# Everything the tests need, built in parallel.
venvs: $(VENV)/.installed $(DEVICE_VENV)/.installed $(LEGACY_VENV)/.installed $(DONKEY_VENV)/.installed chromium

# Two workers; each test file stays on one worker (its module fixtures are built once), the longest files first
# (the order is in tests/conftest.py; --no-loadscope-reorder keeps it instead of xdist's "most tests first").
test:
	$(MAKE) --no-print-directory -j4 --output-sync=target venvs
	EDGECNN_DEVICE_PYTHON=$(CURDIR)/$(DEVICE_VENV)/bin/python EDGECNN_LEGACY_PYTHON=$(CURDIR)/$(LEGACY_VENV)/bin/python \
		$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# Rebuild the shipped reference bundles (firmware_models/) and their calibration sets (calibration/).
reference-models: $(VENV)/.installed
	$(VENV)/bin/edgecnn pipeline --config examples/reference_classify.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-classify firmware_models/shapes_compact calibration/shapes64-v1
	$(VENV)/bin/edgecnn pipeline --config examples/reference_steer.toml
	$(VENV)/bin/python -m edgecnn.pipeline.publish runs/reference-steer firmware_models/roads_pilotnet calibration/roads200x66-v1

clean:
	rm -rf $(VENV) $(DEVICE_VENV) $(LEGACY_VENV) $(DONKEY_VENV) runs .pytest_cache
