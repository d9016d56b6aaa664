//! Which shader decodes which weight type: the one table to extend when a new
//! group of weight types gets its `matmul_<group>.wgsl`.

use seldon_formats::GgmlType;

/// The shader (a name in [`crate::shaders::ALL`]) whose `dequant8` decodes
/// weights of type `ty`, or `None` when seldon has no GPU matmul for it.
/// The shader's `WEIGHT_TYPE` override is set to `ty.id()`.
pub fn shader_for(ty: GgmlType) -> Option<&'static str> {
    use GgmlType::*;
    match ty {
        F32 | F16 | BF16 => Some("matmul_float"),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => Some("matmul_legacy"),
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Some("matmul_kquants"),
        TQ1_0 | TQ2_0 => Some("matmul_ternary"),
        _ => None,
    }
}

/// Every weight type [`shader_for`] knows, in ggml id order.
pub const SUPPORTED_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::BF16,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// Every shader [`shader_for`] may return; their generic parts must match.
pub const GROUP_SHADERS: &[&str] = &[
    "matmul_float",
    "matmul_legacy",
    "matmul_kquants",
    "matmul_ternary",
];

/// The decode entry point for `ty` in its portable shader: `matvec` for every
/// type today (the ternary types had a `matvec_ternary` that summed
/// activations by trit with selects; it went with the one-row-per-invocation
/// rewrite, whose `matvec_unit` decodes TQ2_0 blocks whole). Kept so that a
/// group can bring its own decode kernel again.
pub fn matvec_entry(_ty: GgmlType) -> &'static str {
    "matvec"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::find;
    use seldon_formats::ALL_TYPES;

    #[test]
    fn table_and_lists_agree() {
        for ty in ALL_TYPES {
            assert_eq!(
                shader_for(ty).is_some(),
                SUPPORTED_TYPES.contains(&ty),
                "{ty}"
            );
            if let Some(shader) = shader_for(ty) {
                assert!(GROUP_SHADERS.contains(&shader), "{shader}");
            }
        }
    }

    /// The type ids and block sizes the WGSL spells out are ggml's.
    #[test]
    fn wgsl_constants_are_ggml_ids_and_block_sizes() {
        for &ty in SUPPORTED_TYPES {
            let Some(source) = shader_for(ty).and_then(find).map(|s| s.source) else {
                panic!("{ty}: shader missing");
            };
            let id = format!("const {}: u32 = {}u;", ty.name(), ty.id());
            assert!(source.contains(&id), "{ty}: no `{id}`");
            assert!(source.contains(&format!("case {}: {{", ty.name())), "{ty}");
            if ty.block_size() > 1 {
                let decoder = format!("fn dequant_{}(", ty.name().to_lowercase());
                let Some(start) = source.find(&decoder) else {
                    panic!("{ty}: no {decoder}");
                };
                let body = &source[start..];
                let body = &body[..body[1..].find("\nfn ").map_or(body.len(), |e| e + 1)];
                let size = format!("block_at(row, g, {}u)", ty.type_size());
                assert!(body.contains(&size), "{ty}: {decoder} lacks `{size}`");
            }
        }
    }
}
