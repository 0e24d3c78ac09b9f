#!/usr/bin/env bash
# GPU check for issue #13, in one go on a CUDA machine with this repo checked out:
#   1. a venv with llama-cpp-python built for CUDA (the wheel is cached by pip: reruns are quick);
#   2. a random-weight Llama GGUF with 1B-class shapes, written on the spot (no download);
#   3. the engine tests on the tiny model, fully offloaded (LlamaModel offloads every layer
#      by default when the build has a GPU backend);
#   4. benchmarks/branches.py on the 1B model: engine vs sequential at N = 1/8/32/64.
# Everything runs under one deadline (DEADLINE seconds, default 470) so it ends within 8 minutes.
#
#   bash benchmarks/gpu.sh
#   VENV=/tmp/v FULL_TEST_DEPS=1 REPS=3 bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DEADLINE=${DEADLINE:-470}
VENV=${VENV:-.venv-gpu}
WORK=${WORK:-/tmp/reason-gpu}
REPS=${REPS:-2}
MAX_TOKENS=${MAX_TOKENS:-64}
SIZES=${SIZES:-1,8,32,64}
THREADS=${THREADS:-$(( $(nproc) < 16 ? $(nproc) : 16 ))}
# The version the CPU venv pins, else the one the project was measured with.
if [[ -z "${LLAMA_VERSION:-}" ]]; then
    LLAMA_VERSION=$(.venv/bin/python -c \
        'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null \
        || echo 0.3.36)
fi
mkdir -p "$WORK"

left() { echo $(( DEADLINE - SECONDS )); }
# step SECONDS COMMAND...: run with at most SECONDS, never past the deadline.
step() {
    local want=$1 budget
    shift
    budget=$(left)
    (( want < budget )) && budget=$want
    if (( budget <= 5 )); then
        echo "!! skipped (deadline): $*" >&2
        return 124
    fi
    echo "== [$(( SECONDS ))s] $* (limit ${budget}s)" >&2
    timeout --kill-after=10 "$budget" "$@"
}

step 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

if [[ ! -x "$VENV/bin/python" ]]; then
    step 60 python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
step 60 "$PY" -m pip install -q --upgrade pip

if ! "$PY" -c 'import llama_cpp, sys; sys.exit(not llama_cpp.llama_supports_gpu_offload())' \
    2>/dev/null; then
    # native: only this GPU's architecture, several times faster to compile than all of them.
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=native" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        step 330 "$PY" -m pip install -q --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_VERSION"
fi
# The project and its test tools; llama-cpp-python is already satisfied, so pip keeps the CUDA
# build. `.[test]` also pulls torch for the trainer tests: opt in, it does not fit 8 minutes.
if [[ "${FULL_TEST_DEPS:-0}" == 1 ]]; then
    step 300 "$PY" -m pip install -q -e ".[test]"
else
    step 120 "$PY" -m pip install -q -e . pytest
fi
"$PY" - <<'EOF'
import llama_cpp
assert llama_cpp.llama_supports_gpu_offload(), "llama-cpp-python has no GPU backend"
print("llama-cpp-python", llama_cpp.__version__, "with GPU offload")
EOF

# A 1B-class Llama (hidden 2048, 16 layers, 32 heads, 8 KV heads, FFN 8192) with the embedded
# model's tokenizer and vocabulary; f16 weights, about 2.4 GB.
SOURCE=$("$PY" -c 'from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
print(resolve_model(None, load_catalog()).path)')
MODEL="$WORK/llama-1b-random-f16.gguf"
if [[ ! -s "$MODEL" ]]; then
    step 120 "$PY" tests/tiny_gguf.py "$SOURCE" "$MODEL.part" \
        --layers 16 --embd 2048 --heads 32 --kv-heads 8 --ff 8192 --dtype f16
    mv "$MODEL.part" "$MODEL"
fi

# Engine tests on the tiny model, every layer on the GPU.
step 150 "$PY" -m pytest -q -x tests/test_engine.py tests/test_strategies_parallel.py || true

# The table. Prompt-processing tok/s (the "of PP" column) is measured in the same reps.
step "$(left)" "$PY" benchmarks/branches.py --model "$MODEL" --gpu-layers -1 \
    --sizes "$SIZES" --reps "$REPS" --max-tokens "$MAX_TOKENS" --threads "$THREADS" \
    --skip-cli "$@"
echo "done in ${SECONDS}s" >&2
