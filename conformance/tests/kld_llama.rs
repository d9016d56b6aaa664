//! `kld` on base files that llama.cpp's own `llama-perplexity` wrote
//! (tests/data/README.md says how): the format is read as llama.cpp writes it,
//! and the statistics agree with the ones llama-perplexity printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use seldon_conformance::case::References;
use seldon_conformance::kld::file::KldReader;
use seldon_conformance::kld::{compare_files, compare_model};
use seldon_conformance::run::{Backend, Engine};
use seldon_engine::tokenizer::Tokenizer;
use seldon_formats::gguf::GgufFile;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// llama-perplexity's per-chunk columns for Q8_0 against the Q4_K_M base:
/// KL divergence, Δp RMS (%) and same top p (%).
const LLAMA_CHUNKS: [(f64, f64, f64); 3] = [
    (0.53216, 0.437, 60.000),
    (0.68921, 0.320, 46.667),
    (0.67886, 7.691, 57.778),
];

#[test]
fn header_and_tokens_of_a_llama_perplexity_file() {
    let mut r = KldReader::open(&data("llama-Q4_K_M.kld")).unwrap();
    let h = r.header().clone();
    assert_eq!((h.n_ctx, h.n_vocab, h.n_chunk), (32, 336, 3));
    // llama-perplexity tokenizes with BOS; the tokens are the text's own,
    // which decode back to the file it read (the references README's head).
    assert_eq!(h.tokens[0], 1);
    let model = References::committed_dir().join("tiny/llama-Q4_K_M/model.gguf");
    let tok = Tokenizer::from_gguf(&GgufFile::open(&model).unwrap()).unwrap();
    let text = tok.decode(&h.tokens[1..]);
    assert!(
        text.starts_with("# Conformance references from llama.cpp"),
        "{text:?}"
    );
    let mut rows = 0;
    while let Some(chunk) = r.next_chunk().unwrap() {
        for j in 0..chunk.len() {
            let row = chunk.row(j);
            let total: f64 = (0..336).map(|i| f64::from(row.log_prob(i)).exp()).sum();
            // Normalized up to the clamp at 16 nats below the top.
            assert!(
                (total - 1.0).abs() < 336.0 * (-16f64).exp() + 1e-3,
                "{total}"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, 3 * 15);
}

#[test]
fn second_file_reproduces_llama_perplexity_statistics() {
    let r = compare_files(&data("llama-Q4_K_M.kld"), &data("llama-Q8_0.kld")).unwrap();
    assert_eq!(r.chunks.len(), 3);
    for (got, (kld, rms, top)) in r.chunks.iter().zip(LLAMA_CHUNKS) {
        assert!(
            (got.kld.value - kld).abs() < 5e-5,
            "KLD {} vs {kld}",
            got.kld.value
        );
        assert!(
            (100.0 * got.rms_p_diff.value - rms).abs() < 2e-3,
            "RMS {} vs {rms}",
            got.rms_p_diff.value
        );
        assert!(
            (100.0 * got.same_top_p.value - top).abs() < 1e-3,
            "top {} vs {top}",
            got.same_top_p.value
        );
    }
    // Far apart models: the thresholds fail, as they should.
    assert!(!r.pass);
}

/// seldon's CPU forward pass on the model that made the base file: the
/// quantized-model limits hold on llama-perplexity's own file and chunking.
#[test]
fn seldon_on_the_base_files_model_meets_the_limits() {
    let model = References::committed_dir().join("tiny/llama-Q4_K_M/model.gguf");
    let engine = Engine::new(Backend::Cpu).unwrap();
    let r = compare_model(&data("llama-Q4_K_M.kld"), &engine, &model).unwrap();
    let s = r.summary.as_ref().unwrap();
    println!("{}", r.to_text());
    assert_eq!(s.count, 45);
    assert!(s.kld.value < 0.01, "{}", s.kld.value);
    assert!(r.pass);
}
