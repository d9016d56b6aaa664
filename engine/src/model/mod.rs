//! Llama-family models (llama, qwen2, qwen3, bitnet): hyperparameters and
//! tensors from a GGUF file, a CPU reference forward pass (the oracle) and the
//! GPU forward pass, both behind [`Forward`].

pub mod config;
pub mod cpu;
pub mod gpu;
pub mod weights;

use std::path::Path;

use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufError, GgufFile};

pub use config::{Arch, ModelConfig};
pub use cpu::CpuModel;
pub use gpu::{GpuModel, GpuModelOptions, GpuSession, SessionOptions};
pub use weights::{LayerWeights, Linear, Matrix, ModelWeights};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `general.architecture` names a model seldon does not run.
    #[error("unsupported architecture \"{0}\" (supported: llama, qwen2, qwen3, bitnet)")]
    UnsupportedArch(String),
    /// A model feature seldon does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A required metadata key is absent.
    #[error("missing metadata key {0}")]
    MissingKey(String),
    /// A metadata key has an unusable value.
    #[error("metadata key {key}: {reason}")]
    BadKey {
        /// The full key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required tensor is absent.
    #[error("missing tensor {0}")]
    MissingTensor(String),
    /// A tensor's shape disagrees with the hyperparameters.
    #[error("tensor {name} has shape {found}, expected {expected}")]
    TensorShape {
        /// The tensor.
        name: String,
        /// The shape the hyperparameters imply (ggml order).
        expected: String,
        /// The shape in the file.
        found: String,
    },
    /// A tensor's type has no dequantizer (CPU) or kernel (GPU).
    #[error("tensor {name} has type {ty}, which is not supported here")]
    UnsupportedType {
        /// The tensor.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
    /// A tensor's data could not be read.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary ({n_vocab} tokens)")]
    BadToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// The tokens do not fit the context (KV cache).
    #[error("the context is full: {needed} positions needed, the context holds {n_ctx}")]
    ContextFull {
        /// Positions the call would need.
        needed: usize,
        /// The context size.
        n_ctx: usize,
    },
    /// A call that makes no sense (empty batch, a position past the cache).
    #[error("{0}")]
    Invalid(String),
    /// The GPU failed.
    #[error(transparent)]
    Gpu(#[from] seldon_kernels::Error),
}

/// Which positions' logits a forward call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (generation).
    Last,
    /// Every token's, `[n_tokens][n_vocab]` (evaluation, conformance).
    All,
}

/// A model that turns tokens into logits, keeping a KV cache of one sequence.
pub trait Forward {
    /// The hyperparameters.
    fn config(&self) -> &ModelConfig;

    /// The context size: the most positions the KV cache holds.
    fn n_ctx(&self) -> usize;

    /// Runs `tokens` at positions `pos0..pos0 + tokens.len()`. Cached keys and
    /// values at positions `>= pos0` are overwritten (so `pos0` may rewind);
    /// `pos0` may not skip past what is cached. Returns `[n][n_vocab]` logits
    /// (`n` = 1 for [`Logits::Last`]).
    fn forward(
        &mut self,
        tokens: &[u32],
        pos0: usize,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError>;

    /// Which backend this is ("cpu", or the GPU adapter's name).
    fn backend(&self) -> String;
}

/// A loaded GGUF model: the file (memory-mapped), its hyperparameters and its
/// tensor directory. Shared by the CPU and GPU paths.
#[derive(Debug)]
pub struct Model {
    file: GgufFile,
    config: ModelConfig,
    weights: ModelWeights,
}

impl Model {
    /// Maps and checks the model at `path`.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        Self::from_gguf(GgufFile::open(path)?)
    }

    /// Checks an already parsed file.
    pub fn from_gguf(file: GgufFile) -> Result<Self, ModelError> {
        let config = ModelConfig::from_gguf(&file)?;
        let weights = ModelWeights::from_gguf(&file, &config)?;
        Ok(Self {
            file,
            config,
            weights,
        })
    }

    /// The GGUF file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The tensors.
    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }
}

/// Checks a forward call's arguments against the vocabulary, the cache and
/// the context; shared by both backends so they refuse the same calls.
pub(crate) fn check_call(
    config: &ModelConfig,
    tokens: &[u32],
    pos0: usize,
    cached: usize,
    n_ctx: usize,
) -> Result<(), ModelError> {
    if tokens.is_empty() {
        return Err(ModelError::Invalid("forward called with no tokens".into()));
    }
    if pos0 > cached {
        return Err(ModelError::Invalid(format!(
            "position {pos0} skips past the {cached} cached positions"
        )));
    }
    let needed = pos0.saturating_add(tokens.len());
    if needed > n_ctx {
        return Err(ModelError::ContextFull { needed, n_ctx });
    }
    if let Some(&id) = tokens.iter().find(|&&t| t as usize >= config.n_vocab) {
        return Err(ModelError::BadToken {
            id,
            n_vocab: config.n_vocab,
        });
    }
    Ok(())
}
