//! Streams SmolLM2's answer to a question through its chat template.
//!
//! ```sh
//! cargo run --release -p seldon-engine --example generate -- [MODEL.gguf] [--cpu]
//! ```
//! The model defaults to the one `scripts/fetch-models.sh` fetches.

use std::io::Write;
use std::path::PathBuf;

use seldon_engine::{Engine, EngineOptions, GenerateOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = match args.iter().find(|a| !a.starts_with("--")) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var("HOME")?)
            .join(".cache/seldon/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    let options = match args.iter().any(|a| a == "--cpu") {
        true => EngineOptions::cpu(),
        false => EngineOptions::default(),
    };
    let engine = Engine::load(&model, options)?;
    let mut session = engine.session()?;
    let question = "What is the capital of France? Answer in one sentence.";
    println!("> {question}");
    let reply = session.user_turn(question, &GenerateOptions::greedy(), |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
    })?;
    println!(
        "\n[{} tokens, {:.1} tokens/s, stopped by {}]",
        reply.tokens.len(),
        reply.gen_tps(),
        reply.stop.name()
    );
    Ok(())
}
