#!/usr/bin/env bash
# Cross-checks `seldon-conformance kld` against llama.cpp's own llama-perplexity
# (issue 5 item 4; run by `scripts/test.sh --full`):
#
#  1. llama-perplexity writes a --kl-divergence-base file for SmolLM2 Q4_1 on a
#     short text; `kld --base F --other F` must give KLD 0 and same top p 100%.
#  2. llama-perplexity writes a base file for SmolLM2 Q8_0 (re-quantized by
#     `make_references.py --extended`) and runs its own --kl-divergence of the
#     Q4_1 model against it; `kld --base Q8_0-file --other Q4_1-file` must
#     print the same statistics (within what the Q4_1 file's 16/65535-nat
#     storage step moves; PPL(Q) is not compared, see kld/mod.rs).
#  3. `kld --base Q4_1-file -m Q4_1` runs seldon on llama-perplexity's chunks
#     and must meet the quantized-model limits.
#
# Usage: conformance/scripts/kld_crosscheck.sh [--cpu]   (--cpu: step 3 on seldon's CPU path)
# Env:   SELDON_CONFORMANCE  the seldon-conformance binary (default: built with cargo)
#        SELDON_MODELS       models dir (SmolLM2 from scripts/fetch-models.sh, the
#                            extended suite from make_references.py --extended)
#        KLD_WORK            keep the files here (default: a temporary directory)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODELS="${SELDON_MODELS:-$HOME/.cache/seldon/models}"
Q41="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
Q80="$MODELS/conformance-extended/smollm2/Q8_0/model.gguf"
TEXT="$ROOT/conformance/references/README.md"
CPU=()
[[ "${1:-}" == "--cpu" ]] && CPU=(--cpu)

die() {
    echo "kld_crosscheck: error: $*" >&2
    exit 1
}
[[ -f "$Q41" ]] || die "$Q41 missing: run scripts/fetch-models.sh"
[[ -f "$Q80" ]] || die "$Q80 missing: run conformance/scripts/make_references.py --extended"

PPL="$("$ROOT/conformance/scripts/build_llama_perplexity.sh" | tail -n1)"
if [[ -z "${SELDON_CONFORMANCE:-}" ]]; then
    (cd "$ROOT" && cargo build --quiet --release -p seldon-conformance)
    SELDON_CONFORMANCE="$ROOT/target/release/seldon-conformance"
fi
WORK="${KLD_WORK:-$(mktemp -d)}"
mkdir -p "$WORK"
echo "kld_crosscheck: files in $WORK" >&2

# 4 chunks of 128 tokens: 4 x 63 = 252 scored positions (llama-perplexity prints
# its summary statistics only from 100 up). The settings of the references.
O=(-c 128 -b 128 --chunks 4 -t 2 -fa off -ctk f32 -ctv f32)
"$PPL" -m "$Q41" -f "$TEXT" "${O[@]}" --kl-divergence-base "$WORK/q41.kld" >"$WORK/q41-base.log" 2>&1 ||
    die "llama-perplexity failed, see $WORK/q41-base.log"
"$PPL" -m "$Q80" -f "$TEXT" "${O[@]}" --kl-divergence-base "$WORK/q80.kld" >"$WORK/q80-base.log" 2>&1 ||
    die "llama-perplexity failed, see $WORK/q80-base.log"
"$PPL" -m "$Q41" "${O[@]}" --kl-divergence-base "$WORK/q80.kld" --kl-divergence >"$WORK/llama-kld.log" 2>&1 ||
    die "llama-perplexity --kl-divergence failed, see $WORK/llama-kld.log"

echo "== 1. a file against itself" >&2
"$SELDON_CONFORMANCE" kld --base "$WORK/q41.kld" --other "$WORK/q41.kld" --json >"$WORK/self.json"
echo "== 2. Q4_1 against the Q8_0 base: seldon's statistics beside llama-perplexity's" >&2
# Far apart models can miss the limits (exit 1); only the numbers matter here.
"$SELDON_CONFORMANCE" kld --base "$WORK/q80.kld" --other "$WORK/q41.kld" --json >"$WORK/pair.json" || true
echo "== 3. seldon on Q4_1 against llama.cpp's Q4_1 base" >&2
"$SELDON_CONFORMANCE" kld --base "$WORK/q41.kld" -m "$Q41" "${CPU[@]}" >"$WORK/model.txt" ||
    { cat "$WORK/model.txt"; die "seldon on SmolLM2 Q4_1 misses the limits"; }
sed -n '/KL divergence statistics/,$p' "$WORK/model.txt"

python3 - "$WORK" <<'PY'
import json, pathlib, re, sys

work = pathlib.Path(sys.argv[1])
self_ = json.loads((work / "self.json").read_text())["summary"]
assert self_["kld"]["value"] == 0.0, self_["kld"]
assert self_["same_top_p"]["value"] == 1.0, self_["same_top_p"]
print(f"1. q41.kld against itself: {self_['count']} positions, KLD 0, same top p 100%")

llama = {}
for line in (work / "llama-kld.log").read_text().splitlines():
    m = re.match(r"^\s*(Mean|Maximum|Minimum|Median|RMS|Same top p|[ 0-9.]+%)\s*(KLD|Δp)?\s*:\s*(-?[0-9.]+)(?:\s*±\s*([0-9.]+))?", line)
    if m and "PPL" not in line:
        key = (m.group(1).strip() + " " + (m.group(2) or "")).strip()
        llama[key] = (float(m.group(3)), float(m.group(4)) if m.group(4) else None)
pair = json.loads((work / "pair.json").read_text())["summary"]
ours = {"Mean KLD": (pair["kld"]["value"], pair["kld"]["uncertainty"]),
        "Mean Δp": (100 * pair["p_diff"]["value"], 100 * pair["p_diff"]["uncertainty"]),
        "RMS Δp": (100 * pair["rms_p_diff"]["value"], 100 * pair["rms_p_diff"]["uncertainty"]),
        "Same top p": (100 * pair["same_top_p"]["value"], 100 * pair["same_top_p"]["uncertainty"])}
for name, v in pair["kld_percentiles"]:
    ours[f"{name.strip()} KLD"] = (v, None)
for name, v in pair["p_diff_percentiles"]:
    ours[f"{name.strip()} Δp"] = (100 * v, None)
# The Q4_1 file stores log-probabilities in steps of (range)/65535 <= 2.4e-4 nats,
# so KL moves by ~1e-5 and Δp (in %) by ~1e-2. Same top p is a count: llama-perplexity
# prints it to 1e-3 %, and one position of 252 is 0.4 %.
tol = {"KLD": 5e-5, "Δp": 2e-2, "Same top p": 1e-3}
bad = []
print(f"2. Q4_1 against the Q8_0 base, {pair['count']} positions:")
print(f"   {'statistic':<14} {'llama-perplexity':>18} {'seldon-conformance':>20}")
for key, (lv, lu) in llama.items():
    if key not in ours:
        continue
    sv, su = ours[key]
    t = next(t for k, t in tol.items() if k in key)
    ok = abs(sv - lv) <= t + 1e-6 * abs(lv)
    unit = "%" if ("Δp" in key or "top" in key) else ""
    print(f"   {key:<14} {lv:>17.6f}{unit or ' '} {sv:>19.6f}{unit or ' '}  {'ok' if ok else 'DIFFERS'}")
    if not ok:
        bad.append(key)
missing = [k for k in ("Mean KLD", "Maximum KLD", "Median KLD", "RMS Δp", "Same top p") if k not in llama]
if missing:
    sys.exit(f"kld_crosscheck: llama-perplexity printed no {missing}: see {work / 'llama-kld.log'}")
if bad:
    sys.exit(f"kld_crosscheck: seldon-conformance differs from llama-perplexity on {bad}")
print("kld_crosscheck: seldon-conformance kld agrees with llama-perplexity")
PY
