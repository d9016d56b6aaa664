//! `seldon run`: load a model, tokenize the prompt, generate, stream the text.
//! The binary only parses arguments (with [`RunArgs`]) and prints errors.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use seldon_kernels::kv_cache::KvType;
use seldon_kernels::{Gpu, GpuOptions};

use super::{GenerateParams, Generation, StopReason, generate};
use crate::cli::args::{LoadArgs, SamplingArgs};
use crate::model::{CpuModel, Forward, GpuSession, Model, ModelError, SessionOptions};
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
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Context, batch and cache types (`--cpu` among them).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object {tokens, text, prompt_tokens, prompt_tps, gen_tps, ...}
    /// instead of streaming text.
    #[arg(long)]
    pub json: bool,
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
    let n_ctx = context_size(args.load.ctx_size, &model);
    let mut backend: Box<dyn Forward> = if args.load.cpu {
        Box::new(CpuModel::new(Arc::clone(&model), n_ctx)?)
    } else {
        let gpu = Gpu::new(GpuOptions::default()).map_err(ModelError::from)?;
        let options = SessionOptions {
            n_ctx,
            kv_type_k: args.load.cache_type_k.into(),
            kv_type_v: args.load.cache_type_v.into(),
            max_batch: usize::try_from(args.load.batch_size)
                .unwrap_or(usize::MAX)
                .min(n_ctx),
        };
        Box::new(GpuSession::load(Arc::new(gpu), &model, options)?)
    };
    let sampler = args.sampling.params(n_ctx);
    let seed = sampler.seed;
    let params = GenerateParams {
        n_predict: usize::try_from(args.n_predict).ok(),
        batch_size: usize::try_from(args.load.batch_size).unwrap_or(usize::MAX),
        sampler,
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
