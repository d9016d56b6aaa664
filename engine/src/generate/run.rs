//! `seldon run`: load a model, tokenize the prompt, generate, stream the text.
//! The binary only parses arguments (with [`RunArgs`]) and prints errors.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use seldon_kernels::kv_cache::KvType;
use seldon_kernels::{Gpu, GpuOptions};

use super::{GenerateParams, Generation, StopReason, generate};
use crate::model::{CpuModel, Forward, GpuModel, GpuModelOptions, Model, ModelError};
use crate::sampler::SamplerParams;
use crate::tokenizer::{Tokenizer, TokenizerError};

/// The context used when `-c` is 0 or absent: the model's training context,
/// capped so that a 128k-context model does not reserve gigabytes of KV cache.
pub const DEFAULT_MAX_CTX: usize = 4096;

/// A KV cache element type on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheType {
    /// 16-bit floats (the default, as in llama.cpp).
    F16,
    /// 32-bit floats.
    F32,
}

impl From<CacheType> for KvType {
    fn from(c: CacheType) -> Self {
        match c {
            CacheType::F16 => KvType::F16,
            CacheType::F32 => KvType::F32,
        }
    }
}

/// `seldon run`'s arguments (llama.cpp's flag names).
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "tokens_file"])))]
pub struct RunArgs {
    /// The model (.gguf).
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    pub model: PathBuf,
    /// The prompt, as raw text (BOS added where the model's metadata says so;
    /// special tokens written in it are parsed).
    #[arg(short = 'p', long = "prompt", value_name = "TEXT")]
    pub prompt: Option<String>,
    /// A JSON array of token ids to use as the prompt, exactly as given (no BOS).
    #[arg(long = "tokens-file", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Tokens to generate; -1 runs until an end-of-generation token or a full context.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub n_predict: i64,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k sampling; 0 disables.
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: i32,
    /// Top-p sampling; 1.0 disables.
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p sampling; 0.0 disables.
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for repeating recent tokens; 1.0 disables.
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Recent tokens the penalty considers; 0 disables, -1 is the context size.
    #[arg(long = "repeat-last-n", default_value_t = 64, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub repeat_last_n: i64,
    /// Random seed (default: from the clock, printed with --json).
    #[arg(short = 's', long = "seed")]
    pub seed: Option<u64>,
    /// Context size; 0 takes the model's, capped at 4096.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub ctx_size: usize,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// KV cache type for keys (also `-ctk`).
    #[arg(long = "cache-type-k", value_enum, default_value_t = CacheType::F16)]
    pub cache_type_k: CacheType,
    /// KV cache type for values (also `-ctv`).
    #[arg(long = "cache-type-v", value_enum, default_value_t = CacheType::F16)]
    pub cache_type_v: CacheType,
    /// Print one JSON object {tokens, text, prompt_tokens, prompt_tps, gen_tps, ...}
    /// instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU reference path instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
}

/// Rewrites llama.cpp's single-dash long flags (`-ctk f32`) into the forms clap
/// parses (`--cache-type-k f32`); everything else passes through.
pub fn normalize_llama_flags<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some("-ctk") => "--cache-type-k".into(),
            Some("-ctv") => "--cache-type-v".into(),
            _ => a,
        })
        .collect()
}

/// Why `seldon run` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer could not be built or could not encode the prompt.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// `--tokens-file` could not be read or is not a JSON array of ids.
    #[error("tokens file {path}: {reason}")]
    TokensFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    #[error("writing output: {0}")]
    Io(#[source] std::io::Error),
}

/// The `--json` report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub gen_tps: f64,
    /// Why generation stopped: "length", "eog" or "context_full".
    pub stop: &'static str,
    /// The sampler's seed.
    pub seed: u64,
    /// "cpu" or the GPU adapter.
    pub backend: String,
}

fn clock_seed() -> u64 {
    // Any varying value will do; a clock before 1970 just gives seed 0.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn read_tokens_file(path: &PathBuf) -> Result<Vec<u32>, RunError> {
    let err = |reason: String| RunError::TokensFile {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_str::<Vec<u32>>(&text)
        .map_err(|e| err(format!("expected a JSON array of token ids: {e}")))
}

/// The context size `-c` asks for.
pub fn context_size(requested: usize, model: &Model) -> usize {
    match requested {
        0 => model.config().n_ctx_train.clamp(1, DEFAULT_MAX_CTX),
        n => n,
    }
}

/// Runs `seldon run`: streams the generated text to `out` (or prints the JSON
/// report), and the timings and stop messages to `err`.
pub fn run(
    args: &RunArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<RunReport, RunError> {
    let model = Arc::new(Model::open(&args.model)?);
    let tokenizer = Tokenizer::from_gguf(model.file())?;
    let prompt = match (&args.tokens_file, &args.prompt) {
        (Some(path), _) => read_tokens_file(path)?,
        (None, Some(text)) => tokenizer.encode(text, true, true)?,
        (None, None) => Vec::new(),
    };
    let n_ctx = context_size(args.ctx_size, &model);
    let mut backend: Box<dyn Forward> = if args.cpu {
        Box::new(CpuModel::new(Arc::clone(&model), n_ctx)?)
    } else {
        let gpu = Gpu::new(GpuOptions::default()).map_err(ModelError::from)?;
        let options = GpuModelOptions {
            n_ctx,
            kv_type_k: args.cache_type_k.into(),
            kv_type_v: args.cache_type_v.into(),
            max_batch: usize::try_from(args.batch_size)
                .unwrap_or(usize::MAX)
                .min(n_ctx),
        };
        Box::new(GpuModel::new(Arc::new(gpu), &model, options)?)
    };
    let seed = args.seed.unwrap_or_else(clock_seed);
    let params = GenerateParams {
        n_predict: usize::try_from(args.n_predict).ok(),
        batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
        sampler: SamplerParams {
            temp: args.temp,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
            repeat_penalty: args.repeat_penalty,
            repeat_last_n: usize::try_from(args.repeat_last_n).unwrap_or(n_ctx),
            seed,
        },
    };

    let stream = !args.json;
    let generation: Generation = generate::<_, RunError>(
        backend.as_mut(),
        &prompt,
        &params,
        &|t| tokenizer.is_eog(t),
        &mut |t| {
            if stream {
                // Raw bytes: a piece may end inside a UTF-8 character that the
                // next piece completes, and the terminal joins them.
                out.write_all(&tokenizer.token_to_piece(t))
                    .and_then(|()| out.flush())
                    .map_err(RunError::Io)?;
            }
            Ok(())
        },
    )?;

    let report = RunReport {
        text: tokenizer.decode(&generation.tokens),
        tokens: generation.tokens.clone(),
        prompt_tokens: generation.prompt_tokens,
        prompt_tps: generation.prompt_tps(),
        gen_tps: generation.gen_tps(),
        stop: generation.stop.name(),
        seed,
        backend: backend.backend(),
    };
    if args.json {
        let mut s = serde_json::to_string(&report).map_err(|e| RunError::Io(e.into()))?;
        s.push('\n');
        out.write_all(s.as_bytes()).map_err(RunError::Io)?;
        out.flush().map_err(RunError::Io)?;
    }
    // Progress lines are best effort: a closed stderr must not fail the run.
    let _ = writeln!(err);
    if generation.stop == StopReason::ContextFull {
        let _ = writeln!(
            err,
            "seldon: the context is full ({n_ctx} positions); stopping"
        );
    }
    let _ = writeln!(
        err,
        "prompt: {} tokens, {:.2} t/s | generation: {} tokens, {:.2} t/s | {}",
        report.prompt_tokens,
        report.prompt_tps,
        report.tokens.len(),
        report.gen_tps,
        report.backend
    );
    Ok(report)
}
