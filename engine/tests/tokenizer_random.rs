#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Differential test against llama.cpp on seeded random texts that mix the corner
//! cases (every Unicode category, unusual whitespace, contractions, digit runs,
//! special tokens). Each configuration is a vocabulary, possibly with a metadata
//! override (the gpt-2 vocabulary under every supported pre-tokenizer, SentencePiece
//! without the space prefix). References: engine/tests/data/tokenizer_random_refs.json,
//! made by engine/scripts/make_tokenizer_refs.py. Vocabularies come from
//! scripts/fetch-vocabs.sh, SmolLM2 from scripts/fetch-models.sh.

use std::path::PathBuf;

use seldon_engine::tokenizer::{Tokenizer, Vocab};
use seldon_formats::gguf::GgufFile;
use serde_json::Value;

fn models_dir() -> PathBuf {
    std::env::var_os("SELDON_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/seldon/models")
        })
}

fn parse_ids(s: &str) -> Vec<u32> {
    s.split_whitespace().map(|x| x.parse().unwrap()).collect()
}

#[test]
fn random_texts_match_llama_cpp_in_every_configuration() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/tokenizer_random_refs.json"
    );
    let refs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let texts: Vec<&str> = refs["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let configs = refs["configs"].as_array().unwrap();
    assert!(configs.len() >= 10 && texts.len() >= 50);

    let mut failures = Vec::new();
    for config in configs {
        let name = config["name"].as_str().unwrap();
        let file = models_dir().join(config["file"].as_str().unwrap());
        assert!(
            file.exists(),
            "{} is missing: run scripts/fetch-vocabs.sh and scripts/fetch-models.sh",
            file.display()
        );
        let mut vocab = Vocab::from_gguf(&GgufFile::open(&file).unwrap()).unwrap();
        for (key, value) in config["overrides"].as_object().unwrap() {
            match key.as_str() {
                "tokenizer.ggml.pre" => vocab.pre = Some(value.as_str().unwrap().to_string()),
                "tokenizer.ggml.add_space_prefix" => vocab.add_space_prefix = value.as_bool(),
                other => panic!("no override for {other}"),
            }
        }
        let tok = Tokenizer::from_vocab(vocab).unwrap();
        let cases = config["cases"].as_array().unwrap();
        assert_eq!(cases.len(), texts.len());
        for (text, c) in texts.iter().zip(cases) {
            let ff = tok.encode(text, false, false).unwrap();
            let tt = tok.encode(text, true, true).unwrap();
            let checks = [
                (
                    "ids",
                    format!("{ff:?}"),
                    format!("{:?}", parse_ids(c["ff"].as_str().unwrap())),
                ),
                (
                    "special ids",
                    format!("{tt:?}"),
                    format!("{:?}", parse_ids(c["tt"].as_str().unwrap())),
                ),
                (
                    "decode",
                    tok.decode(&ff),
                    c["decode_ff"].as_str().unwrap().to_string(),
                ),
                (
                    "detokenize",
                    String::from_utf8_lossy(&tok.detokenize(&tt, true, false)).into_owned(),
                    c["plain_tt"].as_str().unwrap().to_string(),
                ),
            ];
            for (what, got, want) in checks {
                if got != want {
                    failures.push(format!(
                        "{name} {what} of {text:?}\n  llama.cpp {want:?}\n  seldon    {got:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
