#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! SmolLM2-135M-Instruct's tokenizer (gpt2 BPE, pre-tokenizer `smollm`) against
//! llama.cpp on texts chosen for it: unicode, code, whitespace runs, special tokens.
//! References: engine/tests/data/smollm2_tokenizer.json, made by llama.cpp through
//! engine/scripts/make_tokenizer_refs.py. The model comes from scripts/fetch-models.sh.

use std::path::PathBuf;
use std::sync::OnceLock;

use seldon_engine::tokenizer::{ModelKind, Tokenizer};
use seldon_formats::gguf::GgufFile;
use serde_json::Value;

fn tokenizer() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
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
        Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap()
    })
}

fn refs() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/smollm2_tokenizer.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn the_capital_of_france_tokenizes_like_llama_cpp() {
    let tok = tokenizer();
    // llama.cpp 0.3.36: llama_tokenize(add_special=true, parse_special=false).
    assert_eq!(
        tok.encode("The capital of France is", true, false).unwrap(),
        [504, 3575, 282, 4649, 314]
    );
    assert_eq!(
        tok.decode(&[504, 3575, 282, 4649, 314]),
        "The capital of France is"
    );
}

#[test]
fn metadata_matches_llama_cpp() {
    let tok = tokenizer();
    let r = refs();
    assert_eq!(tok.model_kind(), ModelKind::Gpt2);
    assert_eq!(tok.model_kind().as_str(), "gpt2");
    assert_eq!(tok.pre(), "smollm");
    assert_eq!(tok.n_vocab() as u64, r["n_vocab"].as_u64().unwrap());
    assert_eq!(tok.n_merges(), 48900);
    assert_eq!(tok.bos().map(u64::from), r["bos"].as_u64());
    assert_eq!(tok.eos().map(u64::from), r["eos"].as_u64());
    assert_eq!(tok.add_bos(), r["add_bos"].as_bool().unwrap());
    assert_eq!(tok.add_eos(), r["add_eos"].as_bool().unwrap());
    let eog: Vec<u32> = tok.eog_ids().collect();
    assert_eq!(eog, ids(&r["eog"]));
    assert!(tok.is_eog(2) && !tok.is_eog(1));
}

#[test]
fn texts_tokenize_and_detokenize_like_llama_cpp() {
    let tok = tokenizer();
    let r = refs();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().unwrap();
        for (key, add_special, parse_special) in [
            ("ff", false, false),
            ("ft", false, true),
            ("tf", true, false),
            ("tt", true, true),
        ] {
            let want = ids(&c["ids"][key]);
            let got = tok.encode(text, add_special, parse_special).unwrap();
            if got != want {
                failures.push(format!(
                    "{text:?} {key}\n  llama.cpp {want:?}\n  seldon    {got:?}"
                ));
            }
        }
        let tt = ids(&c["ids"]["tt"]);
        let ff = ids(&c["ids"]["ff"]);
        let checks = [
            ("decode", tok.decode(&tt), &c["detok_special"]),
            (
                "plain",
                String::from_utf8(tok.detokenize(&tt, false, false)).unwrap(),
                &c["detok_plain"],
            ),
            (
                "remove",
                String::from_utf8(tok.detokenize(&tt, true, false)).unwrap(),
                &c["detok_remove_special"],
            ),
            ("roundtrip", tok.decode(&ff), &c["roundtrip"]),
        ];
        for (what, got, want) in checks {
            if got != want.as_str().unwrap() {
                failures.push(format!(
                    "{text:?} {what}\n  llama.cpp {want}\n  seldon    {got:?}"
                ));
            }
        }
        let pieces: Vec<Vec<u8>> = tt.iter().map(|&id| tok.token_to_piece(id)).collect();
        let want: Vec<Vec<u8>> = c["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_u64().unwrap() as u8)
                    .collect()
            })
            .collect();
        if pieces != want {
            failures.push(format!("{text:?} pieces differ"));
        }
        // SmolLM2 does not clean spaces, so llama.cpp's round trip always holds.
        assert_eq!(tok.decode(&ff), text);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pieces_can_split_a_character() {
    let tok = tokenizer();
    // A 4-byte emoji the vocabulary lacks as one token comes out as byte pieces
    // whose concatenation, not each piece, is valid UTF-8.
    let ids = tok.encode("🦙", false, false).unwrap();
    assert!(ids.len() > 1);
    let bytes: Vec<u8> = ids.iter().flat_map(|&id| tok.token_to_piece(id)).collect();
    assert_eq!(bytes, "🦙".as_bytes());
    assert!(
        ids.iter()
            .any(|&id| std::str::from_utf8(&tok.token_to_piece(id)).is_err())
    );
}
