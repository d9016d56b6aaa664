#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `seldon tokenize` run as a user runs it: the built binary on the real
//! SmolLM2 model. Expected ids are llama.cpp's `llama_tokenize(add_special =
//! true, parse_special)` for the same texts (llama-cpp-python 0.3.36).

use std::path::PathBuf;
use std::process::{Command, Output};

fn seldon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seldon"))
        .args(args)
        .env_remove("SELDON_LOG")
        .output()
        .unwrap()
}

fn smollm2() -> String {
    let models = std::env::var_os("SELDON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon/models")
        });
    let path = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn prints_llama_cpp_ids() {
    let m = smollm2();
    let out = seldon(&["tokenize", "-m", &m, "--text", "The capital of France is"]);
    assert_eq!(stdout(&out), "504 3575 282 4649 314\n");

    let out = seldon(&[
        "tokenize",
        "-m",
        &m,
        "--text",
        "The capital of France is",
        "--json",
    ]);
    let ids: Vec<u32> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(ids, vec![504, 3575, 282, 4649, 314]);
}

#[test]
fn parse_special_turns_control_text_into_ids() {
    let m = smollm2();
    let plain = stdout(&seldon(&[
        "tokenize",
        "-m",
        &m,
        "--text",
        "<|im_start|>user",
    ]));
    assert_eq!(plain, "44 108 306 79 3738 108 46 4093\n");
    let special = stdout(&seldon(&[
        "tokenize",
        "-m",
        &m,
        "--text",
        "<|im_start|>user",
        "--parse-special",
    ]));
    assert_eq!(special, "1 4093\n");
}

#[test]
fn reads_text_files() {
    let m = smollm2();
    let dir = std::env::temp_dir().join(format!("seldon-cli-tokenize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("prompt.txt");
    std::fs::write(&text, "The capital of France is").unwrap();
    let out = seldon(&["tokenize", "-m", &m, "--text-file", text.to_str().unwrap()]);
    assert_eq!(stdout(&out), "504 3575 282 4649 314\n");

    let bad = dir.join("latin1.txt");
    std::fs::write(&bad, [0x66, 0xe9, 0x65]).unwrap();
    let out = seldon(&["tokenize", "-m", &m, "--text-file", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not valid UTF-8"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_1_and_usage_errors_exit_2() {
    let m = smollm2();
    // Runtime errors: one line on stderr, exit 1.
    let out = seldon(&["tokenize", "-m", "/nonexistent/model.gguf", "--text", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("seldon: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = seldon(&[
        "tokenize",
        "-m",
        &m,
        "--text-file",
        "/nonexistent/prompt.txt",
    ]);
    assert_eq!(out.status.code(), Some(1));

    // Usage errors: no text, or both kinds of text.
    assert_eq!(seldon(&["tokenize", "-m", &m]).status.code(), Some(2));
    let out = seldon(&["tokenize", "-m", &m, "--text", "a", "--text-file", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(seldon(&["tokenize", "--text", "a"]).status.code(), Some(2));
}
