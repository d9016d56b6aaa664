//! `seldon logits` against the llama.cpp references: the logits at every
//! position, written as a float32 .npy array, and its errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model_util;

use std::path::PathBuf;
use std::process::{Command, Output};

use model_util::{case, ids, npy_f32, references};

fn seldon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seldon"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seldon-cli-logits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs `seldon logits` on a tiny reference case and returns the largest
/// difference from llama.cpp's logits.
fn max_diff(arch: &str, extra: &[&str]) -> f32 {
    let c = case(&format!("tiny/{arch}-F32"));
    let model = references().join(c["model"].as_str().unwrap());
    let tokens = ids(&c["tokens"]);
    let name = format!("{arch}{}", extra.join(""));
    let f = temp_file(
        &format!("{name}.json"),
        &serde_json::to_string(&tokens).unwrap(),
    );
    let out = temp_dir().join(format!("{name}.npy"));
    let mut args = vec![
        "logits",
        "-m",
        model.to_str().unwrap(),
        "--tokens-file",
        f.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = seldon(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n_vocab = c["n_vocab"].as_u64().unwrap() as usize;
    assert_eq!(report["n_tokens"], tokens.len());
    assert_eq!(report["n_vocab"], n_vocab);
    assert_eq!(report["out"], out.to_str().unwrap());
    let (shape, got) = npy_f32(&out);
    assert_eq!(shape, [tokens.len(), n_vocab]);
    let (_, want) = npy_f32(&references().join(c["logits"]["file"].as_str().unwrap()));
    assert!(got.iter().all(|v| v.is_finite()));
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cpu_logits_match_llama_cpp_on_the_tiny_f32_models() {
    for arch in ["llama", "qwen2"] {
        let d = max_diff(arch, &["--cpu"]);
        assert!(d < 1e-3, "{arch}: {d}");
    }
    // Micro-batches of 7 tokens give the same logits.
    let d = max_diff("llama", &["--cpu", "-b", "7"]);
    assert!(d < 1e-3, "{d}");
}

#[test]
fn gpu_logits_match_llama_cpp_on_the_tiny_f32_model() {
    let d = max_diff("llama", &["-b", "16"]);
    assert!(d < 1e-3, "{d}");
}

#[test]
fn usage_errors_exit_2_and_bad_input_exits_1_with_one_line() {
    let model = references().join("tiny/llama-F32/model.gguf");
    let m = model.to_str().unwrap();
    let good = temp_file("good.json", "[1, 20, 30]");
    let out = temp_dir().join("err.npy");
    let o = out.to_str().unwrap();
    for args in [
        vec!["logits", "-m", m, "--out", o],
        vec!["logits", "-m", m, "--tokens-file", good.to_str().unwrap()],
        vec![
            "logits",
            "-m",
            m,
            "--tokens-file",
            good.to_str().unwrap(),
            "--out",
            o,
            "-b",
            "0",
        ],
        vec![
            "logits",
            "-m",
            m,
            "--tokens-file",
            good.to_str().unwrap(),
            "--out",
            o,
            "-ctk",
            "q8",
        ],
    ] {
        let r = seldon(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", text(&r.stderr));
    }
    let not_json = temp_file("not.json", "[1, 2,");
    let too_big = temp_file("big.json", "[1, 336]");
    let negative = temp_file("neg.json", "[1, -3]");
    let empty = temp_file("empty.json", "[]");
    let cases = [
        (
            vec!["--tokens-file", not_json.to_str().unwrap(), "--out", o],
            "JSON array",
        ),
        (
            vec!["--tokens-file", too_big.to_str().unwrap(), "--out", o],
            "outside the vocabulary",
        ),
        (
            vec!["--tokens-file", negative.to_str().unwrap(), "--out", o],
            "JSON array",
        ),
        (
            vec!["--tokens-file", empty.to_str().unwrap(), "--out", o],
            "no tokens",
        ),
        (
            vec!["--tokens-file", "/nonexistent.json", "--out", o],
            "tokens file",
        ),
        (
            vec![
                "--tokens-file",
                good.to_str().unwrap(),
                "--out",
                "/nonexistent/dir/x.npy",
            ],
            "writing",
        ),
        (
            vec![
                "--tokens-file",
                good.to_str().unwrap(),
                "--out",
                o,
                "-c",
                "2",
            ],
            "context is full",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["logits", "--cpu", "-m", m];
        args.extend_from_slice(&extra);
        let r = seldon(&args);
        let stderr = text(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("seldon: error: "), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "{args:?} left {o}");
    }
    let r = seldon(&[
        "logits",
        "--cpu",
        "-m",
        "/nonexistent.gguf",
        "--tokens-file",
        good.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(r.status.code(), Some(1));
    // Without --json: one line naming the file.
    let r = seldon(&[
        "logits",
        "--cpu",
        "-m",
        m,
        "--tokens-file",
        good.to_str().unwrap(),
        "--out",
        o,
        "-ctk",
        "f16",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert!(text(&r.stdout).contains("[3, 336]"), "{}", text(&r.stdout));
    assert_eq!(npy_f32(&out).0, [3, 336]);
}
