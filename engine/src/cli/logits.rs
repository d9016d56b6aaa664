//! `seldon logits`: the logits at every position of a token sequence, as one
//! batched prefill, written to a float32 `.npy` file `[n_tokens, n_vocab]`
//! (the layout of the llama.cpp references in conformance/references).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::args::read_token_ids;
use crate::generate::run::CacheType;
use crate::model::ModelError;
use crate::npy::NpyF32Writer;
use crate::session::{Device, Engine, EngineError, EngineOptions};

/// Arguments of `seldon logits`.
#[derive(Debug, Clone, Args)]
pub struct LogitsArgs {
    /// The model (.gguf).
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    pub model: PathBuf,
    /// A JSON array of token ids, used exactly as given (no BOS is added).
    #[arg(long = "tokens-file", value_name = "FILE")]
    pub tokens_file: PathBuf,
    /// Where to write the float32 `.npy` array `[n_tokens, n_vocab]`.
    #[arg(long = "out", value_name = "OUT.npy")]
    pub out: PathBuf,
    /// Context size; 0 makes it the number of tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub ctx_size: usize,
    /// Tokens per forward pass (micro-batch).
    #[arg(short = 'b', long = "batch-size", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// KV cache type for keys (also `-ctk`); f32 here, for comparisons.
    #[arg(long = "cache-type-k", value_enum, default_value_t = CacheType::F32)]
    pub cache_type_k: CacheType,
    /// KV cache type for values (also `-ctv`).
    #[arg(long = "cache-type-v", value_enum, default_value_t = CacheType::F32)]
    pub cache_type_v: CacheType,
    /// Print one JSON object {n_tokens, n_vocab, out} instead of a text line.
    #[arg(long)]
    pub json: bool,
    /// Run on the CPU reference path instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
}

/// Why `seldon logits` failed.
#[derive(Debug, thiserror::Error)]
pub enum LogitsError {
    /// Loading the model or evaluating failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `--tokens-file` could not be read, is not a JSON array of ids, or
    /// holds an id outside the vocabulary.
    #[error("tokens file {path}: {reason}")]
    TokensFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the report failed.
    #[error("writing output: {0}")]
    Io(#[source] std::io::Error),
}

/// The `--json` report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogitsReport {
    /// Rows written.
    pub n_tokens: usize,
    /// Logits per row.
    pub n_vocab: usize,
    /// The `.npy` file.
    pub out: PathBuf,
}

/// Runs `seldon logits` and prints its report to `out`.
pub fn run(args: &LogitsArgs, out: &mut dyn Write) -> Result<LogitsReport, LogitsError> {
    let tokens_error = |reason: String| LogitsError::TokensFile {
        path: args.tokens_file.clone(),
        reason,
    };
    let tokens = read_token_ids(&args.tokens_file).map_err(tokens_error)?;
    if tokens.is_empty() {
        return Err(tokens_error("it holds no tokens".into()));
    }
    let engine = Engine::load(
        &args.model,
        EngineOptions {
            device: if args.cpu {
                Device::Cpu
            } else {
                Device::default()
            },
            n_ctx: if args.ctx_size == 0 {
                tokens.len()
            } else {
                args.ctx_size
            },
            kv_type_k: args.cache_type_k.into(),
            kv_type_v: args.cache_type_v.into(),
            batch_size: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
        },
    )?;
    let n_vocab = engine.model().config().n_vocab;
    if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(tokens_error(
            ModelError::BadToken { id, n_vocab }.to_string(),
        ));
    }
    write_npy(&engine, &tokens, &args.out)?;
    let report = LogitsReport {
        n_tokens: tokens.len(),
        n_vocab,
        out: args.out.clone(),
    };
    let text = if args.json {
        serde_json::to_string(&report).map_err(|e| LogitsError::Io(e.into()))?
    } else {
        format!(
            "wrote logits [{}, {}] to {}",
            report.n_tokens,
            report.n_vocab,
            report.out.display()
        )
    };
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(LogitsError::Io)?;
    Ok(report)
}

/// Evaluates `tokens` and streams the rows into `path` through a temporary
/// file, so that a failure never leaves a truncated array under that name.
fn write_npy(engine: &Engine, tokens: &[u32], path: &Path) -> Result<(), LogitsError> {
    let n_vocab = engine.model().config().n_vocab;
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let write_error = |source| LogitsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut npy =
            NpyF32Writer::create(&partial, &[tokens.len(), n_vocab]).map_err(write_error)?;
        let mut session = engine.session()?;
        let mut io_error = None;
        let evaluated = session.logits_each(tokens, &mut |rows| {
            npy.write(rows).map_err(|e| {
                io_error = Some(e);
                // Stops the evaluation; the real error is kept above.
                EngineError::Model(ModelError::Invalid("write failed".into()))
            })
        });
        if let Some(e) = io_error {
            return Err(write_error(e));
        }
        evaluated?;
        npy.finish().map_err(write_error)?;
        std::fs::rename(&partial, path).map_err(write_error)
    })();
    if result.is_err() {
        // Best effort: the file may not exist.
        let _ = std::fs::remove_file(&partial);
    }
    result
}
