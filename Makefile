# ml07lab: every target is one command on a fresh machine (each sets up what it needs).
# Variables are overridable:  make test VENV=/tmp/v PROFILE=laptop MIRROR=/data/faces
# GNU make >= 3.82 (for .ONESHELL).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON      ?= python3
VENV        ?= .venv
PY          = $(VENV)/bin/python
CONSTRAINTS ?= constraints.txt
EXTRAS      ?= browser
# Real-face mirror: $(MIRROR), else $ML07LAB_MIRROR, else ../shared/data.
ML07LAB_MIRROR ?= ../shared/data
MIRROR      ?= $(ML07LAB_MIRROR)
PROFILE     ?= ci
CELL_TIMEOUT ?= 600
PYTEST_ARGS ?=
FULL        ?=
# What `make lock` holds fixed while resolving: a tested torch/torchvision pair.
# torchvision's metadata only says torch>=X, so a free resolve may pair a newer
# torch with an older torchvision; mismatched pairs can fail at import
# ("operator torchvision::nms does not exist"). Never lock the local +cpu torch.
LOCK_PINS   ?= torch==2.14.1 torchvision==0.29.2

# setup is a no-op while this matches the stamp in the venv: the dependency spec,
# the extras, and the checkout path (the editable install points at the checkout,
# so a venv reused by another clone must be re-pointed).
STAMP      = $(VENV)/.ml07lab-setup
SHA256     := $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo 'shasum -a 256')
SETUP_KEY := $(shell { cat pyproject.toml $(CONSTRAINTS) 2>/dev/null; echo "extras=$(EXTRAS) repo=$(CURDIR)"; } | $(SHA256) | cut -d' ' -f1)

CONSTRAINT_ARG = $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: help setup data lab test run bench student strip lock clean

help: ## list the targets
	@echo "ml07lab targets (VENV=$(VENV), PROFILE=$(PROFILE), MIRROR=$(MIRROR)):"
	grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 16

setup: ## create $(VENV) and install the lab (skipped when already up to date)
	@if [ -x "$(PY)" ] && [ "$$(cat "$(STAMP)" 2>/dev/null)" = "$(SETUP_KEY)" ]; then
		echo "setup: $(VENV) is up to date"; exit 0
	fi
	if [ ! -x "$(PY)" ]; then
		echo "setup: creating $(VENV)"
		$(PYTHON) -m venv "$(VENV)"
	fi
	rm -f "$(STAMP)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(CONSTRAINT_ARG) -e ".$(if $(EXTRAS),[$(EXTRAS)])"
	echo "$(SETUP_KEY)" > "$(STAMP)"
	echo "setup: $(VENV) ready"

data: setup ## import the real datasets from $(MIRROR) if present, else fetch them online
	@if [ -d "$(MIRROR)" ]; then
		$(PY) -m ml07lab data import all --from "$(MIRROR)"
	else
		echo "data: no mirror at $(MIRROR); fetching online"
		$(PY) -m ml07lab data fetch all
	fi

lab: setup data ## open JupyterLab on the learner's copies (labs/student/START_HERE.ipynb)
	# The file browser opens in labs/student/; the solved instructor copies are one
	# deliberate step up (labs/). Containers and classroom VMs often run as root;
	# Jupyter refuses that unless told.
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=labs --LabApp.default_url=/lab/tree/student/START_HERE.ipynb \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: setup data ## unit tests, then run every notebook (nbval, profile $(PROFILE))
	@export ML07LAB_PROFILE="$(PROFILE)"
	# Kernels run from labs/: import ml07lab from this checkout even if the (shared,
	# cached) venv's editable install was last pointed at another clone.
	export PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"
	rc=0
	$(PY) -m pytest tests -q $(PYTEST_ARGS) || rc=$$?
	NBVAL="$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider -q $(PYTEST_ARGS)"
	if ls labs/*.ipynb >/dev/null 2>&1; then
		$$NBVAL labs/*.ipynb || rc=$$?
	else
		echo "test: no notebooks in labs/ yet; skipping nbval"
	fi
	if ls labs/student/*.ipynb >/dev/null 2>&1; then
		$$NBVAL labs/student/*.ipynb || rc=$$?
	fi
	if [ $$rc -ne 0 ]; then echo "test: FAILED (exit $$rc)" >&2; fi
	exit $$rc

run: setup ## run the whole attack + controls pipeline, reports in reports/
	$(PY) -m ml07lab run --profile $(PROFILE) --out reports/

bench: setup ## speed + memory -> reports/bench.json (FULL=1 PROFILE=laptop: + every notebook cold and warm)
	@ML07LAB_MIRROR="$(MIRROR)" $(PY) -m ml07lab bench --out reports/bench.json $(if $(FULL),--full --profile $(PROFILE))
	$(if $(FULL),echo "bench: now python tools/update_timings.py rewrites the README's and docs/instructor.md's tables")

student: setup ## build the student notebooks (labs/student/)
	$(PY) tools/make_student.py

strip: setup ## strip outputs from labs/*.ipynb and labs/student/*.ipynb
	$(PY) tools/strip_notebooks.py

lock: ## regenerate $(CONSTRAINTS) from a fresh resolve of pyproject.toml (+ LOCK_PINS)
	@tmp=$$(mktemp -d)
	trap 'rm -rf "$$tmp"' EXIT
	$(PYTHON) -m venv "$$tmp/venv"
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
	"$$tmp/venv/bin/python" -m pip install --dry-run --ignore-installed --quiet \
		--report "$$tmp/report.json" ".$(if $(EXTRAS),[$(EXTRAS)])" $(LOCK_PINS)
	# (.ONESHELL strips leading blanks from recipe lines: keep this Python unindented.)
	"$$tmp/venv/bin/python" - "$$tmp/report.json" > "$$tmp/constraints.txt" <<-'EOF'
	import json, platform, sys
	report = json.load(open(sys.argv[1]))
	pins = sorted((
	    (i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"]
	    if i["metadata"]["name"].lower().replace("_", "-") != "ml07lab"
	), key=lambda p: p[0].lower())
	print("# Exact versions for reproducible installs (`make setup`, CI). GENERATED: do not edit.")
	print("# Regenerate with `make lock` (resolves pyproject.toml + [$(EXTRAS)] in a scratch venv,")
	print("# holding LOCK_PINS='$(LOCK_PINS)' fixed), then commit it.")
	print(f"# Resolved for CPython {platform.python_version()} on {sys.platform}/{platform.machine()};")
	print("# other Pythons/platforms: `make setup CONSTRAINTS=` installs from the pyproject ranges.")
	print("\n".join(f"{name}=={version}" for name, version in pins))
	EOF
	mv "$$tmp/constraints.txt" $(CONSTRAINTS)
	echo "lock: wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) packages)"

clean: ## remove caches and build leftovers (keeps data/, reports/ and the venv)
	find . -path ./data -prune -o -path "./$(VENV)" -prune -o -path './.venv*' -prune -o -path ./.git -prune -o \
		\( -name __pycache__ -o -name .pytest_cache -o -name .ipynb_checkpoints -o -name '*.egg-info' \) \
		-type d -print -exec rm -rf {} +
	rm -rf build dist
