//! seldon-engine: models, tokenizer, sampler and generation on top of seldon-kernels.

pub mod info;
pub mod tokenizer;
