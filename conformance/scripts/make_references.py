#!/usr/bin/env python3
"""Conformance references from llama.cpp (issue 5 item 1).

    conformance/scripts/make_references.py             # committed suite -> conformance/references/
    conformance/scripts/make_references.py --check     # regenerate in a temp dir, compare sha256s
    conformance/scripts/make_references.py --extended  # large cases -> $SELDON_MODELS/conformance-extended/

Run with any python3: it re-executes itself in the reference venv made by
scripts/python-env.sh (llama-cpp-python 0.3.36 = llama.cpp 0c1e5709, gguf 0.19.0,
numpy; pinned in conformance/scripts/requirements.txt, which must agree with
scripts/requirements-ref.txt). The output format is described in
conformance/references/README.md. Deterministic: no timestamps, fixed seeds,
fixed thread counts; the same versions give the same sha256s.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

SCRIPTS = pathlib.Path(__file__).resolve().parent
ROOT = SCRIPTS.parent.parent
REQUIREMENTS = SCRIPTS / "requirements.txt"
SHARED_REQUIREMENTS = ROOT / "scripts" / "requirements-ref.txt"
IN_VENV_FLAG = "SELDON_REFGEN_IN_VENV"


def _pins(path: pathlib.Path) -> set[str]:
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return {ln for ln in lines if ln}


def _enter_venv() -> None:
    """Re-executes this script with the reference venv's python (made on first use)."""
    if os.environ.get(IN_VENV_FLAG) == "1":
        return
    if _pins(REQUIREMENTS) != _pins(SHARED_REQUIREMENTS):
        sys.exit(
            f"make_references.py: {REQUIREMENTS} and {SHARED_REQUIREMENTS} pin different "
            "versions; the venv is built from the latter, so keep them equal"
        )
    env_script = ROOT / "scripts" / "python-env.sh"
    res = subprocess.run([str(env_script)], stdout=subprocess.PIPE, check=False)
    lines = res.stdout.decode().strip().splitlines()
    if res.returncode != 0 or not lines:
        sys.exit(f"make_references.py: {env_script} failed ({res.returncode})")
    python = lines[-1]
    os.environ[IN_VENV_FLAG] = "1"
    os.execv(python, [python, str(pathlib.Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    _enter_venv()

# Imports that need the venv come after the re-exec.
import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

# No __pycache__ next to the sources (it would show up as untracked files).
sys.dont_write_bytecode = True
sys.path.insert(0, str(SCRIPTS))
from refgen import cases, corpus, llamacpp, output, tiny  # noqa: E402
from refgen.ggml import Ggml  # noqa: E402
from refgen.texts import SMOLLM2_PROMPTS, TINY_PROMPTS  # noqa: E402

LLAMA_CPP_COMMIT = "0c1e5709"  # vendored by llama-cpp-python 0.3.36
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ALL_TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K",
             "Q5_1", "BF16"]
TERNARY_TYPES = ["TQ1_0", "TQ2_0"]

# The committed matrix. Every arch has F32 (exact comparisons), Q8_0 and Q4_K_M;
# bitnet, the ternary arch, has TQ1_0 and TQ2_0. The other eight types run once
# each, dealt across the three archs with Gaussian weights: a block format's
# kernel does not depend on the arch, and bitnet's ternary weights fill only
# three levels of a block's code range, a weak test of bit unpacking. The rest
# of the matrix is in the extended suite (--extended): the F32 files alone take
# ~15 MB, so all 46 combinations would not fit the ~20 MB budget.
COMMITTED = {
    "llama": ["F32", "Q8_0", "Q4_K_M", "F16", "Q4_0", "Q5_K_M"],
    "qwen2": ["F32", "Q8_0", "Q4_K_M", "Q4_1", "Q6_K", "Q2_K"],
    "qwen3": ["F32", "Q8_0", "Q4_K_M", "Q5_0", "Q3_K_M"],
    "bitnet": ["F32", "Q8_0", "Q4_K_M", "TQ1_0", "TQ2_0"],
}
LORA_SCALES = [1.0, 0.5]
# SmolLM2 re-quantized by llama.cpp: too large to commit, so extended only.
SMOLLM2_EXTENDED_TYPES = ["Q8_0", "Q4_K_M"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def all_types(arch: str) -> list[str]:
    return ALL_TYPES + (TERNARY_TYPES if arch == "bitnet" else [])


def versions(ggml: Ggml) -> dict:
    return {
        "llama_cpp_commit": LLAMA_CPP_COMMIT,
        "llama_cpp_python": importlib.metadata.version("llama_cpp_python"),
        "ggml_version": ggml.version(),
        "ggml_commit": ggml.commit(),
        "gguf": importlib.metadata.version("gguf"),
        "numpy": importlib.metadata.version("numpy"),
    }


def check_versions() -> None:
    for pin in sorted(_pins(REQUIREMENTS)):
        name, _, want = pin.partition("==")
        have = importlib.metadata.version(name)
        if want and have != want:
            sys.exit(f"make_references.py: {name} {have} installed, {want} pinned")


class Suite:
    """Runs cases into a staging root and keeps the rows of the summary table."""

    def __init__(self, root: pathlib.Path, ggml: Ggml):
        self.root = root
        self.ggml = ggml
        self.rows: list[dict] = []

    def run(self, spec: cases.CaseSpec, case_dir: str) -> None:
        t0 = time.monotonic()
        case = cases.run(spec, self.root, case_dir, self.ggml)
        d = case["f64_reference"]
        self.rows.append({"case": case_dir, "n_tokens": case["n_tokens"], **d,
                          "min_margin": case["greedy"]["min_margin"]})
        log(f"  {case_dir:34s} {case['n_tokens']:3d} tok  max|d| {d['max_abs_logit_diff']:.2e}"
            f"  KL {d['mean_kl']:.2e}/{d['max_kl']:.2e}  top1 {d['top1_agreement']:.3f}"
            f"  ({time.monotonic() - t0:.1f} s)")

    def tiny_model(self, arch: str, type_name: str, f32: pathlib.Path) -> None:
        cfg = tiny.ARCHS[arch]
        case_dir = f"tiny/{arch}-{type_name}"
        model = self.root / case_dir / "model.gguf"
        if type_name != "F32":
            model.parent.mkdir(parents=True, exist_ok=True)
            llamacpp.quantize(f32, model, type_name)
        text, parse_special = TINY_PROMPTS[cfg.tokenizer]
        self.run(cases.CaseSpec(
            name=f"{arch}-{type_name}", kind="tiny", type_name=type_name, model_path=model,
            model_rel=f"{case_dir}/model.gguf", model_in="root", prompt=text,
            parse_special=parse_special), case_dir)

    def write_f32(self, arch: str, where: pathlib.Path) -> pathlib.Path:
        where.mkdir(parents=True, exist_ok=True)
        path = where / "model.gguf"
        tiny.write_model(tiny.ARCHS[arch], path)
        return path

    def smollm2(self, model: pathlib.Path, model_rel: str, model_in: str, type_name: str) -> None:
        for name, text, parse_special in SMOLLM2_PROMPTS:
            case_dir = f"smollm2/{type_name}/{name}"
            self.run(cases.CaseSpec(
                name=f"smollm2-{type_name}-{name}", kind="smollm2", type_name=type_name,
                model_path=model, model_rel=model_rel, model_in=model_in, prompt=text,
                parse_special=parse_special, compact=True), case_dir)


def summary_markdown(title: str, rows: list[dict], total_bytes: int) -> str:
    out = [f"# {title}", "",
           "Generated by conformance/scripts/make_references.py; do not edit.",
           f"Total size of the files in manifest.json: {total_bytes} bytes.", "",
           "Distance of llama.cpp's logits from the float64 reference forward pass "
           "(dequantized weights, activations never rounded); KL(llama.cpp || f64) in nats "
           "per position; min margin is the smallest top-1/top-2 logit gap of llama.cpp's "
           "greedy continuation.", "",
           "| case | tokens | max abs logit diff | mean KL | max KL | top-1 agreement | min margin |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['case']} | {r['n_tokens']} | {r['max_abs_logit_diff']:.3g} | "
                   f"{r['mean_kl']:.3g} | {r['max_kl']:.3g} | {r['top1_agreement']:.3f} | "
                   f"{r['min_margin']:.3g} |")
    return "\n".join(out) + "\n"


def finish(suite: Suite, header: dict, title: str) -> dict:
    skip = {"manifest.json", "README.md", "SUMMARY.md"}
    m = output.manifest(suite.root, {**header, "summary": suite.rows}, skip)
    (suite.root / "SUMMARY.md").write_text(summary_markdown(title, suite.rows, m["total_bytes"]))
    output.write_json(suite.root / "manifest.json", m)
    return m


def build_default(stage: pathlib.Path, ggml: Ggml, smollm2: pathlib.Path) -> dict:
    suite = Suite(stage, ggml)
    log("tiny models")
    for arch, types in COMMITTED.items():
        f32 = suite.write_f32(arch, stage / f"tiny/{arch}-F32")
        for t in types:
            suite.tiny_model(arch, t, f32)

    log("LoRA")
    cfg = tiny.ARCHS["llama"]
    adapter_rel = "lora/llama-lora.gguf"
    (stage / "lora").mkdir(parents=True, exist_ok=True)
    tiny.write_lora(cfg, stage / adapter_rel)
    text, parse_special = TINY_PROMPTS[cfg.tokenizer]
    for scale in LORA_SCALES:
        case_dir = f"lora/llama-F32-scale{scale}"
        suite.run(cases.CaseSpec(
            name=f"llama-F32-lora-scale{scale}", kind="lora", type_name="F32",
            model_path=stage / "tiny/llama-F32/model.gguf", model_rel="tiny/llama-F32/model.gguf",
            model_in="root", prompt=text, parse_special=parse_special,
            adapters=[cases.Adapter(stage / adapter_rel, adapter_rel, scale)]), case_dir)

    log("SmolLM2-135M-Instruct Q4_1")
    suite.smollm2(smollm2, SMOLLM2, "models_dir", "Q4_1")

    log("tokenizer corpus")
    corpus.write(stage, "tokenizer/smollm2.json", smollm2, SMOLLM2, "models_dir")
    for kind, arch in (("spm", "llama"), ("bpe", "qwen2")):
        rel = f"tiny/{arch}-F32/model.gguf"
        corpus.write(stage, f"tokenizer/tiny-{kind}.json", stage / rel, rel, "root")

    header = {**versions(ggml), "settings": llamacpp.CONTEXT_SETTINGS,
              "greedy_tokens": cases.N_GREEDY, "top_k": cases.TOP_K,
              "external_models": [{"name": SMOLLM2, "sha256": SMOLLM2_SHA256,
                                   "fetched_by": "scripts/fetch-models.sh"}]}
    return finish(suite, header, "Conformance references (committed suite)")


def build_extended(stage: pathlib.Path, ggml: Ggml, smollm2: pathlib.Path) -> dict:
    suite = Suite(stage, ggml)
    log("tiny models (the combinations not committed)")
    for arch, committed in COMMITTED.items():
        src_dir = stage / "tmp-f32"
        f32 = suite.write_f32(arch, src_dir)
        for t in all_types(arch):
            if t in committed:
                continue
            if t == "F32":
                raise AssertionError("F32 is always committed")
            suite.tiny_model(arch, t, f32)
        shutil.rmtree(src_dir)
    for t in SMOLLM2_EXTENDED_TYPES:
        log(f"SmolLM2-135M-Instruct re-quantized to {t}")
        rel = f"smollm2/{t}/model.gguf"
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        llamacpp.quantize(smollm2, stage / rel, t, allow_requantize=True)
        suite.smollm2(stage / rel, rel, "root", t)
    header = {**versions(ggml), "settings": llamacpp.CONTEXT_SETTINGS,
              "greedy_tokens": cases.N_GREEDY, "top_k": cases.TOP_K,
              "external_models": [{"name": SMOLLM2, "sha256": SMOLLM2_SHA256,
                                   "fetched_by": "scripts/fetch-models.sh"}]}
    return finish(suite, header, "Conformance references (extended suite)")


# What the generator writes at the top of an output directory; nothing else
# there is touched (README.md is written by hand).
GENERATED = ["tiny", "lora", "smollm2", "tokenizer", "manifest.json", "SUMMARY.md"]


def install(stage: pathlib.Path, out: pathlib.Path) -> None:
    """Replaces the generated entries of out with stage's."""
    out.mkdir(parents=True, exist_ok=True)
    for name in GENERATED:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in sorted(stage.iterdir()):
        if p.name not in GENERATED:
            raise AssertionError(f"unexpected output {p.name}")
        shutil.move(str(p), str(out / p.name))


def compare(new: dict, old_path: pathlib.Path) -> list[str]:
    if not old_path.is_file():
        return [f"{old_path} does not exist"]
    import json

    old = json.loads(old_path.read_text())
    a = {f["path"]: f["sha256"] for f in old.get("files", [])}
    b = {f["path"]: f["sha256"] for f in new["files"]}
    diffs = [f"only in {old_path.parent}: {p}" for p in sorted(a.keys() - b.keys())]
    diffs += [f"only in the new run: {p}" for p in sorted(b.keys() - a.keys())]
    diffs += [f"differs: {p}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return diffs


def main() -> int:
    models_default = pathlib.Path(os.environ.get("SELDON_MODELS", pathlib.Path.home() / ".cache/seldon/models"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=pathlib.Path, default=None,
                    help="output directory (default: conformance/references, or "
                    "$SELDON_MODELS/conformance-extended with --extended)")
    ap.add_argument("--models-dir", type=pathlib.Path, default=models_default,
                    help="where scripts/fetch-models.sh put SmolLM2 (default: $SELDON_MODELS "
                    "or ~/.cache/seldon/models)")
    ap.add_argument("--extended", action="store_true",
                    help="build the extended suite (files too large to commit)")
    ap.add_argument("--check", action="store_true",
                    help="regenerate in a temporary directory and compare with the output "
                    "directory's manifest.json instead of replacing it")
    args = ap.parse_args()

    check_versions()
    out = args.out or (args.models_dir / "conformance-extended" if args.extended
                       else ROOT / "conformance" / "references")
    smollm2 = args.models_dir / SMOLLM2
    if not smollm2.is_file() or output.sha256_file(smollm2) != SMOLLM2_SHA256:
        log(f"make_references.py: {smollm2} missing or not the expected file; "
            "run scripts/fetch-models.sh first")
        return 1

    llamacpp.init()
    ggml = Ggml()
    t0 = time.monotonic()
    stage = pathlib.Path(tempfile.mkdtemp(prefix="seldon-refgen-"))
    try:
        build = build_extended if args.extended else build_default
        m = build(stage, ggml, smollm2)
        if args.check:
            diffs = compare(m, out / "manifest.json")
            for d in diffs:
                log(d)
            log(f"check: {len(m['files'])} files, {len(diffs)} differences")
            return 1 if diffs else 0
        install(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"{out}: {len(m['files'])} files, {m['total_bytes']} bytes, "
        f"{len(m['summary'])} cases, {time.monotonic() - t0:.0f} s")
    print((out / "SUMMARY.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
