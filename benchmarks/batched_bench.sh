#!/usr/bin/env bash
# llama.cpp's own llama-batched-bench, built from the llama.cpp that llama-cpp-python vendors,
# as the reference for benchmarks/branches.py: the same model, prompt length, tokens a branch
# and thread count, prompt shared across the parallel sequences (-pps).
#
#   bash benchmarks/batched_bench.sh [MODEL.gguf ...]     # default: the embedded model
#   NPL=1,4,8,16,32 NTG=64 NPP=84 THREADS=2 bash benchmarks/batched_bench.sh
#
# The build (a few minutes on 2 cores) goes to BUILD_DIR (default ~/.cache/reasoncli-bench/
# llama.cpp) and is reused. Its TG column is generated tokens per second across all sequences,
# without sampling: compare it with the engine tok/s column of branches.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUILD_DIR=${BUILD_DIR:-$HOME/.cache/reasoncli-bench/llama.cpp}
NPL=${NPL:-1,4,8,16,32} NTG=${NTG:-64} NPP=${NPP:-84} THREADS=${THREADS:-2}
BIN=$BUILD_DIR/build/bin/llama-batched-bench

if [ ! -x "$BIN" ]; then
  version=$("$PY" -c "import llama_cpp; print(llama_cpp.__version__)")
  mkdir -p "$BUILD_DIR/sdist"
  "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" \
    -d "$BUILD_DIR/sdist"
  tar -xzf "$BUILD_DIR"/sdist/llama_cpp_python-"$version".tar.gz -C "$BUILD_DIR/sdist"
  src=$BUILD_DIR/sdist/llama_cpp_python-$version/vendor/llama.cpp
  cmake -S "$src" -B "$BUILD_DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >/dev/null
  cmake --build "$BUILD_DIR/build" --target llama-batched-bench -j "$(nproc)" >/dev/null
fi

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=("$("$PY" -c "from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
print(resolve_model(None, load_catalog()).path)")")
fi
for m in "${models[@]}"; do
  echo "== $(basename "$m"), $THREADS threads, prompt $NPP, $NTG tokens a sequence, flash attn on"
  "$BIN" -m "$m" -c 8192 -b 2048 -ub 512 -npp "$NPP" -ntg "$NTG" -npl "$NPL" -t "$THREADS" \
    -fa on -pps 2>&1 | grep -E '^\|'
done
