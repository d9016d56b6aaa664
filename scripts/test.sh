#!/usr/bin/env bash
# The one test command: scripts/test.sh [--full]
#
# 1. makes sure a Vulkan driver is present (installs Mesa lavapipe, a software
#    Vulkan driver, on machines without a GPU driver when run as root),
# 2. makes sure rustfmt and clippy are installed,
# 3. fetches the test models (scripts/fetch-models.sh),
# 4. runs cargo fmt --check, cargo clippy -D warnings and cargo test.
#
# The last lines it prints are cargo test's own "test result:" summary.
#
# --full also runs the slow checks: it exports SELDON_FULL=1, which tests read
# to enable their long variants, and runs the steps in full_steps() below.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() {
    echo "usage: scripts/test.sh [--full]"
    echo "  --full   also run the slow checks (sets SELDON_FULL=1 for the tests)"
}

FULL=0
for arg in "$@"; do
    case "$arg" in
        --full) FULL=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument: $arg" >&2
            usage >&2
            exit 2
            ;;
    esac
done

step() {
    echo
    echo "==> $*"
}

# --- Vulkan driver ----------------------------------------------------------

have_vulkan_icd() {
    local dir f
    for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d; do
        for f in "$dir"/*.json; do
            [[ -e "$f" ]] && return 0
        done
    done
    return 1
}

have_vulkan_loader() {
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true; } | grep -q 'libvulkan\.so\.1 '
}

ensure_vulkan() {
    if have_vulkan_icd && have_vulkan_loader; then
        return 0
    fi
    local pkgs="mesa-vulkan-drivers libvulkan1"
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "test.sh: no Vulkan driver found (no ICD file in /usr/share/vulkan/icd.d or" >&2
        echo "/etc/vulkan/icd.d, or no libvulkan.so.1). Install Mesa's software driver with:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y $pkgs" >&2
        echo "then run scripts/test.sh again." >&2
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "test.sh: no Vulkan driver found and no apt-get: install Mesa's lavapipe" >&2
        echo "(Vulkan ICD) and the Vulkan loader (libvulkan.so.1) with your package manager." >&2
        exit 1
    }
    step "installing Mesa lavapipe (software Vulkan): $pkgs"
    DEBIAN_FRONTEND=noninteractive apt-get update
    # shellcheck disable=SC2086 # the package list is meant to split
    DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs
    if ! { have_vulkan_icd && have_vulkan_loader; }; then
        echo "test.sh: $pkgs installed but still no Vulkan ICD or libvulkan.so.1" >&2
        exit 1
    fi
}

# --- Rust toolchain components ------------------------------------------------

ensure_components() {
    command -v cargo >/dev/null 2>&1 || {
        echo "test.sh: cargo not found: install Rust from https://rustup.rs" >&2
        exit 1
    }
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if command -v rustup >/dev/null 2>&1; then
        step "installing rust components: ${missing[*]}"
        rustup component add "${missing[@]}"
    else
        echo "test.sh: missing ${missing[*]} and no rustup to install them;" >&2
        echo "install them with your Rust distribution's package manager." >&2
        exit 1
    fi
}

# --- Slow checks (--full) -------------------------------------------------------

# cmake for building llama-perplexity: Debian's package as root, else pip's
# cmake in the reference venv (on PATH for this script).
ensure_cmake() {
    command -v cmake >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        step "installing cmake (for llama-perplexity)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y cmake
    else
        step "installing cmake into .venv-ref (for llama-perplexity)"
        "$ROOT/.venv-ref/bin/python" -m pip install --no-input cmake
        export PATH="$ROOT/.venv-ref/bin:$PATH"
    fi
}

# Steps that only --full runs, before the final cargo test. Add new slow
# checks here as `step "what"` followed by the command; they run from the
# repository root with SELDON_FULL=1 exported.
full_steps() {
    step "full checks: SELDON_FULL=1 is exported to cargo test"
    step "full: the reference generator reproduces the committed references (builds the venv)"
    scripts/python-env.sh >/dev/null
    "$ROOT/.venv-ref/bin/python" conformance/scripts/make_references.py --check
    step "full: extended conformance references (SmolLM2 re-quantized by llama.cpp)"
    "$ROOT/.venv-ref/bin/python" conformance/scripts/make_references.py --extended
    step "full: seldon-conformance kld against llama-perplexity (builds llama-perplexity, cached)"
    ensure_cmake
    conformance/scripts/kld_crosscheck.sh
}

# The conformance suite first, on its own, so that its per-case lines and the
# number of cases it ran are printed (cargo test hides a passing test's output).
conformance_suite() {
    step "conformance suite: cargo test -p seldon-conformance (every case on the test adapter and the CPU path)"
    local log status n
    log="$(mktemp)"
    set +e
    cargo test -p seldon-conformance -- --nocapture 2>&1 | tee "$log" |
        sed -n -E '/^\[(gpu|cpu)[^]]*\] |^test result:|panicked at|^error/p'
    status="${PIPESTATUS[0]}"
    set -e
    n="$(sed -n -E 's/^\[gpu[^]]*\] ([0-9]+) cases run.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}')"
    echo "conformance: $n cases run on the test adapter (cargo test exit status $status)"
    rm -f "$log"
    [[ "$status" -eq 0 ]] || exit "$status"
}

# --- Main -----------------------------------------------------------------------

ensure_vulkan
ensure_components

step "fetching models"
scripts/fetch-models.sh
step "fetching llama.cpp's tokenizer test vocabularies"
scripts/fetch-vocabs.sh

if [[ "$FULL" -eq 1 ]]; then
    export SELDON_FULL=1
    full_steps
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

conformance_suite

step "cargo test --workspace --exclude seldon-conformance"
# Last, so that its "test result:" lines end the output.
exec cargo test --workspace --exclude seldon-conformance
