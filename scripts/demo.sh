#!/usr/bin/env bash
# The main job, end to end: fetch SmolLM2-135M-Instruct and show what seldon
# makes of it. (This becomes `seldon run` once inference lands.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODEL="${SELDON_MODELS:-$HOME/.cache/seldon/models}/SmolLM2-135M-Instruct.Q4_1.gguf"

scripts/fetch-models.sh
exec cargo run --release -p seldon-engine --bin seldon -- info -m "$MODEL" "$@"
