#!/usr/bin/env bash
# llama.cpp's own llama-server, built from the llama.cpp that llama-cpp-python vendors: the peer
# that benchmarks/serve_load.py --peer llama-server measures `reason serve` against, and the
# real server tests/test_llama_server.py drives `reason --base-url` with. Prints the binary's
# path on stdout (all else goes to stderr).
#
#   bash benchmarks/llama_server.sh            # build once, print the path
#   bash benchmarks/llama_server.sh >/dev/null # as the README's test command does
#   low bash benchmarks/llama_server.sh        # the same at lowest CPU priority
#   JOBS=2 BUILD_DIR=... bash benchmarks/llama_server.sh
#
# The build (some 300 C++ files: 10 minutes or more on 2 idle cores, hours at `low` priority on a
# busy machine; an interrupted build goes on where it stopped) goes to BUILD_DIR (default
# ~/.cache/reasoncli-bench/llama.cpp, shared with batched_bench.sh) and is reused: delete
# BUILD_DIR/build after upgrading llama-cpp-python. CPU only, no curl, no OpenSSL, no web
# UI (LLAMA_USE_PREBUILT_UI=OFF: the build would otherwise download the UI's assets).
#
# AMX: a native build compiles llama.cpp's AMX path on an AMX CPU, and on some machines its
# first matrix multiply dies (llama.cpp #20824; reasoncli/engine/cpu_buffers.py). The build
# takes the extra buffers `reason doctor` says `reason` uses here: without AMX among them,
# -mno-amx-* leave AMX out and keep the CPU repack, so both servers run the same kernels.
# AMX=on|off overrides.
#
# `n` > 1 per request: llama-cpp-python 0.3.36 vendors ggml-org/llama.cpp@0c1e57098, whose
# tools/server/server-schema.cpp reads `n_cmpl` with `n` as its alias, hard-limited to
# [1, --parallel]: one prefill, its KV state copied to n - 1 child slots (server-context.cpp,
# "handle `n_cmpl > 1` tasks"), child j sampling with seed + j. A request with n > -np is
# answered 400. /props reports -np as `total_slots`, which reasoncli.remote sizes `n` by.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's Python: .venv's, else the one on PATH (an activated virtualenv, as in .ci/run).
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python; fi
fi
BUILD_DIR=${BUILD_DIR:-$HOME/.cache/reasoncli-bench/llama.cpp}
JOBS=${JOBS:-2}
BIN=$BUILD_DIR/build/bin/llama-server

if [ ! -x "$BIN" ]; then
  version=$("$PY" -c "import llama_cpp; print(llama_cpp.__version__)")
  src=$BUILD_DIR/sdist/llama_cpp_python-$version/vendor/llama.cpp
  if [ ! -d "$src" ]; then
    mkdir -p "$BUILD_DIR/sdist"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" \
      -d "$BUILD_DIR/sdist" >&2
    tar -xzf "$BUILD_DIR"/sdist/llama_cpp_python-"$version".tar.gz -C "$BUILD_DIR/sdist"
  fi
  if ! grep -q '"n_cmpl"' "$src/tools/server/server-schema.cpp" 2>/dev/null; then
    echo "note: this llama-server ($version) has no n_cmpl: reason sends one request a branch" >&2
  fi
  if [ -z "${AMX:-}" ]; then
    AMX=$("$PY" -m reasoncli doctor --json 2>/dev/null | "$PY" -c "import json, sys
print('on' if 'AMX' in json.load(sys.stdin)['cpu']['extra_buffers']['in_use'] else 'off')")
  fi
  flags=""
  [ "$AMX" = on ] || flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  echo "building llama-server from $src (AMX $AMX; 10 minutes or more) ..." >&2
  cmake -S "$src" -B "$BUILD_DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
  cmake --build "$BUILD_DIR/build" --target llama-server -j "$JOBS" >/dev/null
fi
echo "$BIN"
