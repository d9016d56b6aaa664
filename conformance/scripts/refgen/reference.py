"""An independent float64 forward pass for llama, qwen2, qwen3 and bitnet.

Weights are ggml's dequantized values; activations are never rounded. Its
distance to llama.cpp measures llama.cpp's own activation rounding (Q8 inputs to
quantized matmuls, F16 inputs to F16 matmuls), which is the floor an exact
engine sits on. It follows llama.cpp's graphs (src/models/<arch>.cpp) step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np

from .ggml import field_value

# RoPE pairing per arch (llama_model_rope_type): NORM rotates adjacent pairs
# (2i, 2i+1); NEOX rotates (i, i + n_rot/2).
ROPE_NEOX = {"qwen2": True, "qwen3": True, "bitnet": True, "llama": False}


@dataclass
class HParams:
    """The hyperparameters the forward pass needs, read from GGUF metadata."""

    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    eps: float
    rope_base: float

    @staticmethod
    def from_reader(reader: gguf.GGUFReader) -> "HParams":
        arch = field_value(reader, "general.architecture")
        if arch not in ROPE_NEOX:
            raise ValueError(f"no reference forward pass for arch {arch!r}")

        def key(name, default=None):
            v = field_value(reader, f"{arch}.{name}", default)
            if v is None:
                raise ValueError(f"{arch}.{name} missing")
            return v

        n_embd = int(key("embedding_length"))
        n_head = int(key("attention.head_count"))
        head_dim = int(key("attention.key_length", n_embd // n_head))
        return HParams(
            arch=arch,
            n_embd=n_embd,
            n_layer=int(key("block_count")),
            n_head=n_head,
            n_head_kv=int(key("attention.head_count_kv", n_head)),
            head_dim=head_dim,
            n_rot=int(key("rope.dimension_count", head_dim)),
            eps=float(key("attention.layer_norm_rms_epsilon")),
            rope_base=float(key("rope.freq_base", 10000.0)),
        )


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """ggml_rms_norm over the last axis, then the norm weight."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * _f64(weight)


def rope(x: np.ndarray, pos: np.ndarray, n_rot: int, base: float, neox: bool) -> np.ndarray:
    """Rotary embedding of x [n_tokens, n_heads, head_dim] at positions pos."""
    half = n_rot // 2
    theta = pos[:, None].astype(np.float64) * base ** (-2.0 * np.arange(half) / n_rot)
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class Reference:
    """Weights (float32 dequantized values, widened on use) plus hyperparameters."""

    def __init__(self, hp: HParams, weights: dict[str, np.ndarray]):
        self.hp = hp
        # A copy, so that merging an adapter never reaches the caller's arrays.
        self.w = dict(weights)
        self._wide: dict[str, np.ndarray] = {}

    def _weight(self, name: str) -> np.ndarray:
        """A tensor widened to float64 once, on first use."""
        if name not in self._wide:
            self._wide[name] = _f64(self.w[name])
        return self._wide[name]

    def merge_lora(self, adapter: dict[str, np.ndarray], alpha: float, scale: float) -> None:
        """Folds a LoRA adapter in: W + scale * alpha / r * B @ A (llama-adapter.cpp)."""
        for name, a in adapter.items():
            if not name.endswith(".lora_a"):
                continue
            base = name[: -len(".lora_a")]
            b = adapter[base + ".lora_b"]
            rank = a.shape[0]
            self.w[base] = self._weight(base) + scale * alpha / rank * (_f64(b) @ _f64(a))
            self._wide.pop(base, None)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """x @ W^T, then the optional bias and the optional per-tensor scale."""
        y = x @ self._weight(name + ".weight").T
        if name + ".bias" in self.w:
            y = y + self._weight(name + ".bias")
        if name + ".scale" in self.w:
            y = y * self._weight(name + ".scale").reshape(())
        return y

    def _attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        hp = self.hp
        n = q.shape[0]
        group = hp.n_head // hp.n_head_kv
        mask = np.triu(np.full((n, n), -np.inf), k=1)
        out = np.empty((n, hp.n_head, hp.head_dim))
        for h in range(hp.n_head):
            # llama.cpp broadcasts KV head h // group over a group of query heads.
            kv = h // group
            s = q[:, h, :] @ k[:, kv, :].T / np.sqrt(hp.head_dim) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, h, :] = s @ v[:, kv, :]
        return out.reshape(n, hp.n_head * hp.head_dim)

    def forward(self, tokens: list[int]) -> np.ndarray:
        """Logits [n_tokens, n_vocab] (float64) for a sequence starting at position 0."""
        hp, w = self.hp, self.w
        n = len(tokens)
        pos = np.arange(n)
        neox = ROPE_NEOX[hp.arch]
        x = self._weight("token_embd.weight")[np.asarray(tokens)]
        for il in range(hp.n_layer):
            p = f"blk.{il}."
            h = rms_norm(x, w[p + "attn_norm.weight"], hp.eps)
            q = self._linear(h, p + "attn_q").reshape(n, hp.n_head, hp.head_dim)
            k = self._linear(h, p + "attn_k").reshape(n, hp.n_head_kv, hp.head_dim)
            v = self._linear(h, p + "attn_v").reshape(n, hp.n_head_kv, hp.head_dim)
            if p + "attn_q_norm.weight" in w:  # qwen3: per-head RMSNorm before RoPE
                q = rms_norm(q, w[p + "attn_q_norm.weight"], hp.eps)
                k = rms_norm(k, w[p + "attn_k_norm.weight"], hp.eps)
            q = rope(q, pos, hp.n_rot, hp.rope_base, neox)
            k = rope(k, pos, hp.n_rot, hp.rope_base, neox)
            a = self._attention(q, k, v)
            if p + "attn_sub_norm.weight" in w:  # bitnet
                a = rms_norm(a, w[p + "attn_sub_norm.weight"], hp.eps)
            x = x + self._linear(a, p + "attn_output")
            h = rms_norm(x, w[p + "ffn_norm.weight"], hp.eps)
            f = _silu(self._linear(h, p + "ffn_gate")) * self._linear(h, p + "ffn_up")
            if p + "ffn_sub_norm.weight" in w:  # bitnet
                f = rms_norm(f, w[p + "ffn_sub_norm.weight"], hp.eps)
            x = x + self._linear(f, p + "ffn_down")
        x = rms_norm(x, w["output_norm.weight"], hp.eps)
        out = "output.weight" if "output.weight" in w else "token_embd.weight"
        logits = x @ self._weight(out).T
        if "output.bias" in w:
            logits = logits + self._weight("output.bias")
        return logits


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    z = _f64(logits)
    m = z.max(axis=-1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))


def distances(llama: np.ndarray, ref: np.ndarray) -> dict:
    """How far llama.cpp's logits are from the float64 reference's.

    KL(llama.cpp || f64) per position, in nats; top-1 agreement over positions.
    """
    lp, lq = log_softmax(llama), log_softmax(ref)
    # Clipped at 0: an exact match can round to -1e-17.
    kl = np.maximum((np.exp(lp) * (lp - lq)).sum(axis=-1), 0.0)
    return {
        "max_abs_logit_diff": float(np.abs(_f64(llama) - ref).max()),
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
        "top1_agreement": float((llama.argmax(axis=-1) == ref.argmax(axis=-1)).mean()),
    }
