#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `seldon info` run as a user runs it: the built binary, its stdout, stderr and
//! exit code, on the real SmolLM2 model, a safetensors file and broken inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn seldon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seldon"))
        .args(args)
        .env_remove("SELDON_LOG")
        .output()
        .unwrap()
}

fn models_dir() -> PathBuf {
    match std::env::var_os("SELDON_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon/models"),
    }
}

fn smollm2() -> PathBuf {
    let path = models_dir().join(SMOLLM2);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh (or scripts/test.sh, which runs it)",
        path.display()
    );
    path
}

fn tmp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_info");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn json_of(path: &Path) -> Value {
    let out = seldon(&["info", "-m", path.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts the run failed with `code` and one clean line on stderr; returns it.
fn assert_fails(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout should be empty on error");
    stderr
}

#[test]
fn smollm2_json() {
    let path = smollm2();
    let file_len = std::fs::metadata(&path).unwrap().len();
    let v = json_of(&path);

    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["metadata"]["llama.block_count"], 30);
    assert_eq!(v["metadata"]["llama.embedding_length"], 576);
    assert_eq!(v["metadata"]["general.architecture"], "llama");
    // Long arrays are summarized, not dumped.
    assert_eq!(
        v["metadata"]["tokenizer.ggml.tokens"],
        serde_json::json!({"array_of": "string", "len": 49152})
    );
    assert_eq!(v["tokenizer"]["vocab_size"], 49152);
    assert_eq!(v["tokenizer"]["merges"], 48900);
    assert_eq!(v["tokenizer"]["special_ids"]["bos"], 1);
    assert_eq!(v["tokenizer"]["special_ids"]["eos"], 2);
    assert_eq!(v["chat_template"], true);

    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 272);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tensors {
        *counts.entry(t["type"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("F32", 61), ("Q4_1", 210), ("Q8_0", 1)])
    );
    assert_eq!(v["totals_by_type"]["Q4_1"]["count"], 210);
    assert_eq!(v["totals"]["count"], 272);

    let embd = tensors
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(embd["type"], "Q8_0");
    assert_eq!(embd["shape"], serde_json::json!([576, 49152]));
    // Q8_0: 34 bytes per 32 weights.
    assert_eq!(embd["bytes"], 576 * 49152 / 32 * 34);

    // Offsets are absolute: inside the data section, 32-byte aligned, in
    // order, not overlapping, and the last tensor ends at the end of the file.
    let data_offset = v["data_offset"].as_u64().unwrap();
    assert!(data_offset.is_multiple_of(32));
    let mut end = data_offset;
    let mut spans: Vec<(u64, u64)> = tensors
        .iter()
        .map(|t| (t["offset"].as_u64().unwrap(), t["bytes"].as_u64().unwrap()))
        .collect();
    spans.sort_unstable();
    for (offset, bytes) in spans {
        assert!(offset >= end, "overlap at {offset}");
        assert!(offset.is_multiple_of(32), "{offset}");
        end = offset + bytes;
    }
    assert!(file_len - end < 32, "end {end} vs file {file_len}");

    // Independently of the reader: an RMSNorm weight read at its absolute
    // offset holds plausible floats (finite, not all zero, mostly near 1).
    let norm = tensors
        .iter()
        .find(|t| t["name"] == "blk.0.attn_norm.weight")
        .unwrap();
    assert_eq!(norm["type"], "F32");
    assert_eq!(norm["shape"], serde_json::json!([576]));
    let bytes = std::fs::read(&path).unwrap();
    let off = norm["offset"].as_u64().unwrap() as usize;
    let w: Vec<f32> = bytes[off..off + 576 * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(w.iter().all(|x| x.is_finite() && x.abs() < 100.0), "{w:?}");
    assert!(w.iter().any(|&x| x != 0.0));
}

#[test]
fn smollm2_text() {
    let path = smollm2();
    let out = seldon(&["info", "-m", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "architecture:  llama",
        "block_count",
        "vocab size 49152",
        "chat template: present",
        "tensors: 272",
        "token_embd.weight",
        "totals by type:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let q41 = text
        .lines()
        .find(|l| l.trim_start().starts_with("Q4_1 ") && !l.contains('['))
        .unwrap();
    assert!(q41.contains(" 210 "), "{q41}");
}

/// A hand-written safetensors file: F32 [2, 3] and BF16 [4].
fn safetensors_bytes() -> Vec<u8> {
    let header = r#"{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b.weight":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 32]);
    bytes
}

#[test]
fn safetensors_json() {
    let bytes = safetensors_bytes();
    let header_len = bytes.len() as u64 - 8 - 32;
    // Detected by its header, not its name.
    let path = tmp_file("model.bin", &bytes);
    let v = json_of(&path);
    assert_eq!(v["architecture"], Value::Null);
    assert_eq!(v["format"], "safetensors");
    assert_eq!(v["metadata"]["format"], "pt");
    let t = v["tensors"].as_array().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["name"], "a.weight");
    assert_eq!(t[0]["type"], "F32");
    // ggml order: the safetensors shape reversed.
    assert_eq!(t[0]["shape"], serde_json::json!([3, 2]));
    assert_eq!(t[0]["offset"], 8 + header_len);
    assert_eq!(t[0]["bytes"], 24);
    assert_eq!(t[1]["type"], "BF16");
    assert_eq!(t[1]["offset"], 8 + header_len + 24);

    let out = seldon(&["info", "-m", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("format:        safetensors"), "{text}");
}

#[test]
fn malformed_files_fail_with_one_line() {
    let smollm_head = {
        // A real GGUF header cut short: the tensor infos are missing.
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&272u64.to_le_bytes());
        v
    };
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated.gguf", smollm_head),
        ("empty.gguf", Vec::new()),
        ("garbage.bin", b"this is not a model file".to_vec()),
        ("bad.safetensors", b"\x05\0\0\0\0\0\0\0{oops".to_vec()),
        ("short.safetensors", b"\x40\0\0\0".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = tmp_file(name, &bytes);
        for json in [false, true] {
            let mut args = vec!["info", "-m", path.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let stderr = assert_fails(&seldon(&args), 1);
            assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            assert!(stderr.starts_with("seldon: error: "), "{stderr}");
            assert!(stderr.contains(name), "{name}: {stderr}");
        }
    }
}

#[test]
fn missing_file_fails() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("does-not-exist.gguf");
    let stderr = assert_fails(&seldon(&["info", "-m", path.to_str().unwrap()]), 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does-not-exist.gguf"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    assert_fails(&seldon(&["info"]), 2);
    assert_fails(&seldon(&["info", "-m"]), 2);
    assert_fails(&seldon(&["info", "-m", "x.gguf", "--bogus"]), 2);
    assert_fails(&seldon(&["frobnicate"]), 2);
    assert_fails(&seldon(&[]), 2);
}
