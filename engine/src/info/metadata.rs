//! GGUF metadata as JSON, and the hyperparameter and tokenizer summaries.

use std::collections::BTreeMap;

use seldon_formats::gguf::Value;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// Arrays up to this many elements are written out in `--json`; longer ones
/// (token lists, merges, scores) are summarized as `{"array_of", "len"}`.
pub const ARRAY_INLINE_MAX: usize = 16;

/// The `<arch>.*` metadata, prefix removed ("block_count" -> 30), in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hyperparameters(pub Vec<(String, serde_json::Value)>);

impl Serialize for Hyperparameters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_ordered(&self.0, s)
    }
}

/// The tokenizer keys of a GGUF file, summarized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model` ("gpt2", "llama", ...).
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`, the pre-tokenizer ("smollm", "qwen2", ...).
    pub pre: Option<String>,
    /// The length of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<u64>,
    /// The length of `tokenizer.ggml.merges`.
    pub merges: Option<u64>,
    /// Special token ids: `tokenizer.ggml.<kind>_token_id` keyed by kind
    /// ("bos", "eos", "unknown", "padding", ...).
    pub special_ids: BTreeMap<String, u64>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
}

/// Serializes key/value pairs as a JSON object in their given order.
pub(crate) fn serialize_ordered<S: Serializer>(
    pairs: &[(String, serde_json::Value)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// A float as JSON, written with the shortest decimal that round-trips in its
/// own precision (so an f32 0.1 prints as 0.1, not 0.10000000149011612).
/// JSON has no NaN or infinity; those become null.
fn float_json(shortest: String) -> serde_json::Value {
    shortest
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// One GGUF metadata value as JSON.
pub fn gguf_value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::U8(x) => J::from(*x),
        Value::I8(x) => J::from(*x),
        Value::U16(x) => J::from(*x),
        Value::I16(x) => J::from(*x),
        Value::U32(x) => J::from(*x),
        Value::I32(x) => J::from(*x),
        Value::U64(x) => J::from(*x),
        Value::I64(x) => J::from(*x),
        Value::F32(x) => float_json(x.to_string()),
        Value::F64(x) => float_json(x.to_string()),
        Value::Bool(x) => J::from(*x),
        Value::String(x) => J::from(x.as_str()),
        Value::Array(a) => {
            if a.items.len() > ARRAY_INLINE_MAX {
                serde_json::json!({ "array_of": a.elem_type.name(), "len": a.items.len() })
            } else {
                J::Array(a.items.iter().map(gguf_value_to_json).collect())
            }
        }
    }
}

fn lookup<'a>(md: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    md.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The `<arch>.*` keys with the prefix removed, in file order. Arrays (per-layer
/// head counts in some models) are shown the same way as in the metadata map.
pub fn hyperparameters(md: &[(String, Value)], arch: Option<&str>) -> Hyperparameters {
    let Some(arch) = arch else {
        return Hyperparameters::default();
    };
    let prefix = format!("{arch}.");
    Hyperparameters(
        md.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&prefix)
                    .map(|rest| (rest.to_string(), gguf_value_to_json(v)))
            })
            .collect(),
    )
}

/// The tokenizer summary, or `None` when no `tokenizer.` key is present.
pub fn tokenizer_summary(md: &[(String, Value)]) -> Option<TokenizerSummary> {
    if !md.iter().any(|(k, _)| k.starts_with("tokenizer.")) {
        return None;
    }
    let string = |key: &str| match lookup(md, key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let array_len = |key: &str| match lookup(md, key) {
        Some(Value::Array(a)) => Some(a.items.len() as u64),
        _ => None,
    };
    let boolean = |key: &str| match lookup(md, key) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    };
    let special_ids = md
        .iter()
        .filter_map(|(k, v)| {
            let kind = k
                .strip_prefix("tokenizer.ggml.")?
                .strip_suffix("_token_id")?;
            Some((kind.to_string(), v.as_u64()?))
        })
        .collect();
    Some(TokenizerSummary {
        model: string("tokenizer.ggml.model"),
        pre: string("tokenizer.ggml.pre"),
        vocab_size: array_len("tokenizer.ggml.tokens"),
        merges: array_len("tokenizer.ggml.merges"),
        special_ids,
        add_bos: boolean("tokenizer.ggml.add_bos_token"),
        add_eos: boolean("tokenizer.ggml.add_eos_token"),
    })
}
