//! The `seldon` command line. Each subcommand is a thin layer over the
//! seldon-engine library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

/// seldon: run language models on the GPUs people already own.
#[derive(Debug, Parser)]
#[command(name = "seldon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a model file's architecture, hyperparameters, tokenizer and tensors
    /// (GGUF or safetensors; does not touch the GPU).
    Info(InfoArgs),
    /// Generate text from a prompt (streams the text; timings on stderr).
    Run(seldon_engine::generate::run::RunArgs),
    /// Chat through the model's chat template, keeping the KV cache between
    /// turns (one user turn per line when stdin is not a terminal).
    Chat(seldon_engine::cli::chat::ChatArgs),
    /// Write the logits at every position of a token sequence to a float32 .npy file.
    Logits(seldon_engine::cli::logits::LogitsArgs),
    /// Print the token ids of a text, as llama.cpp's llama_tokenize gives them.
    Tokenize(seldon_engine::cli::tokenize::TokenizeArgs),
    /// Write a model with a real model's shapes and random weights (GGUF).
    Synth(seldon_engine::cli::synth::SynthArgs),
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// The model file (.gguf or .safetensors).
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    model: PathBuf,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

fn init_tracing() {
    // Logs go to stderr so that `--json` output on stdout stays parseable.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SELDON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second init (impossible here) would only mean logs stay off.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn info(args: &InfoArgs) -> anyhow::Result<()> {
    tracing::debug!(model = %args.model.display(), "inspecting");
    let info = seldon_engine::info::inspect(&args.model)?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&info).context("serializing the report")?;
        s.push('\n');
        s
    } else {
        info.render_text()
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| anyhow::Error::new(e).context("writing to stdout"))
}

fn run(args: &seldon_engine::generate::run::RunArgs) -> anyhow::Result<()> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    seldon_engine::generate::run::run(args, &mut out, &mut err)?;
    Ok(())
}

fn chat(args: &seldon_engine::cli::chat::ChatArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    seldon_engine::cli::chat::run(args, &mut stdin.lock(), interactive, &mut out, &mut err)?;
    Ok(())
}

/// True when the error is stdout closed early (`seldon info ... | head`),
/// which is the reader's choice, not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = Cli::parse_from(seldon_engine::generate::run::normalize_llama_flags(
        std::env::args_os(),
    ));
    init_tracing();
    let result = match &cli.command {
        Command::Info(args) => info(args),
        Command::Run(args) => run(args),
        Command::Chat(args) => chat(args),
        Command::Logits(args) => {
            seldon_engine::cli::logits::run(args, &mut std::io::stdout().lock())
                .map(|_| ())
                .map_err(Into::into)
        }
        Command::Tokenize(args) => {
            seldon_engine::cli::tokenize::run(args, &mut std::io::stdout().lock())
                .map_err(Into::into)
        }
        Command::Synth(args) => {
            seldon_engine::cli::synth::run(args, &mut std::io::stderr()).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The library's messages already include their causes, so `{:#}`
            // (which appends each cause) would repeat them. One line, always.
            let msg = if e.downcast_ref::<seldon_engine::info::InfoError>().is_some()
                || e.downcast_ref::<seldon_engine::generate::run::RunError>()
                    .is_some()
                || e.downcast_ref::<seldon_engine::cli::tokenize::TokenizeError>()
                    .is_some()
                || e.downcast_ref::<seldon_engine::synth::SynthError>()
                    .is_some()
                || e.downcast_ref::<seldon_engine::cli::chat::ChatError>()
                    .is_some()
                || e.downcast_ref::<seldon_engine::cli::logits::LogitsError>()
                    .is_some()
            {
                e.to_string()
            } else {
                format!("{e:#}")
            };
            let msg = msg.replace(['\n', '\r'], " ");
            // Nothing sensible is left to do if stderr is gone too.
            let _ = writeln!(std::io::stderr(), "seldon: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
