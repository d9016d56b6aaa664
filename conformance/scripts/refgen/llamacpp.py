"""A thin layer over llama-cpp-python's low-level (ctypes) API.

Only what the references need: load a model, tokenize, decode a whole prompt
in one batch with logits at every position, continue greedily one token at a
time, quantize a file, and apply LoRA adapters. Every context is made with the
settings REFERENCES.md names for tight comparisons: flash attention off and an
F32 KV cache.
"""

from __future__ import annotations

import ctypes
import pathlib

import llama_cpp as lc
import numpy as np

GGML_TYPE_F32 = 0
FLASH_ATTN_DISABLED = 0

# Everything a context is made with; recorded in every case's JSON.
CONTEXT_SETTINGS = {
    "n_ctx": 256,
    "n_batch": 256,
    "n_ubatch": 256,
    "n_threads": 2,
    "flash_attn_type": "disabled",
    "type_k": "F32",
    "type_v": "F32",
    "n_gpu_layers": 0,
    "decode": "prompt in one llama_decode with logits for every position; "
    "greedy steps one token per llama_decode",
}

# llama_ftype values (llama.h) for the types the references use.
FTYPES = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_M": 12,
    "Q4_K_M": 15,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "TQ1_0": 36,
    "TQ2_0": 37,
    "BF16": 32,
}

_LOG_CALLBACK = None


class LlamaError(RuntimeError):
    """A llama.cpp call failed."""


def init() -> None:
    """Initializes the backend and silences llama.cpp's logging."""
    global _LOG_CALLBACK

    def _quiet(level, text, user_data):
        return None

    # Kept in a global: ctypes callbacks must outlive every call into llama.cpp.
    _LOG_CALLBACK = lc.llama_log_callback(_quiet)
    lc.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    lc.llama_backend_init()


def quantize(src: pathlib.Path, dst: pathlib.Path, type_name: str, allow_requantize=False) -> None:
    """Quantizes a GGUF file with llama.cpp's own mixes (llama-quantize)."""
    params = lc.llama_model_quantize_default_params()
    params.nthread = CONTEXT_SETTINGS["n_threads"]
    params.ftype = FTYPES[type_name]
    params.allow_requantize = allow_requantize
    rc = lc.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise LlamaError(f"llama_model_quantize {src} -> {type_name} failed ({rc})")


class Model:
    """A loaded model on the CPU backend, with its vocabulary."""

    def __init__(self, path: pathlib.Path, vocab_only: bool = False):
        params = lc.llama_model_default_params()
        params.n_gpu_layers = 0
        params.vocab_only = vocab_only
        self.ptr = lc.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise LlamaError(f"llama.cpp cannot load {path}")
        self.vocab = lc.llama_model_get_vocab(self.ptr)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)

    def close(self) -> None:
        if self.ptr:
            lc.llama_model_free(self.ptr)
            self.ptr = None

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        buf = (lc.llama_token * cap)()
        n = lc.llama_tokenize(self.vocab, raw, len(raw), buf, cap, add_special, parse_special)
        if n < 0:
            raise LlamaError(f"llama_tokenize needs {-n} tokens, more than {cap}")
        return list(buf[:n])

    def lora(self, path: pathlib.Path):
        adapter = lc.llama_adapter_lora_init(self.ptr, str(path).encode())
        if not adapter:
            raise LlamaError(f"llama.cpp cannot load the adapter {path}")
        return adapter


class Context:
    """A decoding context with the reference settings (no flash attention, F32 KV)."""

    def __init__(self, model: Model):
        s = CONTEXT_SETTINGS
        params = lc.llama_context_default_params()
        params.n_ctx = s["n_ctx"]
        params.n_batch = s["n_batch"]
        params.n_ubatch = s["n_ubatch"]
        params.n_seq_max = 1
        params.n_threads = s["n_threads"]
        params.n_threads_batch = s["n_threads"]
        params.flash_attn_type = FLASH_ATTN_DISABLED
        params.type_k = GGML_TYPE_F32
        params.type_v = GGML_TYPE_F32
        params.no_perf = True
        self.model = model
        self.ptr = lc.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise LlamaError("llama_init_from_model failed")
        self.n_pos = 0

    def close(self) -> None:
        if self.ptr:
            lc.llama_free(self.ptr)
            self.ptr = None

    def set_loras(self, adapters, scales) -> None:
        n = len(adapters)
        arr = (lc.llama_adapter_lora_p_ctypes * max(n, 1))(*adapters)
        sc = (ctypes.c_float * max(n, 1))(*scales)
        if lc.llama_set_adapters_lora(self.ptr, arr if n else None, n, sc if n else None) != 0:
            raise LlamaError("llama_set_adapters_lora failed")

    def reset(self) -> None:
        lc.llama_memory_clear(lc.llama_get_memory(self.ptr), True)
        self.n_pos = 0

    def decode(self, tokens: list[int], all_logits: bool) -> np.ndarray:
        """Decodes tokens at the next positions as one batch.

        Returns float32 logits [n, n_vocab] for every token when all_logits, else
        [1, n_vocab] for the last one.
        """
        n = len(tokens)
        if self.n_pos + n > CONTEXT_SETTINGS["n_ctx"]:
            raise LlamaError("sequence longer than the context")
        batch = lc.llama_batch_init(n, 0, 1)
        try:
            batch.n_tokens = n
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = self.n_pos + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if (all_logits or i == n - 1) else 0
            rc = lc.llama_decode(self.ptr, batch)
            if rc != 0:
                raise LlamaError(f"llama_decode failed ({rc})")
        finally:
            lc.llama_batch_free(batch)
        self.n_pos += n
        nv = self.model.n_vocab
        rows = range(n) if all_logits else [n - 1]
        out = np.empty((len(rows), nv), dtype=np.float32)
        for j, i in enumerate(rows):
            ptr = lc.llama_get_logits_ith(self.ptr, i)
            out[j] = np.ctypeslib.as_array(ptr, shape=(nv,))
        return out


def top1_margin(logits: np.ndarray) -> tuple[int, float]:
    """The greedy token (lowest id among ties) and its logit lead over the runner-up."""
    best = int(np.argmax(logits))
    rest = np.delete(logits, best)
    return best, float(logits[best] - rest.max())


def run_case(model: Model, tokens: list[int], n_greedy: int, loras=None):
    """One reference: batched logits over the prompt, then greedy decoding.

    Returns (logits [n, n_vocab] float32, greedy tokens, margins).
    """
    ctx = Context(model)
    try:
        if loras:
            ctx.set_loras([a for a, _ in loras], [s for _, s in loras])
        logits = ctx.decode(tokens, all_logits=True)
        greedy, margins = [], []
        nxt, margin = top1_margin(logits[-1])
        for step in range(n_greedy):
            greedy.append(nxt)
            margins.append(margin)
            if step + 1 < n_greedy:
                nxt, margin = top1_margin(ctx.decode([nxt], all_logits=False)[0])
        return logits, greedy, margins
    finally:
        ctx.close()
