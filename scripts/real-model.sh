#!/usr/bin/env bash
# Starts the real model the agent's openai-local engine talks to: llama-cpp-python's server with
# SmolLM2-135M-Instruct on 127.0.0.1:${PORT:-8081} (one thread, one request at a time — the
# agent in front of it advertises one slot). Installs it first (scripts/setup.sh). Ctrl-C stops it.
# It keeps a RAM prompt cache (--cache true, 512 MiB: ~16 conversations of ~1,000 tokens of
# SmolLM2-135M state), so a conversation's next turn prefills only what is new even when other
# conversations ran in between (docs/real-model.md, "Prompt caches"; issue #14).
#   ./scripts/real-model.sh                      # the runtime alone
#   fleet-agent run --engine openai-local --upstream http://127.0.0.1:8081/v1 --slots 1 \
#       --cache-sequences 16 --cache-tokens 2048 ...   # a car in front of it, telling the gateway its cache
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
CACHE="${FLEETGATE_CACHE:-$HOME/.cache/fleetgate}"
exec "$CACHE/venv/bin/python" -m llama_cpp.server \
    --model "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" --model_alias smollm2-135m \
    --host 127.0.0.1 --port "${PORT:-8081}" --n_threads 1 --n_threads_batch 1 --n_ctx 2048 \
    --cache true --cache_type ram --cache_size "${CACHE_BYTES:-536870912}"
