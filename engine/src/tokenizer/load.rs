//! Reading a [`Vocab`] from GGUF metadata (the `tokenizer.ggml.*` keys).

use seldon_formats::gguf::{GgufFile, Value};

use super::TokenizerError;
use super::vocab::{SpecialIds, Vocab};

const MODEL: &str = "tokenizer.ggml.model";
const PRE: &str = "tokenizer.ggml.pre";
const TOKENS: &str = "tokenizer.ggml.tokens";
const SCORES: &str = "tokenizer.ggml.scores";
const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const MERGES: &str = "tokenizer.ggml.merges";
const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
const NAME: &str = "general.name";

impl Vocab {
    /// Reads the `tokenizer.ggml.*` metadata (and `general.name`) of a GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<Vocab, TokenizerError> {
        vocab_from_gguf(file)
    }
}

fn vocab_from_gguf(f: &GgufFile) -> Result<Vocab, TokenizerError> {
    let model = string(f, MODEL)?.ok_or(TokenizerError::MissingKey(MODEL))?;
    let tokens = strings(f, TOKENS)?.ok_or(TokenizerError::MissingKey(TOKENS))?;
    let merges = match strings(f, MERGES)? {
        Some(m) => m,
        None if model == "gpt2" => return Err(TokenizerError::MissingKey(MERGES)),
        None => Vec::new(),
    };
    let scores = match array(f, SCORES, "array of f32 or i32")? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(|v| match *v {
                    Value::F32(x) => Some(x),
                    Value::I32(x) => Some(x as f32),
                    _ => None,
                })
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| wrong(SCORES, "array of f32 or i32"))?,
        ),
    };
    let token_types = match array(f, TOKEN_TYPE, "array of i32")? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(|v| v.as_i64().and_then(|x| i32::try_from(x).ok()))
                .collect::<Option<Vec<i32>>>()
                .ok_or_else(|| wrong(TOKEN_TYPE, "array of i32"))?,
        ),
    };
    let id = |name: &'static str| token_id(f, name);
    let n = tokens.len();
    let in_range = |x: Option<u32>| x.filter(|&i| (i as usize) < n);
    let special = SpecialIds {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        eot: id("tokenizer.ggml.eot_token_id")?,
        eom: id("tokenizer.ggml.eom_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        sep: id("tokenizer.ggml.seperator_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        mask: id("tokenizer.ggml.mask_token_id")?,
        // The deprecated keys come later in llama.cpp's list: in range, they win.
        fim_pre: in_range(id("tokenizer.ggml.prefix_token_id")?)
            .or(id("tokenizer.ggml.fim_pre_token_id")?),
        fim_suf: in_range(id("tokenizer.ggml.suffix_token_id")?)
            .or(id("tokenizer.ggml.fim_suf_token_id")?),
        fim_mid: in_range(id("tokenizer.ggml.middle_token_id")?)
            .or(id("tokenizer.ggml.fim_mid_token_id")?),
        fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
        fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
        fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
    };
    Ok(Vocab {
        model,
        pre: string(f, PRE)?,
        tokens,
        scores,
        token_types,
        merges,
        special,
        add_bos: boolean(f, ADD_BOS)?,
        add_eos: boolean(f, ADD_EOS)?,
        add_space_prefix: boolean(f, ADD_SPACE_PREFIX)?,
        name: string(f, NAME)?,
    })
}

fn wrong(key: &'static str, expected: &'static str) -> TokenizerError {
    TokenizerError::WrongType { key, expected }
}

fn string(f: &GgufFile, key: &'static str) -> Result<Option<String>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| wrong(key, "string")),
    }
}

fn boolean(f: &GgufFile, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| wrong(key, "bool")),
    }
}

fn array<'a>(
    f: &'a GgufFile,
    key: &'static str,
    expected: &'static str,
) -> Result<Option<&'a [Value]>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(|a| Some(a.items.as_slice()))
            .ok_or_else(|| wrong(key, expected)),
    }
}

fn strings(f: &GgufFile, key: &'static str) -> Result<Option<Vec<String>>, TokenizerError> {
    match array(f, key, "array of strings")? {
        None => Ok(None),
        Some(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| wrong(key, "array of strings")),
    }
}

/// A token id key: an integer; a negative one (some converters write -1 for "none")
/// counts as absent.
fn token_id(f: &GgufFile, key: &'static str) -> Result<Option<u32>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) if v.as_i64().is_some() => Ok(v.as_u32()),
        Some(_) => Err(wrong(key, "integer")),
    }
}
