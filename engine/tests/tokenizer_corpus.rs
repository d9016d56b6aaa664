#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! llama.cpp's own tokenizer corpus: the `ggml-vocab-*.gguf` vocabularies with their
//! `.inp` texts and `.out` token ids (fetched by scripts/fetch-vocabs.sh), read the
//! way llama.cpp's tests/test-tokenizer-0 reads them, plus llama.cpp's ids with
//! special tokens on and its detokenized text (engine/tests/data/vocab_corpus_refs.json,
//! made by engine/scripts/make_tokenizer_refs.py).

use std::path::PathBuf;

use seldon_engine::tokenizer::{ModelKind, Tokenizer};
use seldon_formats::gguf::GgufFile;
use serde_json::Value;

fn vocab_dir() -> PathBuf {
    let models = std::env::var_os("SELDON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon/models")
        });
    models.join("vocab")
}

fn load(name: &str) -> (Tokenizer, Vec<(String, Vec<u32>)>) {
    let gguf = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
    assert!(
        gguf.exists(),
        "{} is missing: run scripts/fetch-vocabs.sh to fetch llama.cpp's tokenizer corpus",
        gguf.display()
    );
    let file = GgufFile::open(&gguf).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let inp = std::fs::read_to_string(format!("{}.inp", gguf.display())).unwrap();
    let out = std::fs::read_to_string(format!("{}.out", gguf.display())).unwrap();
    // test-tokenizer-0: texts separated by this marker (a trailing empty one dropped),
    // one line of space-separated ids per text.
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        texts.len(),
        lines.len(),
        "{name}: .inp and .out disagree on the number of tests"
    );
    let cases = texts
        .iter()
        .zip(lines)
        .map(|(t, l)| {
            (
                t.to_string(),
                l.split_whitespace().map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect();
    (tok, cases)
}

fn refs(name: &str) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/vocab_corpus_refs.json"
    );
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all[name].as_array().unwrap().clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn check(name: &str, kind: ModelKind, pre: &str, n_vocab: usize) {
    let (tok, cases) = load(name);
    assert_eq!(tok.model_kind(), kind);
    assert_eq!(tok.pre(), pre);
    assert_eq!(tok.n_vocab(), n_vocab);
    assert!(cases.len() >= 30, "{name}: only {} cases", cases.len());

    let mut failures = Vec::new();
    for (text, expected) in &cases {
        let got = tok.encode(text, false, false).unwrap();
        if &got != expected {
            failures.push(format!(
                "{text:?}\n  llama.cpp {expected:?}\n  seldon    {got:?}"
            ));
        }
    }
    let refs = refs(name);
    assert_eq!(
        refs.len(),
        cases.len(),
        "{name}: regenerate vocab_corpus_refs.json"
    );
    let mut round_trips = 0;
    for (r, (text, _)) in refs.iter().zip(&cases) {
        assert_eq!(
            r["text"].as_str().unwrap(),
            text,
            "{name}: refs out of step with the corpus"
        );
        let special = ids(&r["ids_special"]);
        let got = tok.encode(text, true, true).unwrap();
        if got != special {
            failures.push(format!(
                "{text:?} (special)\n  llama.cpp {special:?}\n  seldon    {got:?}"
            ));
        }
        // decode(encode(x)) gives what llama.cpp's detokenizer gives, so it is x
        // exactly where llama.cpp's own round trip holds.
        let decoded = tok.decode(&tok.encode(text, false, false).unwrap());
        let llama = r["roundtrip"].as_str().unwrap();
        if decoded != llama {
            failures.push(format!(
                "{text:?} (decode)\n  llama.cpp {llama:?}\n  seldon    {decoded:?}"
            ));
        }
        if llama == text {
            assert_eq!(&decoded, text);
            round_trips += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        round_trips > cases.len() / 2,
        "{name}: only {round_trips} round trips"
    );
}

#[test]
fn gpt2_matches_llama_cpp() {
    check("gpt-2", ModelKind::Gpt2, "gpt-2", 50257);
}

#[test]
fn llama_bpe_matches_llama_cpp() {
    check("llama-bpe", ModelKind::Gpt2, "llama-bpe", 128256);
}

#[test]
fn qwen2_matches_llama_cpp() {
    check("qwen2", ModelKind::Gpt2, "qwen2", 151936);
}

#[test]
fn llama_spm_matches_llama_cpp() {
    check("llama-spm", ModelKind::Llama, "default", 32000);
}
