//! seldon-engine: models, tokenizer, sampler and generation on top of seldon-kernels.

pub mod chat_template;
pub mod cli;
pub mod generate;
pub mod info;
pub mod model;
pub mod sampler;
pub mod synth;
pub mod tokenizer;
