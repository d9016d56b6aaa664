//! The crate's one error type.

use std::path::PathBuf;

/// Why a comparison could not be made. A comparison that was made but missed
/// a threshold is not an error: it is a failed [`crate::check::CaseReport`].
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file (case, manifest, tokenizer corpus) does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A `.npy` file is malformed or holds an unsupported array.
    #[error("npy: {0}")]
    Npy(String),
    /// A llama-perplexity KL-divergence base file is malformed.
    #[error("KL-divergence file: {0}")]
    KldFile(String),
    /// Reference data that contradicts itself (shapes, ids, sizes).
    #[error("{0}")]
    Invalid(String),
    /// The engine refused the model or failed to run it.
    #[error(transparent)]
    Model(#[from] seldon_engine::model::ModelError),
    /// The engine's tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] seldon_engine::tokenizer::TokenizerError),
    /// The GPU could not be set up.
    #[error(transparent)]
    Gpu(#[from] seldon_kernels::Error),
    /// A GGUF file could not be read.
    #[error(transparent)]
    Gguf(#[from] seldon_formats::gguf::GgufError),
    /// A tensor could not be dequantized.
    #[error(transparent)]
    Quant(#[from] seldon_formats::quant::QuantError),
    /// A feature a reference needs that seldon-engine does not have yet.
    #[error("not supported by the engine: {0}")]
    Unsupported(String),
    /// The Python side of `make-reference` failed or is missing.
    #[error("{0}")]
    Python(String),
}

impl ConformanceError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = ConformanceError> = std::result::Result<T, E>;
