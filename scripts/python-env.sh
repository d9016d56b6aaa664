#!/usr/bin/env bash
# Creates (idempotently) the Python reference environment: a venv with
# llama-cpp-python (which builds llama.cpp/ggml from source), gguf-py and numpy,
# pinned in scripts/requirements-ref.txt. Golden-vector and conformance
# reference generators run with this venv's python.
#
# Usage: scripts/python-env.sh            -> last stdout line is the venv's python
#        VENV_PY=$(scripts/python-env.sh | tail -n1)
# Env:   SELDON_VENV   venv directory (default: <repo>/.venv-ref)
#        PYTHON        interpreter used to create the venv (default: python3)
#
# All progress goes to stderr so stdout carries only the python path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SELDON_VENV:-$repo/.venv-ref}"
reqs="$repo/scripts/requirements-ref.txt"
stamp="$venv/.seldon-requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$reqs" | cut -d' ' -f1)"

# The stamp is written only after a successful install, so an interrupted build
# is retried rather than silently half-installed.
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "python-env: $venv is up to date" >&2
else
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "python-env: creating venv at $venv" >&2
        "$python" -m venv "$venv" >&2
    fi
    echo "python-env: installing $reqs (llama-cpp-python compiles llama.cpp: minutes)" >&2
    # GGML_NATIVE=OFF: the built library must not depend on the build host's
    # CPU extensions, so references do not change with the machine that made them.
    CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF" \
        "$venv/bin/python" -m pip install --no-input -r "$reqs" >&2
    echo "$want" > "$stamp"
fi

echo "$venv/bin/python"
