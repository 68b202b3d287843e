# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Every install takes its versions from the lock, so a fresh machine gets what CI used (`make lock` refreshes it).
LOCK   := constraints.txt
# Every extra that installs on Python 3.11 here (habitat-sim has no wheel; see README).
DEV_EXTRAS := dev,nav,ros2,ray,nuscenes
# real ROS 2 Jazzy rclpy for the interop tests (see the target at the end)
VENV_ROS := .venv-ros
ROS_JAZZY_RCLPY := 7.1.6
ROS_JAZZY_MSGS := 5.3.6
DEMO_DIR   ?= demo_out

.PHONY: demo demo-train demo-train-drive demo-train-nav demo-train-pstl test test-random lint lock clean-demo help

help:
	@echo "make demo   set up .venv and run the main job end to end on synthetic data"
	@echo "make test   set up .venv with the dev extras and run the test suite"
	@echo "make demo-train  retrain checkpoints/diffusiondrive-synth, navdp-synth and pstl-synth on CPU (about 3 h)"

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "diffplan needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-core: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -c $(LOCK) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -c $(LOCK) -e '.[$(DEV_EXTRAS)]'
	@touch $@ $(VENV)/.installed-core

$(VENV)/.installed-demo: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -c $(LOCK) -e '.[nav]'
	@touch $@ $(VENV)/.installed-core

# Regenerate the lock with pip-tools (in its own venv) from pyproject.toml and every extra `make test` installs.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip --disable-pip-version-check -q install pip-tools==7.7.0
	.venv-lock/bin/pip-compile --quiet --extra $(DEV_EXTRAS) --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file $(LOCK) pyproject.toml
	@# torch by its public version (2.13.0, not 2.13.0+cpu): the CPU and the CUDA builds both satisfy it
	sed -i 's/^torch==\([0-9.]*\)+[a-z0-9]*$$/torch==\1/' $(LOCK)

# the first 100 of navtest-synth's 500 scenes (10 of each scenario type), and 10 of pointnav-synth's 200
# episodes spread over its cluttered worlds and rooms
DEMO_EVAL_SCENES   ?= 100
DEMO_NAV_EPISODES  ?= 10
# name=planner pairs; learned planners load the small checkpoints shipped in checkpoints/ (`make demo-train`)
DEMO_DRIVE_PLANNERS := constant-velocity=constant-velocity ego-mlp=checkpoints/ego-mlp-synth.safetensors \
	pdm-closed=pdm-closed diffusiondrive=checkpoints/diffusiondrive-synth.safetensors human=human
DEMO_NAV_PLANNERS   := expert=expert go-to-goal=go-to-goal dwa=dwa navdp=checkpoints/navdp-synth.safetensors

demo: $(VENV)/.installed-demo
	$(VENV)/bin/diffplan datagen drive --n 12 --demos-per-scene 2 --shard-size 6 --workers 2 \
		--out $(DEMO_DIR)/expert-train --resume
	$(VENV)/bin/diffplan scenes show $(DEMO_DIR)/expert-train --index 1 --out $(DEMO_DIR)/expert-bev.png
	$(VENV)/bin/diffplan scenes generate --n 200 --split train --seed 0 --shard-size 50 --workers 2 \
		--out $(DEMO_DIR)/drive-train --resume
	$(VENV)/bin/diffplan scenes show $(DEMO_DIR)/drive-train --index 0 --out $(DEMO_DIR)/bev.png
	$(VENV)/bin/diffplan scenes stats $(DEMO_DIR)/drive-train
	$(VENV)/bin/diffplan scenes generate --benchmark navtest-synth --workers 2 --out $(DEMO_DIR)/navtest-synth --resume
	for pair in $(DEMO_DRIVE_PLANNERS); do \
		$(VENV)/bin/diffplan eval navsim --planner $${pair#*=} --scenes $(DEMO_DIR)/navtest-synth \
			--limit $(DEMO_EVAL_SCENES) --workers 2 --out $(DEMO_DIR)/runs/$${pair%%=*} --worst 3 --resume || exit 1; \
	done
	$(VENV)/bin/diffplan scenes export $(DEMO_DIR)/navtest-synth --limit 10 --out $(DEMO_DIR)/openscene
	$(VENV)/bin/diffplan scenes import openscene --logs $(DEMO_DIR)/openscene/logs --maps $(DEMO_DIR)/openscene/maps \
		--filter $(DEMO_DIR)/openscene/scene_filter.yaml --out $(DEMO_DIR)/openscene-import --resume
	$(VENV)/bin/diffplan eval navsim --planner pdm-closed --scenes $(DEMO_DIR)/openscene-import \
		--out $(DEMO_DIR)/runs-openscene/pdm-closed --worst 1 --resume
	$(VENV)/bin/diffplan datagen nav --n 8 --shard-size 4 --workers 2 --out $(DEMO_DIR)/nav-train --resume
	$(VENV)/bin/diffplan scenes show-nav $(DEMO_DIR)/nav-train --depth --out $(DEMO_DIR)/nav-world.png
	for pair in $(DEMO_NAV_PLANNERS); do \
		$(VENV)/bin/diffplan eval pointnav --planner $${pair#*=} --episodes pointnav-synth \
			--limit $(DEMO_NAV_EPISODES) --spread --workers 2 --out $(DEMO_DIR)/nav-runs/$${pair%%=*} --resume || exit 1; \
	done
	$(VENV)/bin/diffplan eval table $(foreach pair,$(DEMO_DRIVE_PLANNERS),$(DEMO_DIR)/runs/$(firstword $(subst =, ,$(pair))))
	$(VENV)/bin/diffplan eval table $(foreach pair,$(DEMO_NAV_PLANNERS),$(DEMO_DIR)/nav-runs/$(firstword $(subst =, ,$(pair))))

# `make demo-train` regenerates the shipped checkpoints (about 3 h on 2 CPU cores; each part alone with
# `make demo-train-drive`, `make demo-train-nav` or `make demo-train-pstl`).
# checkpoints/diffusiondrive-synth.safetensors: DiffusionDrive trained on CPU (one thread) on 20,000 synthetic
# training scenes, 14 epochs at batch 32 (8,750 steps).
DEMO_TRAIN_SCENES ?= 20000
DEMO_TRAIN_EPOCHS ?= 14
DEMO_TRAIN_DATA   ?= $(DEMO_DIR)/drive-train-$(DEMO_TRAIN_SCENES)
DEMO_CHECKPOINT   ?= checkpoints/diffusiondrive-synth.safetensors
# checkpoints/navdp-synth.safetensors: NavDP (d 64, 3 layers, CNN depth encoder, no dropout) trained on CPU (one
# thread) on 5,000 expert trajectories (538,376 frames): one epoch at batch 32 (16,825 steps, 46 min), lr 2e-4.
DEMO_NAV_TRAIN_EPISODES ?= 5000
DEMO_NAV_TRAIN_DATA     ?= $(DEMO_DIR)/nav-train-$(DEMO_NAV_TRAIN_EPISODES)
DEMO_NAV_CHECKPOINT     ?= checkpoints/navdp-synth.safetensors
# checkpoints/pstl-synth.safetensors: pSTL (d 64, FFN 128, denoiser 2 x 256) trained on CPU (one thread) on the
# trajopt expert's diverse demonstrations of 600 synthetic scenes (6 targets each: lane keep, changes, stops;
# 4 s horizon, the plans' own), 120 epochs at batch 64, lr 1e-3; then its RefineNet, 40 epochs, DDPM frozen.
DEMO_PSTL_SCENES     ?= 600
DEMO_PSTL_DATA       ?= $(DEMO_DIR)/pstl-train-$(DEMO_PSTL_SCENES)
DEMO_PSTL_CHECKPOINT ?= checkpoints/pstl-synth.safetensors

demo-train: demo-train-drive demo-train-nav demo-train-pstl

demo-train-drive: $(VENV)/.installed-core
	$(VENV)/bin/diffplan scenes generate --n $(DEMO_TRAIN_SCENES) --split train --seed 0 --shard-size 500 \
		--workers 2 --out $(DEMO_TRAIN_DATA) --resume
	rm -rf $(DEMO_DIR)/runs/train-diffusiondrive
	OMP_NUM_THREADS=1 $(VENV)/bin/diffplan train diffusiondrive --data $(DEMO_TRAIN_DATA) \
		--out $(DEMO_DIR)/runs/train-diffusiondrive --epochs $(DEMO_TRAIN_EPOCHS) --batch-size 32 --in-memory \
		--accelerator cpu --devices 1 --seed 0 --export $(DEMO_CHECKPOINT)

demo-train-pstl: $(VENV)/.installed-core
	$(VENV)/bin/diffplan datagen drive --n $(DEMO_PSTL_SCENES) --demos-per-scene 6 --stop-fraction 0.25 \
		--horizon 40 --split train --workers 2 --out $(DEMO_PSTL_DATA) --resume
	rm -rf $(DEMO_DIR)/runs/train-pstl
	OMP_NUM_THREADS=1 $(VENV)/bin/diffplan train pstl --data $(DEMO_PSTL_DATA) --out $(DEMO_DIR)/runs/train-pstl \
		--split all --epochs 120 --batch-size 64 --lr 1e-3 --in-memory --accelerator cpu --devices 1 --seed 0 \
		--model d_model=64 --model ffn_dim=128 --model action_space=controls --export $(DEMO_PSTL_CHECKPOINT)
	OMP_NUM_THREADS=1 $(VENV)/bin/diffplan train-refinenet --planner $(DEMO_PSTL_CHECKPOINT) \
		--data $(DEMO_PSTL_DATA) --split all --epochs 40 --seed 0 --export $(DEMO_PSTL_CHECKPOINT)

demo-train-nav: $(VENV)/.installed-demo
	$(VENV)/bin/diffplan datagen nav --n $(DEMO_NAV_TRAIN_EPISODES) --shard-size 50 --workers 2 --seed 0 \
		--out $(DEMO_NAV_TRAIN_DATA) --resume
	rm -rf $(DEMO_DIR)/runs/train-navdp
	OMP_NUM_THREADS=1 $(VENV)/bin/diffplan train navdp --data $(DEMO_NAV_TRAIN_DATA) \
		--out $(DEMO_DIR)/runs/train-navdp --epochs 1 --batch-size 32 \
		--lr 2e-4 --in-memory --num-workers 2 --accelerator cpu --devices 1 --seed 0 \
		--model d_model=64 --model num_layers=3 --model num_heads=4 --model cnn_width=16 --model dropout=0.0 \
		--export $(DEMO_NAV_CHECKPOINT)

test: $(VENV)/.installed-dev $(VENV_ROS)/.installed
	$(PY) -m pytest

# The suite in a random order (pytest-random-order; the seed is printed, `-p random_order --random-order-seed=N`
# repeats it): tests must not depend on each other.
test-random: $(VENV)/.installed-dev $(VENV_ROS)/.installed
	$(PY) -m pytest --random-order

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean-demo:
	rm -rf $(DEMO_DIR)

# Real ROS 2 Jazzy rclpy (Fast DDS) from the ros-python-wheels project, in a SEPARATE venv: their bootstrapper
# re-execs every Python of its venv, so they must stay out of $(VENV). Used only by the rclpy interop test
# (tests/diffplan/test_node_rclpy_interop.py runs .venv-ros/bin/python as a subprocess). No vision_msgs wheel.
$(VENV_ROS)/.installed:
	$(PYTHON) -m venv $(VENV_ROS)
	$(VENV_ROS)/bin/python -m pip install -q "ros-jazzy-rclpy[fastrtps]==$(ROS_JAZZY_RCLPY)" \
		$(foreach pkg,std geometry nav sensor visualization diagnostic,ros-jazzy-$(pkg)-msgs==$(ROS_JAZZY_MSGS)) \
		"numpy==1.26.4" "rosbags==0.11.9"
	touch $@
