#!/usr/bin/env bash
# Builds llama.cpp's `llama-perplexity` from the llama.cpp that the
# llama-cpp-python 0.3.36 sdist vendors (commit 0c1e5709, the one every
# committed reference was made with). llama-cpp-python ships no tools, so the
# extended suite builds this one to cross-check `seldon-conformance kld`.
#
# Usage: conformance/scripts/build_llama_perplexity.sh   -> last stdout line is the binary
#        PPL=$(conformance/scripts/build_llama_perplexity.sh | tail -n1)
# Env:   SELDON_CACHE   cache root (default ~/.cache/seldon); the sdist, the
#                       sources and the build live under $SELDON_CACHE/llama-perplexity/
#        SELDON_MODELS  where scripts/fetch-vocabs.sh keeps its copy of the sdist
#                       (reused when present; default $SELDON_CACHE/models)
#        JOBS           parallel build jobs (default: nproc)
#
# Nothing here is committed: it all lives in the cache. Idempotent: a finished
# build is reused. Needs cmake and a C++17 compiler; the build takes several
# minutes on 2 cores. Progress goes to stderr, so stdout carries only the path.
set -euo pipefail

CACHE="${SELDON_CACHE:-$HOME/.cache/seldon}"
MODELS_DIR="${SELDON_MODELS:-$CACHE/models}"
DIR="$CACHE/llama-perplexity"
SPEC="llama-cpp-python==0.3.36"
SDIST="llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SRC="$DIR/llama.cpp"
BUILD="$DIR/build"
BIN="$BUILD/bin/llama-perplexity"
STAMP="$DIR/.built.stamp"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

log() { echo "build_llama_perplexity: $*" >&2; }
die() {
    echo "build_llama_perplexity: error: $*" >&2
    exit 1
}

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$SDIST_SHA256" ]]; then
    log "$BIN is up to date"
    echo "$BIN"
    exit 0
fi

command -v cmake >/dev/null 2>&1 || die "cmake not found: install it (apt-get install -y cmake, or python3 -m pip install cmake) and run again"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "no C++ compiler: install one (apt-get install -y g++)"

mkdir -p "$DIR"

# The sdist: fetch-vocabs.sh's copy, else our own, else from PyPI.
sdist=""
for cand in "$MODELS_DIR/vocab/$SDIST" "$DIR/$SDIST"; do
    if [[ -f "$cand" && "$(sha256sum "$cand" | cut -d' ' -f1)" == "$SDIST_SHA256" ]]; then
        sdist="$cand"
        break
    fi
done
if [[ -z "$sdist" ]]; then
    log "downloading the $SPEC sdist from PyPI"
    python3 -m pip download --quiet --no-deps --no-binary :all: "$SPEC" -d "$DIR" >&2
    sdist="$DIR/$SDIST"
    [[ -f "$sdist" ]] || die "pip download did not produce $sdist"
    got="$(sha256sum "$sdist" | cut -d' ' -f1)"
    [[ "$got" == "$SDIST_SHA256" ]] || die "$sdist has sha256 $got, expected $SDIST_SHA256"
fi

if [[ ! -f "$SRC/tools/perplexity/perplexity.cpp" ]]; then
    log "extracting vendor/llama.cpp from $sdist"
    rm -rf "$SRC" "$DIR/extract"
    mkdir -p "$DIR/extract"
    tar -xzf "$sdist" -C "$DIR/extract" "llama_cpp_python-0.3.36/vendor/llama.cpp"
    mv "$DIR/extract/llama_cpp_python-0.3.36/vendor/llama.cpp" "$SRC"
    rm -rf "$DIR/extract"
fi

log "configuring (GGML_NATIVE=OFF, static, tools only)"
# GGML_NATIVE=OFF: the same portable CPU code paths the references' llama-cpp-python
# build uses (scripts/python-env.sh), so its numbers match the committed ones.
cmake -S "$SRC" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_CURL=OFF >&2

log "building llama-perplexity with $JOBS jobs (several minutes on 2 cores)"
cmake --build "$BUILD" --target llama-perplexity -j "$JOBS" >&2
[[ -x "$BIN" ]] || die "the build finished but $BIN is missing"
echo "$SDIST_SHA256" >"$STAMP"
log "built $BIN"
echo "$BIN"
