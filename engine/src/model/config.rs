//! Hyperparameters from GGUF metadata (`<arch>.block_count`, ...), with the
//! defaults llama.cpp's loader applies when an optional key is absent.

use seldon_formats::gguf::{GgufFile, Value};

use super::ModelError;

/// The architectures seldon runs (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, SmolLM2, Mistral-style: normal RoPE, optional `rope_freqs`.
    Llama,
    /// Qwen2: q/k/v biases, NeoX RoPE.
    Qwen2,
    /// Qwen3: per-head q/k RMSNorm before NeoX RoPE, no biases.
    Qwen3,
    /// BitNet b1.58: sub-norms before `attn_output` and `ffn_down`, optional
    /// per-tensor scales, NeoX RoPE, output tied to the embeddings.
    Bitnet,
}

impl Arch {
    /// Parses `general.architecture`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "bitnet" => Some(Self::Bitnet),
            _ => None,
        }
    }

    /// The name GGUF keys are prefixed with.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Bitnet => "bitnet",
        }
    }

    /// Whether RoPE pairs `(i, i + n_rot/2)` (NeoX) rather than `(2i, 2i+1)`;
    /// llama.cpp's `llama_model_rope_type`.
    pub fn rope_neox(self) -> bool {
        !matches!(self, Self::Llama)
    }
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The architecture.
    pub arch: Arch,
    /// Transformer blocks (`block_count`).
    pub n_layer: usize,
    /// Residual width (`embedding_length`).
    pub n_embd: usize,
    /// Feed-forward width (`feed_forward_length`).
    pub n_ff: usize,
    /// Query heads (`attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// Elements per key/query head (`attention.key_length`, default `n_embd / n_head`).
    pub head_dim_k: usize,
    /// Elements per value head (`attention.value_length`, default `head_dim_k`).
    pub head_dim_v: usize,
    /// Rotated elements per head (`rope.dimension_count`, default `head_dim_k`).
    pub n_rot: usize,
    /// `attention.layer_norm_rms_epsilon`.
    pub rms_eps: f32,
    /// `rope.freq_base` (default 10000).
    pub rope_freq_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling, else 1.
    pub rope_freq_scale: f32,
    /// The softmax scale of attention scores (`attention.scale`, default
    /// `1 / sqrt(head_dim_k)`).
    pub attention_scale: f32,
    /// The training context (`context_length`).
    pub n_ctx_train: usize,
    /// Vocabulary size (`vocab_size`, else the tokenizer's token count, else
    /// the embedding's rows).
    pub n_vocab: usize,
}

impl ModelConfig {
    /// Reads the hyperparameters of `file`; every missing required key,
    /// inconsistent value or unsupported feature is an error naming it.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let arch_name = file
            .architecture()
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let arch = Arch::from_name(arch_name)
            .ok_or_else(|| ModelError::UnsupportedArch(arch_name.to_string()))?;
        let keys = Keys { file, arch };

        let n_layer = keys.required_usize("block_count")?;
        let n_embd = keys.required_usize("embedding_length")?;
        let n_ff = keys.required_usize("feed_forward_length")?;
        let n_head = keys.required_usize("attention.head_count")?;
        let n_head_kv = keys
            .optional_usize("attention.head_count_kv")?
            .unwrap_or(n_head);
        if n_layer == 0 || n_embd == 0 || n_ff == 0 || n_head == 0 {
            return Err(keys.bad("block_count", "a dimension of the model is zero"));
        }
        if n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(keys.bad(
                "attention.head_count_kv",
                &format!("{n_head_kv} does not divide head_count {n_head}"),
            ));
        }
        let head_dim_k = match keys.optional_usize("attention.key_length")? {
            Some(v) => v,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(keys.bad(
                    "attention.key_length",
                    "absent, and embedding_length is not a multiple of head_count",
                ));
            }
        };
        let head_dim_v = keys
            .optional_usize("attention.value_length")?
            .unwrap_or(head_dim_k);
        if head_dim_k == 0 || head_dim_v == 0 {
            return Err(keys.bad("attention.key_length", "zero head size"));
        }
        let n_rot = keys
            .optional_usize("rope.dimension_count")?
            .unwrap_or(head_dim_k);
        if n_rot > head_dim_k || n_rot % 2 != 0 {
            return Err(keys.bad(
                "rope.dimension_count",
                &format!("{n_rot} must be even and at most the head size {head_dim_k}"),
            ));
        }
        let rms_eps = keys.required_f32("attention.layer_norm_rms_epsilon")?;
        let rope_freq_base = keys.optional_f32("rope.freq_base")?.unwrap_or(10_000.0);
        let rope_freq_scale = keys.rope_freq_scale()?;
        let attention_scale = match keys.optional_f32("attention.scale")? {
            Some(s) if s != 0.0 => s,
            _ => 1.0 / (head_dim_k as f32).sqrt(),
        };
        let n_ctx_train = keys.required_usize("context_length")?;
        let n_vocab = match keys.optional_usize("vocab_size")? {
            Some(v) => v,
            None => match file.get_array("tokenizer.ggml.tokens") {
                Some(a) => a.len(),
                None => file
                    .tensor("token_embd.weight")
                    .and_then(|t| usize::try_from(t.ne()[1]).ok())
                    .ok_or_else(|| ModelError::MissingKey(format!("{}.vocab_size", arch.name())))?,
            },
        };
        if n_vocab == 0 {
            return Err(keys.bad("vocab_size", "the vocabulary is empty"));
        }
        Ok(Self {
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_rot,
            rms_eps,
            rope_freq_base,
            rope_freq_scale,
            attention_scale,
            n_ctx_train,
            n_vocab,
        })
    }

    /// Query width: `n_head * head_dim_k`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim_k
    }

    /// Key width per token: `n_head_kv * head_dim_k`.
    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    /// Value width per token: `n_head_kv * head_dim_v`.
    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    /// Attention output width: `n_head * head_dim_v`.
    pub fn attn_out_dim(&self) -> usize {
        self.n_head * self.head_dim_v
    }
}

/// Typed access to `<arch>.<suffix>` keys.
struct Keys<'a> {
    file: &'a GgufFile,
    arch: Arch,
}

impl Keys<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch.name())
    }

    fn bad(&self, suffix: &str, reason: &str) -> ModelError {
        ModelError::BadKey {
            key: self.key(suffix),
            reason: reason.to_string(),
        }
    }

    fn optional_usize(&self, suffix: &str) -> Result<Option<usize>, ModelError> {
        let Some(value) = self.file.get(&self.key(suffix)) else {
            return Ok(None);
        };
        // Some converters write per-layer arrays (OpenELM); for the dense models
        // supported here they must all agree.
        let scalar = match value {
            Value::Array(a) => {
                let mut items = a.items.iter().map(Value::as_u64);
                let first = items.next().flatten();
                if first.is_none() || items.any(|v| v != first) {
                    return Err(self.bad(suffix, "per-layer values differ (not supported)"));
                }
                first
            }
            v => v.as_u64(),
        };
        let v = scalar.ok_or_else(|| self.bad(suffix, "not a non-negative integer"))?;
        // Caps far above any real model keep later products from overflowing.
        if v > 1 << 24 {
            return Err(self.bad(suffix, &format!("{v} is implausibly large")));
        }
        usize::try_from(v)
            .map(Some)
            .map_err(|_| self.bad(suffix, "does not fit usize"))
    }

    fn required_usize(&self, suffix: &str) -> Result<usize, ModelError> {
        self.optional_usize(suffix)?
            .ok_or_else(|| ModelError::MissingKey(self.key(suffix)))
    }

    fn optional_f32(&self, suffix: &str) -> Result<Option<f32>, ModelError> {
        match self.file.get(&self.key(suffix)) {
            None => Ok(None),
            Some(v) => match v.as_f32() {
                Some(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(self.bad(suffix, "not a finite float")),
            },
        }
    }

    fn required_f32(&self, suffix: &str) -> Result<f32, ModelError> {
        self.optional_f32(suffix)?
            .ok_or_else(|| ModelError::MissingKey(self.key(suffix)))
    }

    /// llama.cpp: `rope.scaling.type` (none/linear/yarn/longrope) with
    /// `rope.scaling.factor`, or the older `rope.scale_linear`.
    fn rope_freq_scale(&self) -> Result<f32, ModelError> {
        let kind = self.file.get_str(&self.key("rope.scaling.type"));
        let factor = match self.optional_f32("rope.scaling.factor")? {
            Some(f) => Some(f),
            None => self.optional_f32("rope.scale_linear")?,
        };
        match kind {
            None | Some("linear") | Some("none") => {}
            Some(other) => {
                return Err(ModelError::Unsupported(format!(
                    "rope scaling type \"{other}\" ({})",
                    self.key("rope.scaling.type")
                )));
            }
        }
        if kind == Some("none") {
            return Ok(1.0);
        }
        match factor {
            None => Ok(1.0),
            Some(f) if f == 0.0 || f == 1.0 => Ok(1.0),
            Some(f) if f > 0.0 => Ok(1.0 / f),
            Some(f) => Err(self.bad("rope.scaling.factor", &format!("{f} is negative"))),
        }
    }
}
