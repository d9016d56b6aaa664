//! Flags that several subcommands share (llama.cpp's names), and how they
//! turn into library options.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use seldon_kernels::GpuOptions;

use crate::generate::run::CacheType;
use crate::sampler::SamplerParams;
use crate::session::{Device, EngineOptions};

/// Sampling flags, as `seldon run` takes them.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
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
    /// Random seed (default: from the clock; `run --json` prints it).
    #[arg(short = 's', long = "seed")]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler settings, with the clock's seed where none was given.
    pub fn params(&self, n_ctx: usize) -> SamplerParams {
        SamplerParams {
            temp: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: usize::try_from(self.repeat_last_n).unwrap_or(n_ctx),
            seed: self.seed.unwrap_or_else(clock_seed),
        }
    }
}

/// A seed that varies from run to run.
pub fn clock_seed() -> u64 {
    // Any varying value will do; a clock before 1970 just gives seed 0.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where and how to load the model: context, batch, cache types, device.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
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
    /// Run on the CPU reference path instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
}

impl LoadArgs {
    /// The engine options these flags ask for.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            device: if self.cpu {
                Device::Cpu
            } else {
                Device::Gpu(GpuOptions::default())
            },
            n_ctx: self.ctx_size,
            kv_type_k: self.cache_type_k.into(),
            kv_type_v: self.cache_type_v.into(),
            batch_size: usize::try_from(self.batch_size).unwrap_or(usize::MAX),
        }
    }
}

/// Reads a JSON array of token ids; the error says what is wrong in one line.
pub fn read_token_ids(path: &Path) -> Result<Vec<u32>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str::<Vec<u32>>(&text)
        .map_err(|e| format!("expected a JSON array of token ids: {e}"))
}
