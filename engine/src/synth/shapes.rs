//! The real models whose shapes `seldon synth` reproduces: hyperparameters as
//! their GGUF conversions by llama.cpp's `convert_hf_to_gguf.py` carry them.

/// The GGUF architectures synth writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama`: Llama 2/3, SmolLM2.
    Llama,
    /// `qwen3`: per-head RMSNorm on q and k (`attn_q_norm`, `attn_k_norm`), and
    /// a head size that need not be `n_embd / n_head`.
    Qwen3,
}

impl Arch {
    /// `general.architecture`, and the prefix of the hyperparameter keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen3 => "qwen3",
        }
    }
}

/// Which real tokenizer's layout (special tokens, pre-tokenizer) the synthetic
/// vocabulary imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabStyle {
    /// SmolLM2: 17 control tokens first (`<|endoftext|>`, `<|im_start|>`,
    /// `<|im_end|>`, ...), pre-tokenizer `smollm`, ChatML.
    SmolLm,
    /// Qwen2/Qwen3: control tokens from 151643, `[PADn]` fillers at the end,
    /// pre-tokenizer `qwen2`, ChatML.
    Qwen2,
    /// Llama 3: 256 control tokens from 128000, pre-tokenizer `llama-bpe`, BOS
    /// added, the Llama 3 header template.
    Llama3,
}

/// A real model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    /// The name `--shape` takes ("qwen3-0.6b").
    pub name: &'static str,
    /// The model it copies, for `general.name` and messages.
    pub real_name: &'static str,
    /// GGUF architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Residual stream width.
    pub n_embd: u64,
    /// FFN hidden width.
    pub n_ff: u64,
    /// Query heads.
    pub n_head: u64,
    /// Key/value heads.
    pub n_head_kv: u64,
    /// Size of one head (q, k and v alike).
    pub head_dim: u64,
    /// Tokens in the vocabulary (rows of `token_embd`).
    pub n_vocab: u64,
    /// Training context length.
    pub n_ctx: u32,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// True when the output projection reuses `token_embd` (no `output.weight`).
    pub tied_embeddings: bool,
    /// Tokenizer layout.
    pub vocab: VocabStyle,
}

/// Every shape synth knows.
pub const SHAPES: [ModelShape; 5] = [
    ModelShape {
        name: "smollm2-135m",
        real_name: "SmolLM2-135M-Instruct",
        arch: Arch::Llama,
        n_layer: 30,
        n_embd: 576,
        n_ff: 1536,
        n_head: 9,
        n_head_kv: 3,
        head_dim: 64,
        n_vocab: 49_152,
        n_ctx: 8192,
        rope_base: 100_000.0,
        rms_eps: 1e-5,
        tied_embeddings: true,
        vocab: VocabStyle::SmolLm,
    },
    ModelShape {
        name: "qwen3-0.6b",
        real_name: "Qwen3-0.6B",
        arch: Arch::Qwen3,
        n_layer: 28,
        n_embd: 1024,
        n_ff: 3072,
        n_head: 16,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 151_936,
        n_ctx: 40_960,
        rope_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied_embeddings: true,
        vocab: VocabStyle::Qwen2,
    },
    ModelShape {
        name: "qwen3-1.7b",
        real_name: "Qwen3-1.7B",
        arch: Arch::Qwen3,
        n_layer: 28,
        n_embd: 2048,
        n_ff: 6144,
        n_head: 16,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 151_936,
        n_ctx: 40_960,
        rope_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied_embeddings: true,
        vocab: VocabStyle::Qwen2,
    },
    ModelShape {
        name: "qwen3-4b",
        real_name: "Qwen3-4B",
        arch: Arch::Qwen3,
        n_layer: 36,
        n_embd: 2560,
        n_ff: 9728,
        n_head: 32,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 151_936,
        n_ctx: 40_960,
        rope_base: 1_000_000.0,
        rms_eps: 1e-6,
        tied_embeddings: true,
        vocab: VocabStyle::Qwen2,
    },
    ModelShape {
        name: "llama3-8b",
        real_name: "Meta-Llama-3-8B-Instruct",
        arch: Arch::Llama,
        n_layer: 32,
        n_embd: 4096,
        n_ff: 14_336,
        n_head: 32,
        n_head_kv: 8,
        head_dim: 128,
        n_vocab: 128_256,
        n_ctx: 8192,
        rope_base: 500_000.0,
        rms_eps: 1e-5,
        tied_embeddings: false,
        vocab: VocabStyle::Llama3,
    },
];

/// The shape named `name` (case-insensitive).
pub fn shape(name: &str) -> Option<&'static ModelShape> {
    SHAPES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The names of all shapes, comma-separated, for messages.
pub fn shape_names() -> String {
    SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}
