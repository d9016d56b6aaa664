//! Building a [`Tokenizer`] from a [`Vocab`], following `llama_vocab::impl::load`:
//! defaults per model kind and pre-tokenizer, special ids, attributes llama.cpp infers
//! from token texts, the end-of-generation set, and the special-token match order.

use std::collections::{BTreeSet, HashMap};

use super::bpe::Ranks;
use super::pretok::{self, PreConfig};
use super::unicode::ByteMap;
use super::vocab::{ModelKind, SpecialIds, TokenAttr, Vocab};
use super::{Tokenizer, TokenizerError, detok};

const CONTROL: u32 = TokenAttr::CONTROL;

/// Texts llama.cpp treats as end of generation whatever the metadata says.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// llama.cpp's special ids after defaults, metadata and range checks.
#[derive(Debug, Default)]
struct Ids {
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    fim_pre: Option<u32>,
    fim_suf: Option<u32>,
    fim_mid: Option<u32>,
    fim_pad: Option<u32>,
    fim_rep: Option<u32>,
    fim_sep: Option<u32>,
}

pub(super) fn build(v: Vocab) -> Result<Tokenizer, TokenizerError> {
    let kind = match v.model.as_str() {
        "gpt2" => ModelKind::Gpt2,
        "llama" => ModelKind::Llama,
        other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
    };
    let pre_name = v.pre.clone().unwrap_or_default();
    let pre: Option<PreConfig> = match kind {
        ModelKind::Gpt2 => Some(
            pretok::pre_config(&pre_name)
                .ok_or_else(|| TokenizerError::UnsupportedPre(pre_name.clone()))?,
        ),
        ModelKind::Llama => None,
    };
    let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces) = match pre {
        Some(cfg) => (cfg.add_bos, false, false, cfg.clean_spaces),
        None => (true, false, true, false),
    };
    add_space_prefix = v.add_space_prefix.unwrap_or(add_space_prefix);

    let n = v.tokens.len();
    let n_u32 = u32::try_from(n)
        .ok()
        .filter(|&x| i32::try_from(x).is_ok())
        .ok_or(TokenizerError::TooManyTokens(n))?;
    check_len("tokenizer.ggml.scores", v.scores.as_ref().map(Vec::len), n)?;
    check_len(
        "tokenizer.ggml.token_type",
        v.token_types.as_ref().map(Vec::len),
        n,
    )?;

    let mut texts = Vec::with_capacity(n);
    let mut token_to_id = HashMap::with_capacity(n);
    for (id, text) in (0..n_u32).zip(v.tokens) {
        let text = if text.is_empty() {
            format!("[EMPTY_{id}]")
        } else {
            text
        };
        if let Some(first) = token_to_id.insert(text.clone(), id) {
            return Err(TokenizerError::DuplicateToken {
                text,
                first,
                second: id,
            });
        }
        texts.push(text);
    }
    let scores = v.scores.unwrap_or_else(|| vec![0.0; n]);
    let mut attrs: Vec<TokenAttr> = match &v.token_types {
        Some(types) => types
            .iter()
            .take(n)
            .map(|&t| TokenAttr::from_token_type(t.into()))
            .collect(),
        None => vec![TokenAttr(TokenAttr::NORMAL); n],
    };

    let mut ids = special_ids(kind, &v.special, n_u32);
    add_bos = v.add_bos.unwrap_or(add_bos);
    add_eos = v.add_eos.unwrap_or(add_eos);

    // Special tokens llama.cpp recognises by their text when metadata names none. It
    // walks a hash map; walking ids in order gives the same result unless a vocabulary
    // holds two candidates for one role.
    for (id, text) in (0..n_u32).zip(&texts) {
        let mut detect = |slot: &mut Option<u32>, candidates: &[&str]| {
            if slot.is_none() && candidates.contains(&text.as_str()) {
                *slot = Some(id);
                set(&mut attrs, id, CONTROL);
            }
        };
        detect(&mut ids.eot, EOT_TEXTS);
        detect(&mut ids.eom, EOM_TEXTS);
        detect(&mut ids.fim_pre, FIM_PRE_TEXTS);
        detect(&mut ids.fim_suf, FIM_SUF_TEXTS);
        detect(&mut ids.fim_mid, FIM_MID_TEXTS);
        detect(&mut ids.fim_pad, FIM_PAD_TEXTS);
        detect(&mut ids.fim_rep, FIM_REP_TEXTS);
        detect(&mut ids.fim_sep, FIM_SEP_TEXTS);
    }
    for (id, text) in (0..n_u32).zip(&texts) {
        let a = attrs.get(id as usize).copied().unwrap_or_default();
        if a.has(CONTROL) && text.contains("unused") {
            set(&mut attrs, id, TokenAttr::UNUSED);
        }
    }

    let mut eog: BTreeSet<u32> = [ids.fim_pad, ids.fim_rep, ids.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    for (id, text) in (0..n_u32).zip(&texts) {
        if EOG_TEXTS.contains(&text.as_str()) {
            eog.insert(id);
            set(&mut attrs, id, CONTROL);
        }
    }
    // gpt-oss renders these markers, so llama.cpp makes them user-defined.
    for (id, text) in (0..n_u32).zip(&texts) {
        let marker = matches!(
            text.as_str(),
            "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>"
        );
        if marker && let Some(a) = attrs.get_mut(id as usize) {
            *a = TokenAttr(TokenAttr::USER_DEFINED);
        }
    }
    eog.extend([ids.eos, ids.eot, ids.eom].into_iter().flatten());
    prune_eog(&mut eog, &texts, &mut attrs);

    // Longest first, so that a special token is never split by a shorter one it
    // contains. llama.cpp's std::sort is unstable; ties keep id order here.
    let mut specials: Vec<u32> = (0..n_u32)
        .filter(|&id| {
            let a = attrs.get(id as usize).copied().unwrap_or_default();
            a.has(CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
        })
        .collect();
    specials.sort_by_key(|&id| std::cmp::Reverse(texts.get(id as usize).map_or(0, String::len)));

    let bytes = ByteMap::new();
    let pieces = (0..n_u32)
        .map(|id| {
            let text = texts.get(id as usize).map_or("", String::as_str);
            let attr = attrs.get(id as usize).copied().unwrap_or_default();
            detok::compute_piece(kind, text, attr, &bytes).map_err(|()| {
                TokenizerError::BadByteToken {
                    id,
                    text: text.to_string(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Attributes llama.cpp sets by model name, after the caches above.
    let name = v.name.unwrap_or_default().to_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for &id in &specials {
            set(&mut attrs, id, TokenAttr::RSTRIP);
        }
        if let Some(&id) = token_to_id.get("</s>") {
            set(&mut attrs, id, TokenAttr::RSTRIP);
        }
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(a) = token_to_id
                .get(t)
                .and_then(|&id| attrs.get_mut(id as usize))
            {
                a.0 &= !TokenAttr::RSTRIP;
            }
        }
    }

    Ok(Tokenizer {
        kind,
        pre_name,
        pre,
        texts,
        scores,
        attrs,
        ranks: Ranks::new(&v.merges),
        token_to_id,
        bos: ids.bos,
        eos: ids.eos,
        add_bos,
        add_eos,
        add_space_prefix,
        clean_spaces,
        eog,
        specials,
        pieces,
        bytes,
    })
}

fn set(attrs: &mut [TokenAttr], id: u32, bits: u32) {
    if let Some(a) = attrs.get_mut(id as usize) {
        a.0 |= bits;
    }
}

fn check_len(key: &'static str, len: Option<usize>, n_tokens: usize) -> Result<(), TokenizerError> {
    match len {
        Some(found) if found < n_tokens => Err(TokenizerError::ShortArray {
            key,
            found,
            n_tokens,
        }),
        _ => Ok(()),
    }
}

/// Defaults per model kind, replaced by metadata ids that are in range.
fn special_ids(kind: ModelKind, meta: &SpecialIds, n: u32) -> Ids {
    let (bos, eos) = match kind {
        ModelKind::Llama => (Some(1), Some(2)),
        ModelKind::Gpt2 => (Some(11), Some(11)),
    };
    let pick = |default: Option<u32>, meta: Option<u32>| {
        let default = default.filter(|&id| id < n);
        match meta {
            Some(id) if id < n => Some(id),
            _ => default,
        }
    };
    Ids {
        bos: pick(bos, meta.bos),
        eos: pick(eos, meta.eos),
        eot: pick(None, meta.eot),
        eom: pick(None, meta.eom),
        fim_pre: pick(None, meta.fim_pre),
        fim_suf: pick(None, meta.fim_suf),
        fim_mid: pick(None, meta.fim_mid),
        fim_pad: pick(None, meta.fim_pad),
        fim_rep: pick(None, meta.fim_rep),
        fim_sep: pick(None, meta.fim_sep),
    }
}

/// llama.cpp's two corrections to the end-of-generation set: `<|end|>` is not an end
/// where `<|return|>`/`<|call|>` (gpt-oss) or `<|calls|>`/`<|flush|>` (solar-open)
/// exist, and `</s>` is a normal token where `<|tool_response>` or `<|plamo:eos|>` exists.
fn prune_eog(eog: &mut BTreeSet<u32>, texts: &[String], attrs: &mut [TokenAttr]) {
    let text_of = |id: u32| texts.get(id as usize).map_or("", String::as_str);
    let find = |eog: &BTreeSet<u32>, t: &str| eog.iter().copied().find(|&id| text_of(id) == t);
    let has = |eog: &BTreeSet<u32>, ts: &[&str]| ts.iter().any(|t| find(eog, t).is_some());

    let has_call = has(eog, &["<|call|>", "<|calls|>"]);
    let end_removed = has_call && (has(eog, &["<|return|>"]) || has(eog, &["<|flush|>"]));
    if end_removed && let Some(end) = find(eog, "<|end|>") {
        eog.remove(&end);
        if let Some(a) = attrs.get_mut(end as usize) {
            *a = TokenAttr(TokenAttr::USER_DEFINED);
        }
    }
    if has(eog, &["<|tool_response>", "<|plamo:eos|>"])
        && let Some(s) = find(eog, "</s>")
    {
        eog.remove(&s);
        if let Some(a) = attrs.get_mut(s as usize) {
            *a = TokenAttr(TokenAttr::NORMAL);
        }
    }
}
