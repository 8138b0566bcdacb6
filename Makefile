# serlib: the two commands are `make report` and `make test`; both do all set-up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.serlib-installed
PARAMS ?= parameters/demo.yaml

.PHONY: setup report test lab browser clean-reports

# A fresh machine: create the venv, install serlib with pinned torch/torchaudio, register the kernel.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (serlib)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# The demo report: synthetic corpus (generated if missing), every notebook, reports/demo/report.html.
report: setup
	$(BIN)/serlib run $(PARAMS)

# Headless Chromium for the browser test of the exported report (Debian packages; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; }

test: setup browser
	$(BIN)/python -m pytest -q

lab: setup
	$(BIN)/jupyter lab notebooks/

clean-reports:
	rm -rf reports/demo reports/smoke
