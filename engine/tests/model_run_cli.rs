//! `seldon run` end to end on the CPU path: text, JSON, seeds, the context
//! limit and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model_util;

use std::path::PathBuf;
use std::process::{Command, Output};

use model_util::{references, smollm2};

fn seldon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seldon"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tiny_llama() -> String {
    references()
        .join("tiny/llama-F32/model.gguf")
        .to_string_lossy()
        .into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seldon-model-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn greedy_smollm2_says_paris() {
    let m = smollm2();
    let out = seldon(&[
        "run",
        "--cpu",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(" Paris"), "{stdout:?}");
    // Only generated text on stdout, never the prompt; timings on stderr.
    assert!(!stdout.contains("capital"), "{stdout:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("prompt: 5 tokens") && stderr.contains("generation: 8 tokens"),
        "{stderr}"
    );
}

#[test]
fn json_report_from_a_tokens_file() {
    let m = smollm2();
    // llama.cpp's tokens for "The capital of France is" (SmolLM2 adds no BOS).
    let f = temp_file("capital.json", "[504, 3575, 282, 4649, 314]");
    let out = seldon(&[
        "run",
        "--cpu",
        "-m",
        m.to_str().unwrap(),
        "--tokens-file",
        f.to_str().unwrap(),
        "-n",
        "2",
        "--temp",
        "0",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["tokens"], serde_json::json!([7042, 30]));
    assert_eq!(v["text"], " Paris.");
    assert_eq!(v["prompt_tokens"], 5);
    assert!(v["prompt_tps"].as_f64().unwrap() > 0.0);
    assert!(v["gen_tps"].as_f64().unwrap() > 0.0);
    assert_eq!(v["stop"], "length");
}

#[test]
fn same_seed_same_text_and_other_seeds_differ() {
    let m = tiny_llama();
    let sample = |seed: &str| {
        json(&seldon(&[
            "run",
            "--cpu",
            "-m",
            &m,
            "-p",
            "Hello world",
            "-n",
            "24",
            "-s",
            seed,
            "--json",
            "--temp",
            "1.5",
            "--top-k",
            "0",
            "--top-p",
            "1",
            "--min-p",
            "0",
        ]))["tokens"]
            .clone()
    };
    let a = sample("11");
    assert_eq!(a, sample("11"));
    assert_ne!(a, sample("12"));
}

#[test]
fn a_full_context_stops_with_a_message() {
    let m = tiny_llama();
    let f = temp_file("three.json", "[1, 20, 30]");
    let out = seldon(&[
        "run",
        "--cpu",
        "-m",
        &m,
        "--tokens-file",
        f.to_str().unwrap(),
        "-c",
        "8",
        "-n",
        "-1",
        "--temp",
        "0",
        "--json",
    ]);
    let v = json(&out);
    // Positions 0..8: three prompt tokens, five evaluated generated tokens and
    // one last sampled token, unless an end-of-generation token came first.
    let n = v["tokens"].as_array().unwrap().len();
    if v["stop"] == "context_full" {
        assert_eq!(n, 6);
        assert!(
            text(&out.stderr).contains("context is full"),
            "{}",
            text(&out.stderr)
        );
    } else {
        assert_eq!(v["stop"], "eog");
        assert!(n < 6);
    }
    // A prompt longer than the context is an error.
    let out = seldon(&[
        "run",
        "--cpu",
        "-m",
        &m,
        "--tokens-file",
        f.to_str().unwrap(),
        "-c",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("context is full"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1() {
    let m = tiny_llama();
    for args in [
        vec!["run", "-p", "x"],
        vec!["run", "-m", &m],
        vec!["run", "-m", &m, "-p", "x", "-n", "-2"],
        vec!["run", "-m", &m, "-p", "x", "-b", "0"],
        vec!["run", "-m", &m, "-p", "x", "-ctk", "q4"],
    ] {
        let out = seldon(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let bad_ids = temp_file("bad.json", "[1, 100000]");
    let not_json = temp_file("not.json", "hello");
    let empty = temp_file("empty.json", "[]");
    for args in [
        vec!["run", "--cpu", "-m", "/nonexistent/model.gguf", "-p", "x"],
        vec![
            "run",
            "--cpu",
            "-m",
            &m,
            "--tokens-file",
            bad_ids.to_str().unwrap(),
        ],
        vec![
            "run",
            "--cpu",
            "-m",
            &m,
            "--tokens-file",
            not_json.to_str().unwrap(),
        ],
        vec![
            "run",
            "--cpu",
            "-m",
            &m,
            "--tokens-file",
            "/nonexistent.json",
        ],
        vec![
            "run",
            "--cpu",
            "-m",
            &m,
            "--tokens-file",
            empty.to_str().unwrap(),
        ],
    ] {
        let out = seldon(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("seldon: error: "), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // llama.cpp's single-dash cache flags parse.
    let out = seldon(&[
        "run", "--cpu", "-m", &m, "-p", "x", "-n", "1", "-ctk", "f32", "-ctv", "f32",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
