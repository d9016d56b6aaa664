//! Text generation: the prompt in micro-batches, then one token at a time
//! through the sampler, stopping at an end-of-generation token, after
//! `n_predict` tokens, or when the context is full. [`run`] is the `seldon run`
//! command on top of it.

pub mod run;

use std::time::Instant;

use crate::model::{Forward, Logits, ModelError};
use crate::sampler::{Sampler, SamplerParams};

/// How to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateParams {
    /// The most tokens to generate; `None` runs until EOG or a full context.
    pub n_predict: Option<usize>,
    /// Prompt tokens per forward call (at least 1).
    pub batch_size: usize,
    /// Sampling settings.
    pub sampler: SamplerParams,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            n_predict: Some(256),
            batch_size: 512,
            sampler: SamplerParams::default(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `n_predict` tokens were generated.
    Length,
    /// The model produced an end-of-generation token (not included in the output).
    EndOfGeneration(u32),
    /// The next token would not fit the context.
    ContextFull,
    /// The text contained the stop string with this index (not emitted).
    StopString(usize),
    /// A [`CancelToken`](crate::CancelToken) was cancelled.
    Cancelled,
}

impl StopReason {
    /// A short name for reports ("length", "eog", "context_full", "stop",
    /// "cancelled").
    pub fn name(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::EndOfGeneration(_) => "eog",
            Self::ContextFull => "context_full",
            Self::StopString(_) => "stop",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a generation produced, with its timings.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated tokens (without the prompt or a final EOG token).
    pub tokens: Vec<u32>,
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Seconds spent on the prompt.
    pub prompt_secs: f64,
    /// Seconds spent generating (forward calls and sampling).
    pub gen_secs: f64,
    /// Why it stopped.
    pub stop: StopReason,
}

impl Generation {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_secs)
    }

    /// Generated tokens per second.
    pub fn gen_tps(&self) -> f64 {
        rate(self.tokens.len(), self.gen_secs)
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// Evaluates `prompt` from position 0 in chunks of `batch_size` and returns the
/// last token's logits.
pub fn prefill<F: Forward + ?Sized>(
    model: &mut F,
    prompt: &[u32],
    batch_size: usize,
) -> Result<Vec<f32>, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Invalid("the prompt has no tokens".into()));
    }
    if prompt.len() > model.n_ctx() {
        return Err(ModelError::ContextFull {
            needed: prompt.len(),
            n_ctx: model.n_ctx(),
        });
    }
    let mut logits = Vec::new();
    for (i, chunk) in prompt.chunks(batch_size.max(1)).enumerate() {
        logits = model.forward(chunk, i * batch_size.max(1), Logits::Last)?;
    }
    Ok(logits)
}

/// Generates after `prompt`. `is_eog` says which tokens end generation;
/// `on_token` sees each generated token as it is sampled (to stream its text)
/// and may stop generation with an error.
pub fn generate<F: Forward + ?Sized, E: From<ModelError>>(
    model: &mut F,
    prompt: &[u32],
    params: &GenerateParams,
    is_eog: &dyn Fn(u32) -> bool,
    on_token: &mut dyn FnMut(u32) -> Result<(), E>,
) -> Result<Generation, E> {
    let start = Instant::now();
    let mut logits = prefill(model, prompt, params.batch_size)?;
    let prompt_secs = start.elapsed().as_secs_f64();

    let gen_start = Instant::now();
    let mut sampler = Sampler::new(params.sampler);
    prompt.iter().for_each(|&t| sampler.accept(t));
    let mut tokens = Vec::new();
    let stop = loop {
        if params.n_predict.is_some_and(|n| tokens.len() >= n) {
            break StopReason::Length;
        }
        let token = sampler
            .sample(&logits)
            .ok_or_else(|| ModelError::Invalid("the model returned no logits".into()))?;
        sampler.accept(token);
        if is_eog(token) {
            break StopReason::EndOfGeneration(token);
        }
        on_token(token)?;
        tokens.push(token);
        if params.n_predict.is_some_and(|n| tokens.len() >= n) {
            break StopReason::Length;
        }
        // The token just sampled sits at this position once evaluated.
        let pos = prompt.len() + tokens.len() - 1;
        if pos >= model.n_ctx() {
            break StopReason::ContextFull;
        }
        logits = model.forward(&[token], pos, Logits::Last)?;
    };
    Ok(Generation {
        tokens,
        prompt_tokens: prompt.len(),
        prompt_secs,
        gen_secs: gen_start.elapsed().as_secs_f64(),
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Arch, ModelConfig};

    /// A fake model whose logits favour `(last token + 1) % n_vocab`, so the
    /// greedy continuation of `[t]` is `t+1, t+2, ...`.
    struct Counter {
        config: ModelConfig,
        n_ctx: usize,
        calls: Vec<(usize, usize)>,
    }

    impl Forward for Counter {
        fn config(&self) -> &ModelConfig {
            &self.config
        }
        fn n_ctx(&self) -> usize {
            self.n_ctx
        }
        fn forward(
            &mut self,
            tokens: &[u32],
            pos0: usize,
            _: Logits,
        ) -> Result<Vec<f32>, ModelError> {
            self.calls.push((pos0, tokens.len()));
            let n = self.config.n_vocab;
            let next = (*tokens.last().unwrap_or(&0) as usize + 1) % n;
            Ok((0..n).map(|i| if i == next { 1.0 } else { 0.0 }).collect())
        }
        fn backend(&self) -> String {
            "test".into()
        }
    }

    fn counter(n_ctx: usize) -> Counter {
        Counter {
            config: ModelConfig {
                arch: Arch::Llama,
                n_layer: 1,
                n_embd: 1,
                n_ff: 1,
                n_head: 1,
                n_head_kv: 1,
                head_dim_k: 1,
                head_dim_v: 1,
                n_rot: 0,
                rms_eps: 1e-5,
                rope_freq_base: 1e4,
                rope_freq_scale: 1.0,
                attention_scale: 1.0,
                n_ctx_train: n_ctx,
                n_vocab: 10,
            },
            n_ctx,
            calls: Vec::new(),
        }
    }

    fn greedy(n_predict: Option<usize>, batch_size: usize) -> GenerateParams {
        GenerateParams {
            n_predict,
            batch_size,
            sampler: SamplerParams {
                temp: 0.0,
                ..SamplerParams::default()
            },
        }
    }

    fn run(m: &mut Counter, prompt: &[u32], p: GenerateParams, eog: u32) -> Generation {
        generate::<_, ModelError>(m, prompt, &p, &|t| t == eog, &mut |_| Ok(())).unwrap()
    }

    #[test]
    fn stops_after_n_predict_with_batched_prompt() {
        let mut m = counter(64);
        let g = run(&mut m, &[1, 2, 3, 4, 5], greedy(Some(3), 2), 99);
        assert_eq!(g.tokens, [6, 7, 8]);
        assert_eq!(g.stop, StopReason::Length);
        // Prompt in chunks of 2, then the first two generated tokens (the third
        // is never evaluated).
        assert_eq!(m.calls, [(0, 2), (2, 2), (4, 1), (5, 1), (6, 1)]);
    }

    #[test]
    fn stops_at_eog_without_emitting_it() {
        let mut m = counter(64);
        let g = run(&mut m, &[1], greedy(None, 8), 4);
        assert_eq!(g.tokens, [2, 3]);
        assert_eq!(g.stop, StopReason::EndOfGeneration(4));
    }

    #[test]
    fn stops_when_the_context_is_full() {
        let mut m = counter(4);
        let g = run(&mut m, &[0, 1], greedy(None, 8), 99);
        // Positions 0..4: two prompt tokens, two evaluated generated tokens,
        // and a last sampled token that no longer fits.
        assert_eq!(g.tokens, [2, 3, 4]);
        assert_eq!(g.stop, StopReason::ContextFull);
        let too_long = generate::<_, ModelError>(
            &mut counter(2),
            &[0, 1, 2],
            &greedy(None, 8),
            &|_| false,
            &mut |_| Ok(()),
        );
        assert!(matches!(too_long, Err(ModelError::ContextFull { .. })));
        assert!(prefill(&mut counter(2), &[], 1).is_err());
    }
}
