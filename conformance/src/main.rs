//! `seldon-conformance`: seldon against llama.cpp, from the command line.
//!
//! Exit status: 0 when every threshold holds, 1 when one fails or on bad
//! input, 2 on usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use seldon_conformance::case::{LoadedCase, References};
use seldon_conformance::check::check_case;
use seldon_conformance::kld::{compare_files, compare_model};
use seldon_conformance::make_reference::{Source, make_reference};
use seldon_conformance::run::{Backend, Engine};
use seldon_conformance::table::{markdown, run_all};

#[derive(Debug, Parser)]
#[command(
    name = "seldon-conformance",
    version,
    about = "Compare seldon with llama.cpp"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Run seldon's CPU reference forward pass instead of the GPU
    /// (the GPU adapter is chosen by SELDON_DEVICE).
    #[arg(long)]
    cpu: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run seldon on the tokens of a reference case and report the metrics.
    Check {
        /// The model (default: the one the case names).
        #[arg(short = 'm', long = "model")]
        model: Option<PathBuf>,
        /// A case.json (committed, or written by make-reference).
        #[arg(long)]
        reference: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Make a reference case with llama.cpp (llama-cpp-python, $SELDON_PYTHON).
    MakeReference {
        /// The GGUF model.
        #[arg(short = 'm', long = "model")]
        model: PathBuf,
        /// A text to tokenize (with BOS as the model adds it).
        #[arg(
            long,
            conflicts_with = "tokens_file",
            required_unless_present = "tokens_file"
        )]
        text_file: Option<PathBuf>,
        /// Token ids: a JSON list, or ids separated by whitespace or commas.
        #[arg(long)]
        tokens_file: Option<PathBuf>,
        /// The case file to write; the logits go beside it as <stem>.logits.npy.
        #[arg(long)]
        out: PathBuf,
        /// Also record llama.cpp's distance from the float64 reference (slow).
        #[arg(long)]
        f64_reference: bool,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// KL-divergence statistics against a `llama-perplexity --kl-divergence-base` file.
    Kld {
        /// The base file llama-perplexity wrote.
        #[arg(long)]
        base: PathBuf,
        /// Run seldon on this model over the base file's tokens.
        #[arg(
            short = 'm',
            long = "model",
            conflicts_with = "other",
            required_unless_present = "other"
        )]
        model: Option<PathBuf>,
        /// Compare with a second base file instead.
        #[arg(long)]
        other: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Run every case of a references directory and print the markdown table.
    Table {
        /// The references directory (default: the committed ones).
        #[arg(long)]
        references: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

fn engine(common: &Common) -> Result<Engine> {
    let backend = if common.cpu {
        Backend::Cpu
    } else {
        Backend::Gpu
    };
    Engine::new(backend).with_context(|| format!("cannot start the {} backend", backend.name()))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a command; `Ok(pass)`.
fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Check {
            model,
            reference,
            common,
        } => {
            let case = LoadedCase::open(&reference)?;
            let report = check_case(&engine(&common)?, &case, model.as_deref())?;
            if common.json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
            Ok(report.pass)
        }
        Command::MakeReference {
            model,
            text_file,
            tokens_file,
            out,
            f64_reference,
            json,
        } => {
            let source = match (text_file, tokens_file) {
                (Some(t), None) => Source::TextFile(t),
                (None, Some(t)) => Source::TokensFile(t),
                _ => anyhow::bail!("give exactly one of --text-file and --tokens-file"),
            };
            let case = make_reference(&model, &source, &out, f64_reference)?;
            let loaded =
                LoadedCase::open(&case).context("the reference just written does not read back")?;
            if json {
                print_json(&serde_json::json!({
                    "case": case,
                    "n_tokens": loaded.case.n_tokens,
                    "n_vocab": loaded.case.n_vocab,
                }))?;
            } else {
                println!(
                    "wrote {} ({} tokens, {} logits per position); check it with:\n    seldon-conformance check -m {} --reference {}",
                    case.display(),
                    loaded.case.n_tokens,
                    loaded.case.n_vocab,
                    model.display(),
                    case.display()
                );
            }
            Ok(true)
        }
        Command::Kld {
            base,
            model,
            other,
            common,
        } => {
            let report = match (model, other) {
                (Some(m), None) => compare_model(&base, &engine(&common)?, &m)?,
                (None, Some(o)) => compare_files(&base, &o)?,
                _ => anyhow::bail!("give exactly one of -m/--model and --other"),
            };
            if common.json {
                print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
            Ok(report.pass)
        }
        Command::Table { references, common } => table(references.as_deref(), &common),
    }
}

fn table(references: Option<&Path>, common: &Common) -> Result<bool> {
    let root = references.map_or_else(References::committed_dir, Path::to_path_buf);
    let refs = References::open(&root)?;
    let engine = engine(common)?;
    let backend = match engine.gpu() {
        Some(gpu) => format!("{} ({:?})", gpu.adapter().name, gpu.adapter().backend),
        None => "seldon's CPU reference forward pass".to_string(),
    };
    let outcomes = run_all(&engine, &refs, |o| eprintln!("{}", o.line()));
    // A case skipped for an absent external model is not a failure; one that
    // errs or that the engine cannot run yet is.
    let pass = outcomes.iter().all(|o| {
        o.passed()
            || matches!(
                o.outcome,
                seldon_conformance::table::Outcome::Skipped { .. }
            )
    });
    let llama = format!(
        "{} (llama-cpp-python {})",
        refs.manifest.llama_cpp_commit, refs.manifest.llama_cpp_python
    );
    if common.json {
        print_json(&serde_json::json!({
            "backend": backend,
            "llama_cpp": llama,
            "cases": outcomes,
            "pass": pass,
        }))?;
    } else {
        print!("{}", markdown(&outcomes, &backend, &llama)?);
    }
    Ok(pass)
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors and 0 for --help/--version.
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Check { common, .. }
        | Command::Kld { common, .. }
        | Command::Table { common, .. } => common.json,
        Command::MakeReference { json, .. } => *json,
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            } else {
                eprintln!("seldon-conformance: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}
