#!/usr/bin/env python3
"""Writes the tokenizer references the engine's tokenizer tests compare against,
made by llama.cpp itself (llama-cpp-python 0.3.36, the venv of scripts/python-env.sh):

  engine/tests/data/smollm2_tokenizer.json  SmolLM2-135M-Instruct on texts chosen here
      (unicode, code, whitespace runs, special tokens): ids for every combination of
      add_special/parse_special, detokenized text, per-token pieces, the EOG ids.
  engine/tests/data/vocab_corpus_refs.json  llama.cpp's tokenizer corpus (the
      ggml-vocab-*.gguf.inp texts of scripts/fetch-vocabs.sh): ids with
      add_special/parse_special on, and the text llama.cpp detokenizes the
      add_special-off ids to (so tests know where llama.cpp's round trip holds).
  engine/tests/data/tokenizer_random_refs.json  seeded random texts mixing the
      corner cases (all Unicode categories, odd whitespace, contractions, digits,
      special tokens) through every vocabulary, and through the gpt-2 vocabulary
      under each supported pre-tokenizer (a metadata override of tokenizer.ggml.pre).

Usage: VENV_PY=$(scripts/python-env.sh | tail -n1); scripts/fetch-models.sh;
       scripts/fetch-vocabs.sh; $VENV_PY engine/scripts/make_tokenizer_refs.py
"""

import ctypes
import json
import os
import random
import sys
from pathlib import Path

import llama_cpp as L

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("SELDON_MODELS", Path.home() / ".cache/seldon/models"))
SMOLLM2 = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
VOCABS = ["gpt-2", "llama-bpe", "qwen2", "llama-spm"]
SEP = "\n__ggml_vocab_test__\n"

SMOLLM2_TEXTS = [
    "The capital of France is",
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\t",
    "Hello world",
    " Hello world",
    "Hello  world  ",
    "a" + " " * 20 + "b",
    "  \t\n  x  \n",
    "a\n\n\nb\r\nc\r\r",
    "Hello, world! How are you?",
    "I'm sure you'll see they've it's I'D WE'RE don't",
    "3.14159 1,000,000 0x1F 12345678901",
    "x²+y³=z½ ①②③ Ⅻ",
    "Äpfel über Straße",
    "нещо на Български",
    "日本語のテキストです。",
    "Ελληνικά και العربية ١٢٣٤",
    "🦙🦙 emoji 👍🏽 👨‍👩‍👧",
    "ﬁne café cafe\u0301 naïve",
    "fn main() {\n    println!(\"{}\", 1234567);\n}\n",
    "def f(x):\n\treturn x**2  # square\n\n\n",
    "if (a != b && c >= 10) { return 'ok'; } // done",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<reponame>seldon<file_sep>src/main.rs\n<filename>",
    "<|im_start|><|im_start|><|im_end|>",
    "<|im_end",
    " <|im_start|> spaced <|im_end|> ",
    "<jupyter_code>print(1)<jupyter_output>1<empty_output>",
]


def load(path, overrides=None):
    params = L.llama_model_default_params()
    params.vocab_only = True
    if overrides:
        kv = (L.llama_model_kv_override * (len(overrides) + 1))()
        for slot, (key, value) in zip(kv, overrides.items()):
            slot.key = key.encode()
            if isinstance(value, bool):
                slot.tag = L.LLAMA_KV_OVERRIDE_TYPE_BOOL
                slot.value.val_bool = value
            else:
                slot.tag = L.LLAMA_KV_OVERRIDE_TYPE_STR
                slot.value.val_str = value.encode()
        kv[len(overrides)].key = b""
        params.kv_overrides = kv
        load.keep_alive = kv
    model = L.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        sys.exit(f"llama.cpp could not load {path}")
    return model, L.llama_model_get_vocab(model)


def tokenize(vocab, text, add_special, parse_special):
    raw = text.encode()
    n = len(raw) + 8
    buf = (L.llama_token * n)()
    k = L.llama_tokenize(vocab, raw, len(raw), buf, n, add_special, parse_special)
    if k < 0:
        n = -k
        buf = (L.llama_token * n)()
        k = L.llama_tokenize(vocab, raw, len(raw), buf, n, add_special, parse_special)
    return list(buf[:k])


def detokenize(vocab, ids, remove_special, unparse_special):
    toks = (L.llama_token * max(1, len(ids)))(*ids)
    n = 64 + 16 * len(ids)
    out = ctypes.create_string_buffer(n)
    k = L.llama_detokenize(vocab, toks, len(ids), out, n, remove_special, unparse_special)
    if k < 0:
        n = -k
        out = ctypes.create_string_buffer(n)
        k = L.llama_detokenize(vocab, toks, len(ids), out, n, remove_special, unparse_special)
    return out.raw[:k].decode("utf-8")


def piece(vocab, tid, special):
    out = ctypes.create_string_buffer(256)
    k = L.llama_token_to_piece(vocab, tid, out, 256, 0, special)
    return list(out.raw[:k])


def smollm2_refs():
    model, vocab = load(SMOLLM2)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    cases = []
    for text in SMOLLM2_TEXTS:
        ids = {
            f"{'t' if a else 'f'}{'t' if p else 'f'}": tokenize(vocab, text, a, p)
            for a in (False, True)
            for p in (False, True)
        }
        cases.append(
            {
                "text": text,
                "ids": ids,
                "detok_special": detokenize(vocab, ids["tt"], False, True),
                "detok_plain": detokenize(vocab, ids["tt"], False, False),
                "detok_remove_special": detokenize(vocab, ids["tt"], True, False),
                "roundtrip": detokenize(vocab, ids["ff"], False, True),
                "pieces": [piece(vocab, t, True) for t in ids["tt"]],
            }
        )
    refs = {
        "made_by": f"llama-cpp-python {L.__version__} (engine/scripts/make_tokenizer_refs.py)",
        "model": SMOLLM2.name,
        "n_vocab": n_vocab,
        "bos": L.llama_vocab_bos(vocab),
        "eos": L.llama_vocab_eos(vocab),
        "add_bos": bool(L.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(L.llama_vocab_get_add_eos(vocab)),
        "eog": [t for t in range(n_vocab) if L.llama_vocab_is_eog(vocab, t)],
        "cases": cases,
    }
    L.llama_model_free(model)
    return refs


def corpus_refs():
    refs = {"made_by": f"llama-cpp-python {L.__version__} (engine/scripts/make_tokenizer_refs.py)"}
    for name in VOCABS:
        path = MODELS / "vocab" / f"ggml-vocab-{name}.gguf"
        raw = Path(f"{path}.inp").read_text(encoding="utf-8")
        texts = raw.split(SEP)
        if texts and texts[-1] == "":
            texts.pop()
        model, vocab = load(path)
        refs[name] = [
            {
                "text": t,
                "ids_special": tokenize(vocab, t, True, True),
                "roundtrip": detokenize(vocab, tokenize(vocab, t, False, False), False, True),
            }
            for t in texts
        ]
        L.llama_model_free(model)
    return refs


ATOMS = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + [" "] * 12
    + ["  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u000b", "\u000c"]
    + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    + ["'s", "'T", "'re", "'LL", "'ve", "'m", "'d", "n't", "123", "4567", "1,000", "3.14"]
    + ["hello", " world", "The", " capital", "ing", " über", " naïve"]
    + list("éÄßжБλ日本アア한عאกǅ")
    + ["\u0301", "\u0903", "\u20dd", "²", "½", "Ⅻ", "٣", "१", "①"]
    + ["\u00a0", "\u3000", "\u2009", "\u0085", "\u2028", "\u1680", "\u200b", "\u00ad"]
    + ["«", "»", "。", "、", "—", "…", "¿", "€", "©", "±", "^", "🦙", "👍🏽", "\u200d", "😀"]
    + ["\u0000", "\u0001", "\u007f", "\ue000", "\u0378", "\uffff", "\U0010fffd", "\ufffd"]
    + ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "[PAD151650]"]
    + ["<|begin_of_text|>", "<|eot_id|>", "<reponame>", "<|im_end", "<s"]
)

# (reference name, vocabulary file, metadata overrides)
RANDOM_CONFIGS = [
    ("gpt-2", "vocab/ggml-vocab-gpt-2.gguf", {}),
    ("gpt-2:default", "vocab/ggml-vocab-gpt-2.gguf", {"tokenizer.ggml.pre": "default"}),
    ("gpt-2:falcon", "vocab/ggml-vocab-gpt-2.gguf", {"tokenizer.ggml.pre": "falcon"}),
    ("gpt-2:starcoder", "vocab/ggml-vocab-gpt-2.gguf", {"tokenizer.ggml.pre": "starcoder"}),
    ("gpt-2:llama-bpe", "vocab/ggml-vocab-gpt-2.gguf", {"tokenizer.ggml.pre": "llama-bpe"}),
    ("gpt-2:qwen2", "vocab/ggml-vocab-gpt-2.gguf", {"tokenizer.ggml.pre": "qwen2"}),
    ("llama-bpe", "vocab/ggml-vocab-llama-bpe.gguf", {}),
    ("qwen2", "vocab/ggml-vocab-qwen2.gguf", {}),
    ("llama-spm", "vocab/ggml-vocab-llama-spm.gguf", {}),
    ("llama-spm:no-space-prefix", "vocab/ggml-vocab-llama-spm.gguf", {"tokenizer.ggml.add_space_prefix": False}),
    ("smollm2", SMOLLM2.name, {}),
]


def random_refs():
    rng = random.Random(20250601)
    texts = ["".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 14))) for _ in range(90)]
    refs = {
        "made_by": f"llama-cpp-python {L.__version__} (engine/scripts/make_tokenizer_refs.py)",
        "texts": texts,
        "configs": [],
    }
    for name, file, overrides in RANDOM_CONFIGS:
        model, vocab = load(MODELS / file, overrides)
        cases = []
        for t in texts:
            ff = tokenize(vocab, t, False, False)
            tt = tokenize(vocab, t, True, True)
            cases.append(
                {
                    "ff": " ".join(map(str, ff)),
                    "tt": " ".join(map(str, tt)),
                    "decode_ff": detokenize(vocab, ff, False, True),
                    "plain_tt": detokenize(vocab, tt, True, False),
                }
            )
        refs["configs"].append({"name": name, "file": file, "overrides": overrides, "cases": cases})
        L.llama_model_free(model)
    return refs


def write(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main():
    L.llama_backend_init()
    data = REPO / "engine" / "tests" / "data"
    data.mkdir(parents=True, exist_ok=True)
    write(data / "smollm2_tokenizer.json", smollm2_refs())
    write(data / "vocab_corpus_refs.json", corpus_refs())
    write(data / "tokenizer_random_refs.json", random_refs())


if __name__ == "__main__":
    main()
