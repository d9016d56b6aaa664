//! seldon-bench: kernel sweeps across GPUs, reported as ratios to the same
//! adapter's measured copy ceiling.
//!
//! `seldon-bench devices` lists adapters; `seldon-bench kernels` runs every
//! kernel on realistic shapes. Usage errors exit 2, runtime errors exit 1.

mod kernels;
mod meta;
mod model;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use seldon_kernels::{Gpu, GpuOptions};

use kernels::KernelsOptions;
use meta::RunMeta;
use report::{Format, render, save};

/// A mistake in the command line found after parsing (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Fewest timed runs per case: the median of fewer is too noisy to compare.
const MIN_RUNS: u32 = 20;

#[derive(Debug, Parser)]
#[command(name = "seldon-bench", version, about = "seldon's GPU benchmarks")]
struct Cli {
    /// Adapter index or name substring (see `devices`); default: SELDON_DEVICE
    /// or the best GPU.
    #[arg(long, global = true)]
    device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the adapters wgpu can see.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time every kernel on realistic shapes against the copy ceiling.
    Kernels(KernelsArgs),
    /// End-to-end pp/tg tokens/s of a GGUF model (llama-bench's method).
    Model(ModelArgs),
}

#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// The model (.gguf).
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    model: PathBuf,
    /// Prompt tokens of the pp test.
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    n_prompt: u64,
    /// Generated tokens of the tg test.
    #[arg(short = 'n', long = "n-gen", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    n_gen: u64,
    /// Timed runs per test (after one warm-up; the median is reported).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    reps: u64,
    /// Write the JSON report to this file as well as stdout.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct KernelsArgs {
    /// Run only cases whose `kernel/type/shape` contains NAME
    /// (case-insensitive; repeatable), e.g. `matvec`, `Q4_K`, `2048x6144`.
    #[arg(long, value_name = "NAME")]
    filter: Vec<String>,
    /// Print a JSON list of results (same as `-o json`).
    #[arg(long)]
    json: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "md")]
    output: Format,
    /// Only the 2048x6144 products and the smaller attention model.
    #[arg(long)]
    quick: bool,
    /// Timed runs per case (the median is reported).
    #[arg(long, default_value_t = MIN_RUNS,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_RUNS)..=100_000))]
    runs: u32,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// Tokens of the prefill cases (`matmul`, prefill attention, `rms_norm`):
    /// one micro-batch by default, so that the full sweep stays affordable
    /// on a software rasterizer; use 512 for llama-bench's pp512.
    #[arg(short = 'p', long = "n-prompt", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    n_prompt: u64,
    /// Save the results as JSON in --save-dir.
    #[arg(long)]
    save: bool,
    /// Where --save writes `kernels-<adapter>-<YYYYMMDD>.json`.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    save_dir: PathBuf,
    /// Use only the portable kernels (no f16, subgroups or packed dot products).
    #[arg(long)]
    portable: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn gpu_options(device: Option<String>, portable: bool) -> GpuOptions {
    let defaults = GpuOptions::default();
    GpuOptions {
        device: device.or(defaults.device),
        force_portable: portable,
        ..defaults
    }
}

fn devices(json: bool) -> Result<()> {
    let adapters = Gpu::list_adapters();
    if json {
        let list: Vec<serde_json::Value> = adapters
            .iter()
            .map(|a| {
                serde_json::json!({
                    "index": a.index,
                    "name": a.name,
                    "backend": format!("{:?}", a.backend),
                    "device_type": format!("{:?}", a.device_type),
                    "driver": a.driver,
                    "driver_info": a.driver_info,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if adapters.is_empty() {
        println!("no adapters found");
    } else {
        for a in &adapters {
            println!("{a}");
        }
    }
    Ok(())
}

fn run_kernels(device: Option<String>, args: KernelsArgs) -> Result<bool> {
    let gpu = Gpu::new(gpu_options(device, args.portable))?;
    let options = KernelsOptions {
        filters: args.filter,
        quick: args.quick,
        runs: args.runs,
        warmup: args.warmup,
        n_prompt: args.n_prompt,
        progress: !args.quiet,
    };
    let cases = kernels::select_cases(&gpu, &options)?;
    let meta = RunMeta::now(gpu.adapter());
    if options.progress {
        let f = gpu.features();
        eprintln!(
            "{} cases on {} ({} timed runs each after {} warm-up; features: f16 {}, subgroups {}, timestamps {}, dot4 {})",
            cases.len(),
            meta.adapter,
            options.runs,
            options.warmup,
            f.f16,
            f.subgroups,
            f.timestamps,
            f.dot4_packed
        );
    }
    let sweep = kernels::run(&gpu, &cases, &options, &meta)?;
    let format = if args.json { Format::Json } else { args.output };
    print!("{}", render(&sweep.records, format, &meta)?);
    if args.save {
        let path = save(&args.save_dir, &sweep.records, &meta)?;
        eprintln!("saved {}", path.display());
    }
    for (label, error) in &sweep.failures {
        eprintln!("failed: {label}: {error}");
    }
    Ok(sweep.failures.is_empty())
}

fn run_model(device: Option<String>, args: ModelArgs) -> Result<bool> {
    let gpu = Gpu::new(gpu_options(device, false))?;
    let meta = RunMeta::now(gpu.adapter());
    let options = model::ModelOptions {
        model: args.model,
        n_prompt: usize::try_from(args.n_prompt)?,
        n_gen: usize::try_from(args.n_gen)?,
        reps: usize::try_from(args.reps)?,
    };
    let report = model::run(std::sync::Arc::new(gpu), &options, &meta)?;
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = args.save {
        std::fs::write(&path, format!("{text}\n"))?;
        eprintln!("saved {}", path.display());
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Devices { json } => devices(json).map(|()| true),
        Command::Kernels(args) => run_kernels(cli.device, args),
        Command::Model(args) => run_model(cli.device, args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
