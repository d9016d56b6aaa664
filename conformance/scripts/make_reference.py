#!/usr/bin/env python3
"""One reference case from llama.cpp for any model: the entry point behind
`seldon-conformance make-reference`.

    make_reference.py --model M (--text-file F | --tokens-file F) --out CASE.json [--f64-reference]

Writes CASE.json (the case.json format of conformance/references/README.md,
with kind "custom" and model_in "path") and the logits beside it as
<stem>.logits.npy, float32 [n_tokens, n_vocab]. llama.cpp runs with the
committed references' settings (refgen/llamacpp.py: CPU, flash attention off,
F32 KV cache), with the context grown to fit the tokens and the greedy run.
--f64-reference also runs refgen's float64 forward pass (slow on large models)
and records llama.cpp's distance from it.

Needs llama-cpp-python 0.3.36, gguf 0.19.0 and numpy (conformance/scripts/requirements.txt).
Prints one JSON line on success: {"case": ..., "logits": ..., "n_tokens": ..., "n_vocab": ...}.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from refgen import cases, llamacpp, output  # noqa: E402
from refgen import ggml as ggml_mod  # noqa: E402

FTYPE_NAMES = {v: k for k, v in llamacpp.FTYPES.items()}


def read_tokens(path: pathlib.Path) -> list[int]:
    """A JSON list of ids, or ids separated by whitespace or commas."""
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        ids = json.loads(text)
    else:
        ids = [int(t) for t in text.replace(",", " ").split()]
    if not ids or not all(isinstance(t, int) and t >= 0 for t in ids):
        raise SystemExit(f"make_reference.py: {path} holds no list of non-negative token ids")
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=pathlib.Path)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text-file", type=pathlib.Path)
    src.add_argument("--tokens-file", type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--f64-reference", action="store_true")
    args = ap.parse_args()

    llamacpp.init()
    model_path = args.model.resolve()
    model = llamacpp.Model(model_path)
    try:
        prompt = None
        if args.text_file is not None:
            text = args.text_file.read_text(encoding="utf-8")
            prompt = {"text": text, "add_special": True, "parse_special": False}
            tokens = model.tokenize(text, True, False)
        else:
            tokens = read_tokens(args.tokens_file)
        n_vocab = model.n_vocab
        if not tokens or max(tokens) >= n_vocab:
            raise SystemExit(f"make_reference.py: token ids must be in 0..{n_vocab - 1}")
        # The context must hold the prompt and the greedy run; one batch takes it all.
        n_ctx = max(256, -(-(len(tokens) + cases.N_GREEDY) // 256) * 256)
        for key in ("n_ctx", "n_batch", "n_ubatch"):
            llamacpp.CONTEXT_SETTINGS[key] = n_ctx
        logits, greedy, margins = llamacpp.run_case(model, tokens, cases.N_GREEDY)
    finally:
        model.close()

    import gguf  # noqa: PLC0415 (after llama.cpp, which the user is told to install first)

    reader = gguf.GGUFReader(str(model_path))
    ftype = ggml_mod.field_value(reader, "general.file_type")
    dist = None
    if args.f64_reference:
        _, ref = cases._reference(model_path, output.sha256_file(model_path), ggml_mod.Ggml())
        dist = cases.distances(logits, ref.forward(tokens))

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    logits_name = f"{out.stem}.logits.npy"
    desc = output.write_npy(out.parent / logits_name, logits, "float32")
    case = {
        "name": out.stem,
        "kind": "custom",
        "arch": ggml_mod.field_value(reader, "general.architecture"),
        "type": FTYPE_NAMES.get(ftype, f"ftype {ftype}") if ftype is not None else "unknown",
        "model": str(model_path),
        "model_in": "path",
        "model_sha256": output.sha256_file(model_path),
        "tensor_types": cases.tensor_type_counts(reader),
        "n_vocab": n_vocab,
        "prompt": prompt,
        "tokens": tokens,
        "n_tokens": len(tokens),
        "adapters": [],
        "greedy": {"tokens": greedy, "margins": margins, "min_margin": min(margins)},
        "f64_reference": dist,
        "settings": llamacpp.CONTEXT_SETTINGS,
        "logits": {"file": logits_name, **desc},
    }
    output.write_json(out, case)
    print(json.dumps({"case": str(out), "logits": str(out.parent / logits_name), "n_tokens": len(tokens), "n_vocab": n_vocab}))


if __name__ == "__main__":
    main()
