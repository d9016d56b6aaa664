//! Shared helpers of the model tests: the llama.cpp references in
//! conformance/references, a minimal .npy reader, and distance metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// conformance/references, generated from llama.cpp 0.3.36 (see its README).
pub fn references() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/references")
}

/// A case's `case.json`.
pub fn case(name: &str) -> Value {
    let path = references().join(name).join("case.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The ids of a JSON array.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// SmolLM2-135M-Instruct Q4_1 (scripts/fetch-models.sh puts it there).
pub fn smollm2() -> PathBuf {
    let dir = std::env::var_os("SELDON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/seldon/models")
        });
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// A little-endian C-order .npy array of 4-byte elements (`<f4` or `<i4`):
/// its shape and raw 32-bit words.
pub fn npy_words(path: &Path) -> (Vec<usize>, Vec<[u8; 4]>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(
        header.contains("'<f4'") || header.contains("'<i4'"),
        "{header}"
    );
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[10 + header_len..];
    let words: Vec<[u8; 4]> = data
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    assert_eq!(words.len(), shape.iter().product::<usize>());
    (shape, words)
}

/// An f32 .npy file.
pub fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let (shape, w) = npy_words(path);
    (shape, w.into_iter().map(f32::from_le_bytes).collect())
}

/// An i32 .npy file.
pub fn npy_i32(path: &Path) -> (Vec<usize>, Vec<i32>) {
    let (shape, w) = npy_words(path);
    (shape, w.into_iter().map(i32::from_le_bytes).collect())
}

/// log-softmax of one row, in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

/// KL(p || q) in nats for two rows of logits.
pub fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter().zip(&lq).map(|(&a, &b)| a.exp() * (a - b)).sum()
}

/// The index of the largest value (the lowest among ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Distances between two `[n][n_vocab]` logit arrays.
#[derive(Debug)]
pub struct Distance {
    pub max_abs: f64,
    pub mean_kl: f64,
    pub max_kl: f64,
    pub top1: f64,
}

pub fn distance(expected: &[f32], actual: &[f32], n_vocab: usize) -> Distance {
    assert_eq!(expected.len(), actual.len());
    let mut d = Distance {
        max_abs: 0.0,
        mean_kl: 0.0,
        max_kl: 0.0,
        top1: 0.0,
    };
    let rows = expected.len() / n_vocab;
    let mut agree = 0usize;
    for (e, a) in expected
        .chunks_exact(n_vocab)
        .zip(actual.chunks_exact(n_vocab))
    {
        for (&x, &y) in e.iter().zip(a) {
            assert!(y.is_finite(), "non-finite logit");
            d.max_abs = d.max_abs.max((x as f64 - y as f64).abs());
        }
        let k = kl(e, a);
        d.mean_kl += k / rows as f64;
        d.max_kl = d.max_kl.max(k);
        agree += usize::from(argmax(e) == argmax(a));
    }
    d.top1 = agree as f64 / rows as f64;
    d
}
