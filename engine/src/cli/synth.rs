//! `seldon synth`: writes a model with a real model's exact shapes and
//! random weights (see [`crate::synth`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::synth::{self, FileType, ModelShape, Progress, SynthError, SynthOptions};

/// Arguments of `seldon synth`.
#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// The real model whose shapes to copy: smollm2-135m, qwen3-0.6b,
    /// qwen3-1.7b, qwen3-4b, llama3-8b.
    #[arg(long, value_name = "NAME", value_parser = parse_shape)]
    pub shape: &'static ModelShape,
    /// The file type, as llama-quantize names it: F32, F16, BF16, Q4_0, Q4_1,
    /// Q5_0, Q5_1, Q8_0, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, TQ1_0, TQ2_0.
    #[arg(long = "type", value_name = "FTYPE")]
    pub ftype: FileType,
    /// Where to write the GGUF file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the random weights; the same seed gives the same file.
    #[arg(short = 's', long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_shape(name: &str) -> Result<&'static ModelShape, String> {
    synth::shape(name)
        .ok_or_else(|| format!("unknown shape {name:?} (known: {})", synth::shape_names()))
}

/// Runs `seldon synth`, reporting progress and the result on `log`.
pub fn run(args: &SynthArgs, log: &mut impl Write) -> Result<(), SynthError> {
    let opts = SynthOptions {
        shape: args.shape,
        ftype: args.ftype,
        seed: args.seed,
    };
    let start = Instant::now();
    // Progress is a courtesy: a closed stderr must not stop the run.
    let _ = writeln!(
        log,
        "synth: {} {} (seed {}) -> {}",
        args.shape.name,
        args.ftype,
        args.seed,
        args.out.display()
    );
    let mut last_tenth = 0;
    let mut report = |p: &Progress<'_>| {
        let tenth = (p.bytes_done * 10).checked_div(p.bytes_total).unwrap_or(10);
        if tenth > last_tenth {
            last_tenth = tenth;
            let _ = writeln!(
                log,
                "synth: {:3}% ({}/{} tensors, {:.1}s)",
                tenth * 10,
                p.tensors_done,
                p.tensors_total,
                start.elapsed().as_secs_f64()
            );
        }
    };
    let writer = synth::build(&opts, &mut report)?;
    writer.write_to_path(&args.out)?;
    let size = std::fs::metadata(&args.out).map_or(0, |m| m.len());
    let _ = writeln!(
        log,
        "synth: wrote {} ({:.1} MiB) in {:.1}s",
        args.out.display(),
        size as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
