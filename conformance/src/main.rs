//! `seldon-conformance`: seldon against llama.cpp, from the command line.
//!
//! Exit status: 0 when every threshold holds, 1 when one fails or on bad
//! input, 2 on usage errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use seldon_conformance::case::{LoadedCase, References};
use seldon_conformance::check::{GreedyRun, check_case};
use seldon_conformance::kld::{compare_files, compare_model};
use seldon_conformance::make_reference::{Source, make_reference};
use seldon_conformance::run::{Backend, Engine};
use seldon_conformance::table::{
    CaseOutcome, Outcome, markdown, replace_region, rewrite_readme, rows, run_all,
};

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
    /// Run every case of the references and print the README conformance table.
    Table {
        /// A references directory (repeatable; default: the committed ones).
        #[arg(long)]
        references: Vec<PathBuf>,
        /// Also run the extended suite (`make_references.py --extended` writes
        /// it to $SELDON_MODELS/conformance-extended).
        #[arg(long)]
        extended: bool,
        /// Rewrite the region between `<!-- conformance:begin -->` and
        /// `<!-- conformance:end -->` of this file (the README) in place.
        #[arg(long, value_name = "FILE")]
        readme: Option<PathBuf>,
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
        Command::Table {
            references,
            extended,
            readme,
            common,
        } => table(references, extended, readme.as_deref(), &common),
    }
}

fn table(
    mut dirs: Vec<PathBuf>,
    extended: bool,
    readme: Option<&Path>,
    common: &Common,
) -> Result<bool> {
    if dirs.is_empty() {
        dirs.push(References::committed_dir());
    }
    if extended {
        let ext = References::extended_dir();
        anyhow::ensure!(
            ext.join("manifest.json").is_file(),
            "no extended suite at {}: make it with conformance/scripts/make_references.py --extended",
            ext.display()
        );
        dirs.push(ext);
    }
    let suites = dirs
        .iter()
        .map(|d| {
            let label = if *d == References::committed_dir() {
                "committed".to_string()
            } else if *d == References::extended_dir() {
                "extended".to_string()
            } else {
                d.display().to_string()
            };
            References::open(d).map(|r| (label, r))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = readme {
        // Find out before the minutes of running that the file cannot take the table.
        let doc = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        replace_region(&doc, "").with_context(|| path.display().to_string())?;
    }
    let engine = engine(common)?;
    let backend = match engine.gpu() {
        Some(gpu) => format!("{} ({:?})", gpu.adapter().name, gpu.adapter().backend),
        None => "seldon's CPU reference forward pass".to_string(),
    };
    let mut outcomes = Vec::new();
    for (label, refs) in &suites {
        // The table shows no greedy figures: run the continuation only where
        // a threshold applies to it (F32 cases).
        let each = |o: &CaseOutcome| eprintln!("[{label}] {}", o.line());
        for o in run_all(&engine, refs, GreedyRun::WhenAsserted, each) {
            outcomes.push((label.clone(), o));
        }
    }
    let ran = outcomes
        .iter()
        .filter(|(_, o)| matches!(o.outcome, Outcome::Ran(_)))
        .count();
    eprintln!("{} cases, {ran} run", outcomes.len());
    let rows = rows(&outcomes);
    // A case skipped for an absent external model, or one that needs an engine
    // feature that does not exist yet (LoRA), is shown but is not a failure;
    // a threshold missed or an error is.
    let pass = rows.iter().all(|r| !r.failed);
    let (_, first) = &suites[0];
    let llama = format!(
        "{} (llama-cpp-python {})",
        first.manifest.llama_cpp_commit, first.manifest.llama_cpp_python
    );
    let md = markdown(&rows, &backend, &llama)?;
    if let Some(path) = readme {
        rewrite_readme(path, &md)?;
        eprintln!("rewrote the conformance table in {}", path.display());
    }
    if common.json {
        let cases: Vec<_> = outcomes.iter().map(|(_, o)| o).collect();
        print_json(&serde_json::json!({
            "backend": backend,
            "llama_cpp": llama,
            "rows": rows,
            "cases": cases,
            "pass": pass,
        }))?;
    } else {
        print!("{md}");
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
