//! Tokenizers from GGUF metadata, token for token identical to llama.cpp.
//!
//! Two algorithms, chosen by `tokenizer.ggml.model`:
//! - `gpt2`: byte-level BPE. The text is split into words by the pre-tokenizer that
//!   `tokenizer.ggml.pre` names (default, gpt-2, llama-bpe, qwen2, smollm and their
//!   aliases; see `pretok`), each word's bytes are mapped to GPT-2's printable
//!   characters, and merges apply by rank.
//! - `llama`: SentencePiece-style. Spaces become U+2581, a space is prefixed where
//!   llama.cpp prefixes one, adjacent pieces join by token score, and characters
//!   outside the vocabulary fall back to `<0xXX>` byte tokens.
//!
//! Before either runs, special tokens are cut out of the text (user-defined ones
//! always, control ones only when asked), longest first, as llama.cpp does.
//!
//! The `tokenizers` crate was considered and not used: it implements the Hugging Face
//! pipelines, whose pre-tokenizers differ from llama.cpp's hand-written splitters in
//! corner cases, and it would pull in a regex engine and Unicode tables of another
//! Unicode version. The splitters here need no regex engine (see `pretok`).

mod bpe;
mod build;
mod detok;
mod load;
mod pretok;
mod special;
mod spm;
mod unicode;
mod unicode_data;
mod vocab;

use std::collections::{BTreeSet, HashMap};

use seldon_formats::gguf::GgufFile;

pub use vocab::{ModelKind, SpecialIds, TokenAttr, Vocab};

use special::Fragment;

/// Why a tokenizer could not be built, or a text not tokenized.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("GGUF metadata has no {0}")]
    MissingKey(&'static str),
    /// A metadata key holds the wrong type.
    #[error("GGUF metadata key {key} is not of type {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// `tokenizer.ggml.model` names an algorithm seldon does not implement.
    #[error("unsupported tokenizer model {0:?} (seldon supports \"gpt2\" and \"llama\")")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer seldon does not implement.
    #[error("unsupported pre-tokenizer {0:?}")]
    UnsupportedPre(String),
    /// A per-token array is shorter than the token list.
    #[error("{key} has {found} entries for {n_tokens} tokens")]
    ShortArray {
        /// The key.
        key: &'static str,
        /// Its length.
        found: usize,
        /// The number of tokens.
        n_tokens: usize,
    },
    /// More tokens than an i32 id can address.
    #[error("{0} tokens is more than llama.cpp's i32 token ids allow")]
    TooManyTokens(usize),
    /// Two ids share one token text.
    #[error("token text {text:?} appears at ids {first} and {second}")]
    DuplicateToken {
        /// The text.
        text: String,
        /// The earlier id.
        first: u32,
        /// The later id.
        second: u32,
    },
    /// A byte token's text holds no byte (`<0xXX>` expected).
    #[error("byte token {id} has text {text:?}, expected <0xXX>")]
    BadByteToken {
        /// The token id.
        id: u32,
        /// Its text.
        text: String,
    },
    /// The vocabulary has no token for a byte that SentencePiece byte fallback needs.
    #[error("the vocabulary has no byte token for 0x{0:02X}")]
    MissingByteToken(u8),
    /// add_special asked for a BOS token the vocabulary does not have.
    #[error("the model adds a BOS token but its vocabulary has none")]
    MissingBos,
    /// add_special asked for an EOS token the vocabulary does not have.
    #[error("the model adds an EOS token but its vocabulary has none")]
    MissingEos,
}

/// A tokenizer built from GGUF metadata (or a [`Vocab`]): encode text to token ids
/// and decode ids back to text exactly as llama.cpp does.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: ModelKind,
    pre_name: String,
    pre: Option<pretok::PreConfig>,
    texts: Vec<String>,
    scores: Vec<f32>,
    attrs: Vec<TokenAttr>,
    token_to_id: HashMap<String, u32>,
    ranks: bpe::Ranks,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Vec<u32>,
    /// Each token's bytes with special tokens rendered.
    pieces: Vec<Vec<u8>>,
    bytes: unicode::ByteMap,
}

impl Tokenizer {
    /// Builds the tokenizer that a GGUF file's `tokenizer.ggml.*` metadata describes.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Self::from_vocab(Vocab::from_gguf(file)?)
    }

    /// Builds a tokenizer from plain vocabulary data.
    pub fn from_vocab(vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        build::build(vocab)
    }

    /// Token ids for `text`, as llama.cpp's `llama_tokenize`: with `add_special`, BOS
    /// and EOS are added where the model's metadata says so; with `parse_special`,
    /// control tokens written in the text (`<|im_start|>`) become their ids rather
    /// than being tokenized as text.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let fragments = special::partition(
            text,
            &self.specials,
            &self.texts,
            &self.attrs,
            parse_special,
        );
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(self.bos.ok_or(TokenizerError::MissingBos)?);
        }
        match self.pre {
            Some(cfg) => {
                for f in fragments {
                    match f {
                        Fragment::Text(s) => {
                            for word in pretok::split(s, cfg.splitters, &self.bytes) {
                                bpe::tokenize_word(
                                    &word,
                                    &self.ranks,
                                    &self.token_to_id,
                                    cfg.ignore_merges,
                                    &mut out,
                                );
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            None => self.encode_spm(&fragments, &mut out)?,
        }
        if add_special && self.add_eos {
            out.push(self.eos.ok_or(TokenizerError::MissingEos)?);
        }
        Ok(out)
    }

    fn encode_spm(
        &self,
        fragments: &[Fragment<'_>],
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let score = |id: u32| self.scores.get(id as usize).copied().unwrap_or(0.0);
        let byte_token = |b: u8| {
            self.token_to_id
                .get(&format!("<0x{b:02X}>"))
                // A NUL byte would make llama.cpp's C-string fallback empty: no token.
                .or_else(|| {
                    let one = [b];
                    let s = std::str::from_utf8(&one).ok().filter(|_| b != 0)?;
                    self.token_to_id.get(s)
                })
                .copied()
        };
        let v = spm::SpmVocab {
            token_to_id: &self.token_to_id,
            scores: &score,
            byte_token: &byte_token,
        };
        // Text at the start or right after a special token gets the leading space.
        let mut after_special = true;
        for f in fragments {
            match *f {
                Fragment::Text(s) => {
                    let mut text = String::with_capacity(s.len() + 1);
                    if self.add_space_prefix && after_special {
                        text.push(' ');
                    }
                    text.push_str(s);
                    spm::tokenize(&text.replace(' ', "\u{2581}"), &v, out)?;
                    after_special = false;
                }
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
            }
        }
        Ok(())
    }

    /// The text of `ids` as llama.cpp's `common_detokenize(ctx, ids, true)` gives it:
    /// special tokens rendered, invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, true)).into_owned()
    }

    /// llama.cpp's `llama_detokenize`: `remove_special` drops a leading BOS and a
    /// trailing EOS where the model adds them; `unparse_special` renders control
    /// tokens (otherwise they produce nothing). Ids outside the vocabulary produce
    /// nothing. Returns bytes, since ids can end inside a UTF-8 character.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        // SentencePiece pieces start with the space encode added; drop it once.
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && ids.first().is_some_and(|&id| Some(id) == self.bos) {
            remove_space = false;
            ids = ids.get(1..).unwrap_or_default();
        }
        if remove_special && self.add_eos && ids.last().is_some_and(|&id| Some(id) == self.eos) {
            ids = ids.get(..ids.len() - 1).unwrap_or_default();
        }
        let mut out = Vec::new();
        for &id in ids {
            let piece = self.piece(id, unparse_special);
            out.extend_from_slice(detok::strip_leading_spaces(
                piece,
                usize::from(remove_space),
            ));
            remove_space = false;
        }
        if self.clean_spaces {
            detok::clean_spaces(&mut out);
        }
        out
    }

    /// The bytes of one token, special tokens rendered (llama.cpp's
    /// `common_token_to_piece(ctx, id, true)`). For streaming output: a piece may be
    /// part of a UTF-8 character, so buffer bytes until they form whole characters.
    pub fn token_to_piece(&self, id: u32) -> Vec<u8> {
        self.piece(id, true).to_vec()
    }

    fn piece(&self, id: u32, special: bool) -> &[u8] {
        let attr = self.token_attr(id).unwrap_or_default();
        if !special && attr.has(TokenAttr::UNKNOWN | TokenAttr::CONTROL) {
            return &[];
        }
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether `id` ends generation: EOS, EOT, EOM, the FIM pad/repo/separator tokens
    /// and the end markers llama.cpp recognises by text (`<|im_end|>`, `<|eot_id|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    /// The number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.texts.len()
    }

    /// The tokenizer algorithm.
    pub fn model_kind(&self) -> ModelKind {
        self.kind
    }

    /// `tokenizer.ggml.pre` as the metadata gives it ("" when absent).
    pub fn pre(&self) -> &str {
        &self.pre_name
    }

    /// The vocabulary text of `id` (GPT-2 byte-level or SentencePiece form).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    /// The attributes of `id` after llama.cpp's adjustments.
    pub fn token_attr(&self, id: u32) -> Option<TokenAttr> {
        self.attrs.get(id as usize).copied()
    }

    /// The id whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The number of BPE merges in use (0 for SentencePiece vocabularies).
    pub fn n_merges(&self) -> usize {
        self.ranks.len()
    }
}
