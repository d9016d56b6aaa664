"""Tiny random models (width 256, 2 layers) for llama, qwen2, qwen3 and bitnet.

Width, attention width (n_head * head_dim) and n_ff are all multiples of 256, so
every linear tensor's rows can hold k-quant and TQ blocks and llama.cpp's
quantizer uses the requested types without falling back. Every arch has GQA
with two KV heads (one KV head could not tell h // group from h % n_kv).
Norm weights are random, not ones, so that a skipped norm changes the logits.

Weights are drawn from fixed seeds and rounded to values that both bfloat16 and
float16 hold exactly (8 significant bits, no value below 2^-17): the F16 model
then has the same weights as the F32 one, as with a bf16-trained checkpoint.
"""

from __future__ import annotations

import pathlib
import zlib
from dataclasses import dataclass

import gguf
import numpy as np

from . import vocab as vocab_mod

N_EMBD = 256
N_LAYER = 2
N_FF = 256
CONTEXT_LENGTH = 256
BASE_SEED = 0x5E1D0


@dataclass(frozen=True)
class TinyArch:
    """Shape and flavour of one tiny model."""

    arch: str
    tokenizer: str  # "spm" or "bpe"
    n_head: int
    n_head_kv: int
    head_dim: int
    rope_base: float
    eps: float
    tied_output: bool
    qkv_bias: bool = False
    qk_norm: bool = False
    bitnet: bool = False

    @property
    def n_q(self) -> int:
        return self.n_head * self.head_dim

    @property
    def n_kv(self) -> int:
        return self.n_head_kv * self.head_dim

    def seed(self, salt: str = "") -> int:
        return BASE_SEED ^ zlib.crc32((self.arch + salt).encode())


ARCHS = {
    # llama: SPM vocab, untied output.weight, adjacent-pair (NORM) RoPE.
    "llama": TinyArch("llama", "spm", 4, 2, 64, 10000.0, 1e-5, tied_output=False),
    # qwen2: BPE vocab, q/k/v biases, NEOX RoPE, tied output.
    "qwen2": TinyArch("qwen2", "bpe", 4, 2, 64, 1000000.0, 1e-6, True, qkv_bias=True),
    # qwen3: head_dim 64 != width / n_head = 32 (attention width 512, as in the
    # real models), per-head q/k RMSNorm, key_length in the metadata.
    "qwen3": TinyArch("qwen3", "bpe", 8, 2, 64, 1000000.0, 1e-6, True, qk_norm=True),
    # bitnet: ternary weights with per-tensor .scale tensors, attn/ffn sub-norms,
    # output tied to token_embd (its graph has no output.weight).
    "bitnet": TinyArch("bitnet", "spm", 4, 2, 64, 500000.0, 1e-5, True, bitnet=True),
}


def to_grid(x: np.ndarray) -> np.ndarray:
    """Rounds to the nearest bfloat16 (ties to even) and flushes |x| < 2^-17 to 0.

    Such values are exact in float16 too, down to its subnormals.
    """
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    out = bits.astype(np.uint32).view(np.float32)
    out = np.where(np.abs(out) < 2.0**-17, np.float32(0), out).astype(np.float32)
    if not np.array_equal(out, out.astype(np.float16).astype(np.float32)):
        raise AssertionError("grid values must be exact in float16")
    return out


def make_vocab(cfg: TinyArch) -> vocab_mod.Vocab:
    return vocab_mod.spm_vocab() if cfg.tokenizer == "spm" else vocab_mod.bpe_vocab()


def random_weights(cfg: TinyArch, n_vocab: int) -> dict[str, np.ndarray]:
    """All tensors of a tiny model, numpy order (n_out, n_in), float32 on the grid."""
    rng = np.random.default_rng(cfg.seed())
    t: dict[str, np.ndarray] = {}

    def linear(n_out: int, n_in: int, gain: float = 1.0) -> np.ndarray:
        return rng.normal(0.0, gain / np.sqrt(n_in), size=(n_out, n_in))

    def norm(n: int) -> np.ndarray:
        return rng.uniform(0.5, 1.5, size=n)

    def ternary(n_out: int, n_in: int) -> np.ndarray:
        return rng.choice(np.array([-1.0, 0.0, 1.0]), size=(n_out, n_in), p=[0.3, 0.4, 0.3])

    # Small embeddings next to layer outputs of rms ~1: with a tied output a
    # large embedding makes every model repeat its last input token. The output
    # norm's larger weights spread the logits (std ~5) so that most greedy
    # margins stand clear of rounding noise while the distributions stay far
    # from one-hot.
    t["token_embd.weight"] = rng.normal(0.0, 0.05, size=(n_vocab, N_EMBD))
    t["output_norm.weight"] = rng.uniform(4.0, 8.0, size=N_EMBD)
    if not cfg.tied_output:
        t["output.weight"] = rng.normal(0.0, 0.05, size=(n_vocab, N_EMBD))
    shapes = {
        "attn_q": (cfg.n_q, N_EMBD, 1.0),
        "attn_k": (cfg.n_kv, N_EMBD, 1.0),
        "attn_v": (cfg.n_kv, N_EMBD, 1.0),
        "attn_output": (N_EMBD, cfg.n_q, 1.0),
        "ffn_gate": (N_FF, N_EMBD, 1.0),
        "ffn_up": (N_FF, N_EMBD, 1.0),
        "ffn_down": (N_EMBD, N_FF, 1.0),
    }
    for il in range(N_LAYER):
        p = f"blk.{il}."
        t[p + "attn_norm.weight"] = norm(N_EMBD)
        t[p + "ffn_norm.weight"] = norm(N_EMBD)
        for name, (n_out, n_in, gain) in shapes.items():
            if cfg.bitnet:
                t[p + name + ".weight"] = ternary(n_out, n_in)
                # A ternary weight of density 0.6 times this scale has the
                # variance of the Gaussian ones.
                t[p + name + ".scale"] = np.array([gain / np.sqrt(0.6 * n_in)])
            else:
                t[p + name + ".weight"] = linear(n_out, n_in, gain)
        if cfg.qkv_bias:
            t[p + "attn_q.bias"] = rng.normal(0.0, 0.3, size=cfg.n_q)
            t[p + "attn_k.bias"] = rng.normal(0.0, 0.3, size=cfg.n_kv)
            t[p + "attn_v.bias"] = rng.normal(0.0, 0.3, size=cfg.n_kv)
        if cfg.qk_norm:
            t[p + "attn_q_norm.weight"] = norm(cfg.head_dim)
            t[p + "attn_k_norm.weight"] = norm(cfg.head_dim)
        if cfg.bitnet:
            t[p + "attn_sub_norm.weight"] = norm(cfg.n_q)
            t[p + "ffn_sub_norm.weight"] = norm(N_FF)
    return {k: to_grid(v) for k, v in t.items()}


def write_model(cfg: TinyArch, path: pathlib.Path) -> vocab_mod.Vocab:
    """Writes the F32 model; returns its vocabulary."""
    voc = make_vocab(cfg)
    weights = random_weights(cfg, len(voc))
    w = gguf.GGUFWriter(str(path), cfg.arch)
    w.add_name(f"seldon-tiny-{cfg.arch}")
    w.add_file_type(0)  # LLAMA_FTYPE_ALL_F32
    w.add_context_length(CONTEXT_LENGTH)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_layer_norm_rms_eps(cfg.eps)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_rope_dimension_count(cfg.head_dim)
    if cfg.head_dim * cfg.n_head != N_EMBD:
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    vocab_mod.write_vocab(w, voc)
    for name, arr in weights.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return voc


LORA_TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
LORA_RANK = 4
LORA_ALPHA = 8.0


def write_lora(cfg: TinyArch, path: pathlib.Path) -> dict[str, np.ndarray]:
    """A random LoRA adapter in llama.cpp's GGUF format for the tiny model of cfg.

    lora_a has numpy shape (r, n_in) (ggml ne [n_in, r]) and lora_b (n_out, r);
    llama.cpp applies W + scale * alpha / r * B @ A. B is not zero (a fresh
    PEFT adapter's would be) so that the adapter moves the logits.
    """
    rng = np.random.default_rng(cfg.seed("lora"))
    dims = {
        "attn_q": (cfg.n_q, N_EMBD),
        "attn_k": (cfg.n_kv, N_EMBD),
        "attn_v": (cfg.n_kv, N_EMBD),
        "attn_output": (N_EMBD, cfg.n_q),
        "ffn_gate": (N_FF, N_EMBD),
        "ffn_up": (N_FF, N_EMBD),
        "ffn_down": (N_EMBD, N_FF),
    }
    tensors: dict[str, np.ndarray] = {}
    for il in range(N_LAYER):
        for name in LORA_TARGETS:
            n_out, n_in = dims[name]
            base = f"blk.{il}.{name}.weight"
            tensors[base + ".lora_a"] = to_grid(rng.normal(0.0, 1.0 / np.sqrt(n_in), (LORA_RANK, n_in)))
            tensors[base + ".lora_b"] = to_grid(rng.normal(0.0, 0.05, (n_out, LORA_RANK)))
    w = gguf.GGUFWriter(str(path), cfg.arch)
    w.add_name(f"seldon-tiny-{cfg.arch}-lora")
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", LORA_ALPHA)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors
