//! seldon-engine: models, tokenizer, sampler and generation on top of seldon-kernels.
//!
//! Apps start from [`Engine`] (load a model once) and [`Session`] (one
//! sequence with its own KV cache): see the [`session`] module.
#![warn(missing_docs)]

pub mod chat_template;
pub mod cli;
pub mod generate;
pub mod info;
pub mod model;
pub mod npy;
pub mod sampler;
pub mod session;
pub mod synth;
pub mod tokenizer;

pub use chat_template::ChatMessage;
pub use generate::StopReason;
/// Sampling settings (temperature, top-k, top-p, min-p, repeat penalty, seed).
pub use sampler::SamplerParams as SamplingParams;
pub use session::{
    CancelToken, Completion, Device, Engine, EngineError, EngineOptions, GenerateOptions, Session,
    TextStream,
};
