#!/usr/bin/env bash
# Fetch llama.cpp's tokenizer test corpus into ${SELDON_MODELS:-~/.cache/seldon/models}/vocab/.
#
# The corpus (vocab-only GGUF files plus .inp/.out files of texts and the token ids
# llama.cpp produces for them) ships in the llama-cpp-python sdist under
# vendor/llama.cpp/models/. Model hubs are unreachable from CI machines, PyPI is not.
# Only the four vocabularies seldon's tokenizer tests use are extracted.
#
# Idempotent: when every file is present and the stamp matches, nothing is downloaded.
# The sdist itself is cached next to them, checked against its sha256, and reused.
set -euo pipefail

MODELS_DIR="${SELDON_MODELS:-$HOME/.cache/seldon/models}"
VOCAB_DIR="$MODELS_DIR/vocab"
SPEC="llama-cpp-python==0.3.36"
SDIST="llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
PREFIX="llama_cpp_python-0.3.36/vendor/llama.cpp/models"
VOCABS=(gpt-2 llama-bpe qwen2 llama-spm)
STAMP="$VOCAB_DIR/.fetch-vocabs.stamp"

die() {
    echo "fetch-vocabs.sh: error: $*" >&2
    exit 1
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        python3 -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

members=()
for v in "${VOCABS[@]}"; do
    for ext in "" .inp .out; do
        members+=("ggml-vocab-$v.gguf$ext")
    done
done

all_present() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SDIST_SHA256" ]] || return 1
    local m
    for m in "${members[@]}"; do
        [[ -s "$VOCAB_DIR/$m" ]] || return 1
    done
}

if all_present; then
    echo "fetch-vocabs.sh: $VOCAB_DIR present"
    exit 0
fi

mkdir -p "$VOCAB_DIR" || die "cannot create $VOCAB_DIR"
sdist_path="$VOCAB_DIR/$SDIST"

if [[ ! -f "$sdist_path" || "$(sha256_of "$sdist_path")" != "$SDIST_SHA256" ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to download the sdist from PyPI"
    python3 -m pip --version >/dev/null 2>&1 || die "pip is needed: apt-get install -y python3-pip"
    dl="$(mktemp -d "${TMPDIR:-/tmp}/seldon-vocab.XXXXXX")"
    trap 'rm -rf "$dl"' EXIT
    echo "fetch-vocabs.sh: downloading the $SPEC sdist from PyPI"
    # --no-binary names only this package: with :all: pip would also build the
    # sdist's build dependencies (cmake, ninja) from source, which takes many minutes.
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --no-binary llama-cpp-python "$SPEC" -d "$dl" \
        || die "pip download $SPEC failed (is PyPI reachable?)"
    [[ -f "$dl/$SDIST" ]] || die "pip did not produce $SDIST"
    got="$(sha256_of "$dl/$SDIST")"
    [[ "$got" == "$SDIST_SHA256" ]] || die "$SDIST sha256 is $got, expected $SDIST_SHA256"
    mv -f "$dl/$SDIST" "$sdist_path"
fi

work="$(mktemp -d "$VOCAB_DIR/.extract.XXXXXX")"
trap 'rm -rf "$work" ${dl:+"$dl"}' EXIT
paths=()
for m in "${members[@]}"; do
    paths+=("$PREFIX/$m")
done
echo "fetch-vocabs.sh: extracting ${#members[@]} files into $VOCAB_DIR"
tar -xzf "$sdist_path" -C "$work" "${paths[@]}" || die "extracting from $sdist_path failed"
for m in "${members[@]}"; do
    [[ -s "$work/$PREFIX/$m" ]] || die "$m missing from $SDIST"
    chmod 0644 "$work/$PREFIX/$m"
    mv -f "$work/$PREFIX/$m" "$VOCAB_DIR/$m"
done
echo "$SDIST_SHA256" >"$STAMP"
echo "fetch-vocabs.sh: $VOCAB_DIR ready"
