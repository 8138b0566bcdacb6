# serlib: the two commands are `make report` and `make test`; both do all set-up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.serlib-installed
PARAMS ?= parameters/demo.yaml
# A wheel index for torch/torchaudio, e.g. PyTorch's CPU-only one (about 3 GB less than the default CUDA
# build): make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu. Empty: the package index (PyPI).
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
# Optional extras of pyproject.toml, e.g. make setup EXTRAS=ray (Ray, for `serlib sweep --executor ray`). Their
# packages are pinned in requirements.lock with the rest but installed only when named here (or by `make test`).
EXTRAS ?=
OPTIONAL := ray
empty :=
space := $(empty) $(empty)
comma := ,
EXTRA_STAMPS := $(foreach extra,$(EXTRAS),$(VENV)/.serlib-extra-$(extra))

.PHONY: setup report test lint format lab browser clean-reports lock nbstrip mutation

# A fresh machine: create the venv, install torch/torchaudio (from TORCH_INDEX if given), then the tested
# set pinned in requirements.lock, then serlib itself; register the kernel the notebooks name.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make setup: $(PYTHON) is Python " + sys.version.split()[0] + "; requirements.lock (numpy 2.4, pandas 3) needs 3.11 or later: make setup PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.11.0 torchaudio==2.11.0 $(TORCH_FROM)
	grep -v -i -E '^($(subst $(space),|,$(OPTIONAL)))==' requirements.lock > $(VENV)/requirements.base.txt
	$(BIN)/python -m pip install -q -r $(VENV)/requirements.base.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (serlib)" >/dev/null
	touch $(STAMP)

# An optional extra: its packages at the versions requirements.lock pins (make setup EXTRAS=ray).
$(VENV)/.serlib-extra-%: $(STAMP) pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q -e '.[$*]' -c requirements.lock
	touch $@

# git stores the notebooks without outputs (.gitattributes): the clean filter, registered in this checkout.
nbstrip: setup
	-git config filter.serlib-nbstrip.clean "$(abspath $(BIN))/python -m serlib.tools.nbstrip"
	-git config filter.serlib-nbstrip.smudge cat

# Regenerate requirements.lock from a venv installed from pyproject.toml (run after changing dependencies).
lock:
	$(BIN)/python -m pip install -q -e '.[test,$(subst $(space),$(comma),$(OPTIONAL))]'
	{ sed -n '1,4p' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(nvidia-|cuda-|triton==|serlib)'; } > requirements.lock.new && mv requirements.lock.new requirements.lock

setup: $(STAMP) $(EXTRA_STAMPS)

# The demo report: synthetic corpus (generated if missing), every notebook, reports/demo/report.html.
report: setup
	$(BIN)/serlib run $(PARAMS)

# Headless Chromium for the browser test of the exported report (Debian packages; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; }

# The tests run the Ray sweep tests too, so `make test` installs the optional Ray extra (`make report` does not).
test: setup $(VENV)/.serlib-extra-ray browser
	$(BIN)/python -m pytest -q

# ruff (lint and format check, line length 120; pyproject.toml [tool.ruff]) and the import-linter layers contract, on
# their own (`make test` runs both through tests/test_layers.py, so they are not run twice there).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Mutation testing (mutmut, serlib/tools/mutation.py) of the statistics, verdicts, metrics, probe, baselines, folds,
# protocols, run key and configuration ranges, each against its fast tests; prints the score per module and fails
# under 90 % of the non-equivalent mutants. One worker, at low priority (MUTATION_JOBS=2 for two); a module or a
# few: make mutation MODULES="serlib/modelling/metrics.py". Its copy of the code is mutants/ (ignored by git).
MODULES ?=
MUTATION_JOBS ?= 1
mutation: setup
	MUTATION_JOBS=$(MUTATION_JOBS) nice -n 15 $(BIN)/python -m serlib.tools.mutation $(MODULES)

# Rewrites the code in the project's format and applies ruff's safe fixes (import order).
format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# JupyterLab on the notebooks; also registers a "serlib" kernel for the user's own JupyterLab.
lab: setup nbstrip
	$(BIN)/python -m ipykernel install --user --name serlib --display-name "serlib" >/dev/null
	$(BIN)/jupyter lab notebooks/

# Removes what a run wrote and can make again (the names serlib.common.runfolder.RECOMPUTABLE lists; a test
# keeps the two lists equal), and nothing else: listening annotations and any file a person put there stay.
clean-reports:
	for run in reports/demo reports/smoke; do \
	  [ -d $$run ] || continue; \
	  for name in report.html report.stale config.resolved.yaml timings.json progress.jsonl notebooks data models analysis tables figures; do \
	    rm -rf "$$run/$$name"; \
	  done; \
	  rm -f "$$run/listening/.annotations.csv.lock"; \
	  rmdir "$$run/listening" "$$run" 2>/dev/null || true; \
	done
