# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Every extra that installs on Python 3.11 here (habitat-sim has no wheel; see README).
DEV_EXTRAS := dev,nav,ros2,ray,nuscenes
DEMO_DIR   ?= demo_out

.PHONY: demo test lint clean-demo help

help:
	@echo "make demo   set up .venv and run the main job end to end on synthetic data"
	@echo "make test   set up .venv with the dev extras and run the test suite"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "diffplan needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-core: pyproject.toml | $(PY)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -e '.[$(DEV_EXTRAS)]'
	@touch $@ $(VENV)/.installed-core

DEMO_EVAL_SCENES ?= 100
DEMO_PLANNERS    := constant-velocity pdm-closed human

demo: $(VENV)/.installed-core
	$(VENV)/bin/diffplan datagen drive --n 12 --demos-per-scene 2 --shard-size 6 --workers 2 \
		--out $(DEMO_DIR)/expert-train --resume
	$(VENV)/bin/diffplan scenes show $(DEMO_DIR)/expert-train --index 1 --out $(DEMO_DIR)/expert-bev.png
	$(VENV)/bin/diffplan scenes generate --n 200 --split train --seed 0 --shard-size 50 --workers 2 \
		--out $(DEMO_DIR)/drive-train --resume
	$(VENV)/bin/diffplan scenes show $(DEMO_DIR)/drive-train --index 0 --out $(DEMO_DIR)/bev.png
	$(VENV)/bin/diffplan scenes stats $(DEMO_DIR)/drive-train
	$(VENV)/bin/diffplan scenes generate --benchmark navtest-synth --workers 2 --out $(DEMO_DIR)/navtest-synth --resume
	for planner in $(DEMO_PLANNERS); do \
		$(VENV)/bin/diffplan eval navsim --planner $$planner --scenes $(DEMO_DIR)/navtest-synth \
			--limit $(DEMO_EVAL_SCENES) --workers 2 --out $(DEMO_DIR)/runs/$$planner --worst 3 || exit 1; \
	done
	$(VENV)/bin/diffplan eval table $(addprefix $(DEMO_DIR)/runs/,$(DEMO_PLANNERS))

test: $(VENV)/.installed-dev
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf $(DEMO_DIR)
