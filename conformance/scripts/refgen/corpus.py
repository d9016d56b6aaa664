"""llama.cpp's tokenizations of the text corpus, for one vocabulary."""

from __future__ import annotations

import pathlib

from . import llamacpp, output
from .texts import TOKENIZER_CORPUS

# (add_special, parse_special): plain text, and text as a chat prompt would be
# tokenized (BOS added where the vocabulary asks for it, control tokens parsed).
MODES = [(False, False), (True, True)]


def write(root: pathlib.Path, rel: str, model_path: pathlib.Path, model_rel: str, model_in: str) -> None:
    model = llamacpp.Model(model_path, vocab_only=True)
    try:
        entries = []
        for text in TOKENIZER_CORPUS:
            for add_special, parse_special in MODES:
                entries.append({
                    "text": text,
                    "add_special": add_special,
                    "parse_special": parse_special,
                    "tokens": model.tokenize(text, add_special, parse_special),
                })
        doc = {
            "model": model_rel,
            "model_in": model_in,
            "model_sha256": output.sha256_file(model_path),
            "n_vocab": model.n_vocab,
            "cases": entries,
        }
    finally:
        model.close()
    output.write_json(root / rel, doc)
