#!/usr/bin/env bash
# The main job, end to end: fetch SmolLM2-135M-Instruct and show what seldon
# makes of it: a greedy continuation of a prompt, on the best GPU found
# (Mesa lavapipe on a machine without one; slow there, see README).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL="${SELDON_MODELS:-$HOME/.cache/seldon/models}/SmolLM2-135M-Instruct.Q4_1.gguf"

scripts/fetch-models.sh
exec cargo run --release -p seldon-engine --bin seldon -- run -m "$MODEL" \
    -p "${SELDON_PROMPT:-The capital of France is}" -n "${SELDON_N:-16}" --temp 0 "$@"
