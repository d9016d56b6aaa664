//! `seldon chat`: a conversation through the model's chat template, keeping
//! the KV cache between turns. On a terminal it prompts for each message;
//! otherwise each input line is one user turn and end of input ends the chat,
//! so it can be scripted.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Args;

use super::args::{LoadArgs, SamplingArgs};
use crate::chat_template::ChatMessage;
use crate::generate::StopReason;
use crate::model::ModelError;
use crate::session::{Completion, Engine, EngineError, GenerateOptions};

/// Arguments of `seldon chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// The model (.gguf); it must carry a chat template.
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    pub model: PathBuf,
    /// A system message to start the conversation with.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Tokens to generate per turn; -1 runs until an end-of-generation token.
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub n_predict: i64,
    /// Sampling.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Context, batch, cache types and device.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Why `seldon chat` failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Loading the model or generating failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The conversation no longer fits the context.
    #[error("the context is full ({n_ctx} positions); start a new chat or raise -c")]
    ContextFull {
        /// The context size.
        n_ctx: usize,
    },
    /// Reading input or writing output failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

/// Runs `seldon chat`: user turns from `input` (prompted for on `err` when
/// `interactive`), the assistant's replies streamed to `out`, timings on `err`.
pub fn run(
    args: &ChatArgs,
    input: &mut dyn BufRead,
    interactive: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), ChatError> {
    let engine = Engine::load(&args.model, args.load.engine_options())?;
    // Fail before the first prompt rather than after it.
    if engine.chat_template().is_none() {
        engine.session()?.chat_tokens(&[])?;
    }
    let mut session = engine.session()?;
    if let Some(system) = &args.system {
        session
            .history_mut()
            .push(ChatMessage::new("system", system.as_str()));
    }
    let options = GenerateOptions {
        max_tokens: usize::try_from(args.n_predict).ok(),
        sampling: args.sampling.params(engine.n_ctx()),
        ..GenerateOptions::default()
    };
    let n_ctx = engine.n_ctx();
    // Prompts and timings are best effort: a closed stderr must not end the chat.
    if interactive {
        let _ = writeln!(
            err,
            "seldon chat on {} ({} positions); end with Ctrl-D",
            session.backend(),
            n_ctx
        );
    }
    let mut line = String::new();
    loop {
        if interactive {
            let _ = write!(err, "> ");
            let _ = err.flush();
        }
        line.clear();
        if input.read_line(&mut line).map_err(ChatError::Io)? == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let reply = session.user_turn(text, &options, |piece| {
            // A failed write shows up again at the flush below.
            let _ = out.write_all(piece.as_bytes()).and_then(|()| out.flush());
        });
        let reply = match reply {
            Ok(r) => r,
            Err(EngineError::Model(ModelError::ContextFull { .. })) => {
                return Err(ChatError::ContextFull { n_ctx });
            }
            Err(e) => return Err(e.into()),
        };
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(ChatError::Io)?;
        report(err, &reply);
        if reply.stop == StopReason::ContextFull {
            return Err(ChatError::ContextFull { n_ctx });
        }
    }
    Ok(())
}

fn report(err: &mut dyn Write, c: &Completion) {
    let _ = writeln!(
        err,
        "[prompt: {} new tokens ({} cached), {:.2} t/s | generation: {} tokens, {:.2} t/s]",
        c.prefilled_tokens,
        c.prompt_tokens - c.prefilled_tokens,
        c.prompt_tps(),
        c.tokens.len(),
        c.gen_tps()
    );
}
