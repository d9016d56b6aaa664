//! The tokenizer's input as plain data, and the small types its API uses.

/// The tokenizer algorithm, from `tokenizer.ggml.model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `gpt2`: byte-level BPE with a regex pre-tokenizer (llama.cpp's `LLAMA_VOCAB_TYPE_BPE`).
    Gpt2,
    /// `llama`: SentencePiece-style merges by score with byte fallback (`LLAMA_VOCAB_TYPE_SPM`).
    Llama,
}

impl ModelKind {
    /// The `tokenizer.ggml.model` value: "gpt2" or "llama".
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Gpt2 => "gpt2",
            ModelKind::Llama => "llama",
        }
    }
}

/// Token attribute bits, llama.cpp's `llama_token_attr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenAttr(pub u32);

impl TokenAttr {
    /// No type recorded (GGUF token type 0 or out of range).
    pub const UNDEFINED: u32 = 0;
    /// The unknown token (`<unk>`).
    pub const UNKNOWN: u32 = 1 << 0;
    /// Reserved, never produced.
    pub const UNUSED: u32 = 1 << 1;
    /// An ordinary text token.
    pub const NORMAL: u32 = 1 << 2;
    /// A control token (BOS, EOS, chat markers): matched in text only with `parse_special`.
    pub const CONTROL: u32 = 1 << 3;
    /// A user-defined token: always matched in text before pre-tokenization.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// A byte-fallback token (`<0xXX>`).
    pub const BYTE: u32 = 1 << 5;
    /// Text normalized before matching (unused by these tokenizers).
    pub const NORMALIZED: u32 = 1 << 6;
    /// Whitespace before the token is dropped when it is matched in text.
    pub const LSTRIP: u32 = 1 << 7;
    /// Whitespace after the token is dropped when it is matched in text.
    pub const RSTRIP: u32 = 1 << 8;
    /// Matched only as a whole word (unused by these tokenizers).
    pub const SINGLE_WORD: u32 = 1 << 9;

    /// Whether any of `bits` is set.
    pub fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }

    /// The attribute llama.cpp derives from a GGUF `tokenizer.ggml.token_type` value.
    pub fn from_token_type(t: i64) -> TokenAttr {
        TokenAttr(match t {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        })
    }
}

/// Special token ids as the metadata gives them (`tokenizer.ggml.<name>_token_id`);
/// `None` where a key is absent. Missing ones take llama.cpp's defaults at build time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// `bos_token_id`.
    pub bos: Option<u32>,
    /// `eos_token_id`.
    pub eos: Option<u32>,
    /// `eot_token_id`.
    pub eot: Option<u32>,
    /// `eom_token_id`.
    pub eom: Option<u32>,
    /// `unknown_token_id`.
    pub unk: Option<u32>,
    /// `seperator_token_id` (sic, llama.cpp's spelling).
    pub sep: Option<u32>,
    /// `padding_token_id`.
    pub pad: Option<u32>,
    /// `mask_token_id`.
    pub mask: Option<u32>,
    /// `fim_pre_token_id`, or the deprecated `prefix_token_id`, which wins.
    pub fim_pre: Option<u32>,
    /// `fim_suf_token_id`, or the deprecated `suffix_token_id`, which wins.
    pub fim_suf: Option<u32>,
    /// `fim_mid_token_id`, or the deprecated `middle_token_id`, which wins.
    pub fim_mid: Option<u32>,
    /// `fim_pad_token_id`.
    pub fim_pad: Option<u32>,
    /// `fim_rep_token_id`.
    pub fim_rep: Option<u32>,
    /// `fim_sep_token_id`.
    pub fim_sep: Option<u32>,
}

/// Everything the tokenizer takes from GGUF metadata, as plain data, so that it can
/// be built without a file (tests, other formats).
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: "gpt2" or "llama".
    pub model: String,
    /// `tokenizer.ggml.pre`; `None` when absent (llama.cpp then uses "default").
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SPM merge priorities); all 0 when absent.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type` (1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte); all normal when absent.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`, `"left right"` in rank order (BPE only).
    pub merges: Vec<String>,
    /// The `*_token_id` keys.
    pub special: SpecialIds,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `general.name`: llama.cpp adjusts token attributes for some models by name.
    pub name: Option<String>,
}
