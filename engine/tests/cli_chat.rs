//! `seldon chat` scripted through stdin: one user turn per line, the KV cache
//! kept between turns, a full context and a missing template as errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model_util;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use model_util::{references, smollm2};

fn chat(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_seldon"))
        .arg("chat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The "(N cached)" counts of the per-turn timing lines.
fn cached_counts(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|l| l.split(" new tokens (").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn smollm2_answers_two_scripted_turns_keeping_the_cache() {
    let m = smollm2();
    let out = chat(
        &[
            "--cpu",
            "-m",
            m.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "40",
            "--system",
            "You are a helpful assistant.",
        ],
        "What is the capital of France?\n\nAnd what is the capital of Germany?\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // One reply per line of input (the blank line is skipped).
    let replies: Vec<&str> = stdout.lines().collect();
    assert_eq!(replies.len(), 2, "{stdout:?}");
    assert!(replies[0].contains("Paris"), "{stdout:?}");
    assert!(replies[1].contains("Berlin"), "{stdout:?}");
    // The second turn reuses the first turn's cache.
    let cached = cached_counts(&stderr);
    assert_eq!(cached.len(), 2, "{stderr}");
    assert_eq!(cached[0], 0);
    assert!(cached[1] > 30, "{stderr}");
}

#[test]
fn a_full_context_and_a_missing_template_exit_1_with_one_line() {
    let qwen2 = references().join("tiny/qwen2-F32/model.gguf");
    let llama = references().join("tiny/llama-F32/model.gguf");
    let q = qwen2.to_str().unwrap();
    // The prompt itself does not fit.
    let out = chat(&["--cpu", "-m", q, "-c", "8", "--temp", "0"], "hello\n");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("seldon: error: the context is full"),
        "{stderr}"
    );
    // The reply fills the context: what was generated is printed, then the error.
    let out = chat(
        &["--cpu", "-m", q, "-c", "40", "--temp", "0"],
        "hello\nmore\n",
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("seldon: error: the context is full (40 positions)"),
        "{stderr}"
    );
    assert!(!text(&out.stdout).is_empty());
    // No chat template.
    let out = chat(&["--cpu", "-m", llama.to_str().unwrap()], "hello\n");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no chat template"), "{stderr}");
    // Usage errors.
    for args in [
        vec!["--cpu"],
        vec!["-m", q, "-n", "-2"],
        vec!["-m", q, "--temp", "x"],
    ] {
        let out = chat(&args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Empty input: nothing to say, success.
    let out = chat(&["--cpu", "-m", q], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}
