//! seldon-engine: models, tokenizer, sampler and generation on top of seldon-kernels.
