//! File types as llama.cpp names them (`llama_ftype`), and the type each
//! tensor gets under one: a port of the rules in llama.cpp's
//! `src/llama-quant.cpp` (`llama_tensor_get_type_impl` and
//! `tensor_type_fallback`) for the file types synth offers, on dense
//! (non-MoE, non-Falcon) models quantized without an importance matrix.
//!
//! The result is the mix `llama-quantize` produces from an F32 or F16 file of
//! the same model, so that a synthetic Q4_K_M file has the same tensor types,
//! sizes and kernels to run as a real one.

use std::fmt;
use std::str::FromStr;

use seldon_formats::GgmlType;

/// A llama.cpp file type: the mix of tensor types a model is quantized to.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Everything F32.
    F32,
    /// 2-D weights F16, norms F32.
    F16,
    /// 2-D weights BF16, norms F32.
    BF16,
    /// Q4_0 (output Q6_K).
    Q4_0,
    /// Q4_1 (output Q6_K).
    Q4_1,
    /// Q5_0 (output Q6_K).
    Q5_0,
    /// Q5_1 (output Q6_K).
    Q5_1,
    /// Q8_0 throughout.
    Q8_0,
    /// Q4_K, with Q5_K for the first attn_v and first eighth of ffn_down.
    Q4_K_S,
    /// Q4_K, with Q6_K for half of attn_v and ffn_down.
    Q4_K_M,
    /// Q5_K (output Q6_K).
    Q5_K_S,
    /// Q5_K, with Q6_K for half of attn_v and ffn_down.
    Q5_K_M,
    /// Q6_K throughout.
    Q6_K,
    /// Ternary TQ1_0 (token_embd Q4_K, output Q6_K).
    TQ1_0,
    /// Ternary TQ2_0 (token_embd Q4_K, output Q6_K).
    TQ2_0,
}

impl FileType {
    /// Every file type synth writes.
    pub const ALL: [FileType; 15] = [
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q8_0,
        FileType::Q4_K_S,
        FileType::Q4_K_M,
        FileType::Q5_K_S,
        FileType::Q5_K_M,
        FileType::Q6_K,
        FileType::TQ1_0,
        FileType::TQ2_0,
    ];

    /// The name as llama-quantize spells it ("Q4_K_M").
    pub fn name(self) -> &'static str {
        use FileType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q4_K_S => "Q4_K_S",
            Q4_K_M => "Q4_K_M",
            Q5_K_S => "Q5_K_S",
            Q5_K_M => "Q5_K_M",
            Q6_K => "Q6_K",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
        }
    }

    /// The `llama_ftype` value stored in `general.file_type`.
    pub fn id(self) -> u32 {
        use FileType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q4_K_S => 14,
            Q4_K_M => 15,
            Q5_K_S => 16,
            Q5_K_M => 17,
            Q6_K => 18,
            BF16 => 32,
            TQ1_0 => 36,
            TQ2_0 => 37,
        }
    }

    /// The type most weights get (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        use FileType::*;
        match self {
            F32 => GgmlType::F32,
            F16 => GgmlType::F16,
            BF16 => GgmlType::BF16,
            Q4_0 => GgmlType::Q4_0,
            Q4_1 => GgmlType::Q4_1,
            Q5_0 => GgmlType::Q5_0,
            Q5_1 => GgmlType::Q5_1,
            Q8_0 => GgmlType::Q8_0,
            Q4_K_S | Q4_K_M => GgmlType::Q4_K,
            Q5_K_S | Q5_K_M => GgmlType::Q5_K,
            Q6_K => GgmlType::Q6_K,
            TQ1_0 => GgmlType::TQ1_0,
            TQ2_0 => GgmlType::TQ2_0,
        }
    }

    /// Whether weights are quantized (rather than stored as floats), which
    /// is when llama.cpp's per-tensor rules apply.
    pub fn is_quantized(self) -> bool {
        !matches!(self, FileType::F32 | FileType::F16 | FileType::BF16)
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--type` that names no file type synth writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown file type {0:?} (known: {names})", names = file_type_names())]
pub struct UnknownFileType(pub String);

fn file_type_names() -> String {
    FileType::ALL.map(FileType::name).join(", ")
}

impl FromStr for FileType {
    type Err = UnknownFileType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FileType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownFileType(s.to_owned()))
    }
}

/// llama.cpp's broad tensor categories (`tensor_get_category`), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnV,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_v.weight") {
        Category::AttnV
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// A tensor as the rules see it: its name, row length, and whether llama.cpp
/// quantizes it at all (2-D weights; not norms).
#[derive(Debug, Clone, Copy)]
pub(super) struct RuleInput<'a> {
    pub name: &'a str,
    pub ne0: u64,
    pub quantizable: bool,
}

/// The type of each tensor in `tensors` under `ftype`, for a model of
/// `n_layer` blocks. `tensors` must be in llama.cpp's loader order (by layer,
/// then by name), because the rules count attn_v and ffn_down tensors as
/// they meet them. Tensors that are not quantizable stay F32.
pub(super) fn tensor_types(
    ftype: FileType,
    n_layer: u32,
    tensors: &[RuleInput<'_>],
) -> Vec<GgmlType> {
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    let n_attention_wv = tensors
        .iter()
        .filter(|t| category(t.name) == Category::AttnV)
        .count() as u64;
    let mut i_attention_wv = 0u64;
    let mut i_ffn_down = 0u64;
    let default = ftype.default_type();
    tensors
        .iter()
        .map(|t| {
            if !t.quantizable {
                return GgmlType::F32;
            }
            if !ftype.is_quantized() {
                return default;
            }
            let cat = category(t.name);
            let mut ty = default;
            // A tied token_embd is also the output, and gets the output's type.
            let output_like = cat == Category::Output || (tied && cat == Category::TokenEmbd);
            match cat {
                _ if output_like => {
                    ty = if !t.ne0.is_multiple_of(default.block_size()) {
                        GgmlType::Q8_0
                    } else if default != GgmlType::Q8_0 {
                        GgmlType::Q6_K
                    } else {
                        GgmlType::Q8_0
                    };
                }
                Category::Output => {}
                Category::TokenEmbd => {
                    if matches!(ftype, FileType::TQ1_0 | FileType::TQ2_0) {
                        ty = GgmlType::Q4_K;
                    }
                }
                Category::AttnV => {
                    let more = use_more_bits(i_attention_wv, n_attention_wv);
                    match ftype {
                        FileType::Q4_K_M | FileType::Q5_K_M if more => ty = GgmlType::Q6_K,
                        FileType::Q4_K_S if i_attention_wv < 4 => ty = GgmlType::Q5_K,
                        _ => {}
                    }
                    i_attention_wv += 1;
                }
                Category::FfnDown => {
                    // Dense models: the counter is the layer index.
                    let (i, n) = (i_ffn_down, u64::from(n_layer));
                    match ftype {
                        FileType::Q4_K_M | FileType::Q5_K_M if use_more_bits(i, n) => {
                            ty = GgmlType::Q6_K;
                        }
                        FileType::Q4_K_S if i < n / 8 => ty = GgmlType::Q5_K,
                        _ => {}
                    }
                    i_ffn_down += 1;
                }
                Category::Other => {}
            }
            fallback(ty, t.ne0)
        })
        .collect()
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and
/// every third one between.
fn use_more_bits(i_layer: u64, n_layers: u64) -> bool {
    let (i, n) = (i_layer as i64, n_layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `tensor_type_fallback`: a type whose block does not divide the row length
/// is replaced by a 32-element-block type of similar size, or F16 if even
/// that does not fit.
fn fallback(ty: GgmlType, ne0: u64) -> GgmlType {
    if ne0.is_multiple_of(ty.block_size()) {
        return ty;
    }
    let replacement = match ty {
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::TQ1_0 | GgmlType::TQ2_0 => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if ne0.is_multiple_of(replacement.block_size()) {
        replacement
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_matches_llama_cpp_for_28_layers() {
        // n/8 = 3, 7n/8 = 24: layers 0-2, 24-27 and 5, 8, ..., 23.
        let picked: Vec<u64> = (0..28).filter(|&i| use_more_bits(i, 28)).collect();
        assert_eq!(
            picked,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]
        );
    }

    #[test]
    fn fallbacks_follow_block_sizes() {
        assert_eq!(fallback(GgmlType::Q4_K, 576), GgmlType::Q5_0);
        assert_eq!(fallback(GgmlType::Q6_K, 576), GgmlType::Q8_0);
        assert_eq!(fallback(GgmlType::Q5_K, 576), GgmlType::Q5_1);
        assert_eq!(fallback(GgmlType::TQ2_0, 576), GgmlType::Q4_0);
        assert_eq!(fallback(GgmlType::Q4_K, 1536), GgmlType::Q4_K);
        assert_eq!(fallback(GgmlType::Q8_0, 48), GgmlType::F16);
    }

    #[test]
    fn names_round_trip() {
        for t in FileType::ALL {
            assert_eq!(t.name().parse::<FileType>(), Ok(t));
            assert_eq!(t.name().to_lowercase().parse::<FileType>(), Ok(t));
        }
        assert!("Q3_K_M".parse::<FileType>().is_err());
    }
}
