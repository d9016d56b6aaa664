//! The benchmark cases: which kernel, on which weight type and shape, and how
//! many bytes and floating-point operations one run of it implies.

use seldon_formats::GgmlType;
use seldon_kernels::kv_cache::KvType;

/// Weight shapes `(n_in, n_out)` of SmolLM2-135M: attn_q/attn_output,
/// ffn_gate/ffn_up, ffn_down and the (tied) output projection.
pub const SMOLLM2_SHAPES: [(u64, u64); 4] = [(576, 576), (576, 1536), (1536, 576), (576, 49152)];
/// Weight shapes of a 1.7B-class model (SmolLM2-1.7B): attention
/// projections, ffn_gate/ffn_up and ffn_down.
pub const LARGE_SHAPES: [(u64, u64); 3] = [(2048, 2048), (2048, 6144), (6144, 2048)];
/// The shape `--quick` keeps: the decode shape RESULTS.md reports.
pub const QUICK_SHAPE: (u64, u64) = (2048, 6144);
/// Elements the copy ceiling moves per run: 64 MiB read and 64 MiB written,
/// far beyond any last-level cache, so it measures memory and not a cache.
pub const CEILING_ELEMENTS: u64 = 16 << 20;
/// Elements of the f32 <-> f16 conversion cases.
pub const CONVERT_ELEMENTS: u64 = 16 << 20;

/// One attention configuration: `(label, n_head, n_head_kv, head_dim)`.
pub const ATTENTION_MODELS: [(&str, u64, u64, u64); 2] =
    [("SmolLM2-135M", 9, 3, 64), ("SmolLM2-1.7B", 32, 32, 64)];
/// The context length of the decode attention cases.
pub const DECODE_CONTEXT: u64 = 4096;
/// RMSNorm widths: SmolLM2-135M and the 1.7B class.
pub const NORM_WIDTHS: [u64; 2] = [576, 2048];

/// What one case runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CaseKind {
    /// The vec4 copy: the bandwidth ceiling.
    Copy {
        /// f32 elements copied.
        elements: u64,
    },
    /// f32 -> F16 (`to_f16`) or F16 -> f32.
    Convert {
        /// Elements converted.
        elements: u64,
        /// The direction.
        to_f16: bool,
    },
    /// `MatMul` with the `matvec` path (decode), in chunks of 8 columns
    /// above 8 (prefill on CPU adapters).
    Matvec(MatShape),
    /// `MatMul` with the `matvec` path and the decode kernel that
    /// `MatvecVariant::Auto` does not pick on this device (`matvec_split`
    /// on CPU adapters, `matvec_rows` on GPUs), named by the case's kernel.
    MatvecAlt(MatShape),
    /// `Dot4MatVec`: activations quantized on the GPU (Q8_0, Q8_1 or Q8_K,
    /// as ggml's CPU backend does for the type) and `dot4I8Packed`.
    MatvecDot4(MatShape),
    /// `MatMul` with the tiled `matmul` path (prefill).
    Matmul(MatShape),
    /// Causal attention over a KV cache.
    Attention(AttnShape),
    /// RMSNorm of `rows` rows of `n`.
    RmsNorm {
        /// Rows (tokens).
        rows: u64,
        /// Width.
        n: u64,
    },
}

/// A weight matrix times `n_cols` activation columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatShape {
    /// Weight type.
    pub ty: GgmlType,
    /// Inputs per row.
    pub n_in: u64,
    /// Rows (outputs).
    pub n_out: u64,
    /// Activation columns (tokens).
    pub n_cols: u64,
}

/// An attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Query tokens.
    pub n_tokens: u64,
    /// Tokens already in the cache.
    pub pos0: u64,
    /// Query heads.
    pub n_head: u64,
    /// KV heads.
    pub n_head_kv: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// KV cache element type.
    pub kv: KvType,
}

impl AttnShape {
    /// Keys the last token attends to.
    pub fn n_kv(&self) -> u64 {
        self.pos0 + self.n_tokens
    }

    /// Query-key pairs under the causal mask: token `t` sees `pos0 + t + 1` keys.
    pub fn pairs(&self) -> u64 {
        self.n_tokens * self.pos0 + self.n_tokens * (self.n_tokens + 1) / 2
    }
}

/// One benchmark case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The kernel's name in the results (`matvec`, `matmul`, `attention`, ...).
    pub kernel: &'static str,
    /// What it runs.
    pub kind: CaseKind,
}

impl Case {
    /// The weight (or data) type as llama.cpp spells it.
    pub fn type_name(&self) -> String {
        match self.kind {
            CaseKind::Copy { .. } | CaseKind::RmsNorm { .. } => "F32".into(),
            CaseKind::Convert { .. } => "F16".into(),
            CaseKind::Matvec(m)
            | CaseKind::MatvecAlt(m)
            | CaseKind::MatvecDot4(m)
            | CaseKind::Matmul(m) => m.ty.name().into(),
            CaseKind::Attention(a) => a.kv.ggml_type().name().into(),
        }
    }

    /// The shape: `{n_in}x{n_out}` for weight products, the element count
    /// for copies, and the parameters spelled out for the others.
    pub fn shape(&self) -> String {
        match self.kind {
            CaseKind::Copy { elements } | CaseKind::Convert { elements, .. } => {
                elements.to_string()
            }
            CaseKind::Matvec(m)
            | CaseKind::MatvecAlt(m)
            | CaseKind::MatvecDot4(m)
            | CaseKind::Matmul(m) => {
                format!("{}x{}", m.n_in, m.n_out)
            }
            CaseKind::Attention(a) => format!(
                "heads{}/{},dim{},tokens{},kv{}",
                a.n_head,
                a.n_head_kv,
                a.head_dim,
                a.n_tokens,
                a.n_kv()
            ),
            CaseKind::RmsNorm { rows, n } => format!("rows{rows}x{n}"),
        }
    }

    /// Activation columns (tokens) of the run.
    pub fn n_cols(&self) -> u64 {
        match self.kind {
            CaseKind::Matvec(m)
            | CaseKind::MatvecAlt(m)
            | CaseKind::MatvecDot4(m)
            | CaseKind::Matmul(m) => m.n_cols,
            CaseKind::Attention(a) => a.n_tokens,
            CaseKind::RmsNorm { rows, .. } => rows,
            CaseKind::Copy { .. } | CaseKind::Convert { .. } => 1,
        }
    }

    /// `kernel/type/shape`: what `--filter` matches and progress lines show.
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.kernel, self.type_name(), self.shape())
    }

    /// Bytes one run must move at the least: each input read once and each
    /// output written once (the weight bytes in their block format).
    pub fn bytes(&self) -> u64 {
        match self.kind {
            CaseKind::Copy { elements } => elements * 8,
            CaseKind::Convert { elements, .. } => elements * 6,
            CaseKind::Matvec(m)
            | CaseKind::MatvecAlt(m)
            | CaseKind::MatvecDot4(m)
            | CaseKind::Matmul(m) => {
                weight_bytes(m.ty, m.n_in, m.n_out).unwrap_or(0) + 4 * m.n_cols * (m.n_in + m.n_out)
            }
            CaseKind::Attention(a) => {
                let cache = 2 * a.n_kv() * a.n_head_kv * a.head_dim * a.kv.element_bytes();
                cache + 2 * 4 * a.n_tokens * a.n_head * a.head_dim
            }
            CaseKind::RmsNorm { rows, n } => 4 * (2 * rows * n + n),
        }
    }

    /// Floating-point operations of one run (a multiply-add counts as two).
    pub fn flops(&self) -> u64 {
        match self.kind {
            CaseKind::Copy { .. } | CaseKind::Convert { .. } => 0,
            CaseKind::Matvec(m)
            | CaseKind::MatvecAlt(m)
            | CaseKind::MatvecDot4(m)
            | CaseKind::Matmul(m) => 2 * m.n_in * m.n_out * m.n_cols,
            // Q K^T and P V: two multiply-adds per head element and key.
            CaseKind::Attention(a) => 4 * a.n_head * a.head_dim * a.pairs(),
            // Square-accumulate (2), then scale and weight (2) per element.
            CaseKind::RmsNorm { rows, n } => 4 * rows * n,
        }
    }
}

/// Bytes of `n_out` rows of `n_in` weights of `ty`; `None` when a row is not
/// a whole number of blocks.
pub fn weight_bytes(ty: GgmlType, n_in: u64, n_out: u64) -> Option<u64> {
    ty.bytes_for(n_in)?.checked_mul(n_out)
}

/// What to build the case list from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Weight types for the products (the kernels' `SUPPORTED_TYPES`).
    pub types: Vec<GgmlType>,
    /// Weight types of the dot4 matvec (`DOT4_TYPES`: every legacy type,
    /// k-quant and TQ type), empty where the device lacks packed dot products.
    pub dot4_types: Vec<GgmlType>,
    /// The decode kernel `matvec` does not run here, measured beside it
    /// (`matvec_split` or `matvec_rows`; none where the device has only one).
    pub alt_matvec: Option<&'static str>,
    /// Weight types of the `matmul_f16` cases (f16 tiles): all of them where
    /// the device has SHADER_F16, else none.
    pub f16_types: Vec<GgmlType>,
    /// Tokens of the prefill (`matmul`, attention, RMSNorm) cases.
    pub n_prompt: u64,
    /// Only the 2048x6144 product shape and the smaller attention model.
    pub quick: bool,
}

/// Every case of `plan`, ceiling first. Products whose `n_in` is not a whole
/// number of the type's blocks (576 for the 256-element k-quant and ternary
/// blocks) do not exist in real models and are left out.
pub fn all_cases(plan: &Plan) -> Vec<Case> {
    let mut cases = vec![Case {
        kernel: "copy",
        kind: CaseKind::Copy {
            elements: CEILING_ELEMENTS,
        },
    }];
    for to_f16 in [true, false] {
        cases.push(Case {
            kernel: if to_f16 {
                "convert_f32_to_f16"
            } else {
                "convert_f16_to_f32"
            },
            kind: CaseKind::Convert {
                elements: CONVERT_ELEMENTS,
                to_f16,
            },
        });
    }
    let shapes: Vec<(u64, u64)> = if plan.quick {
        vec![QUICK_SHAPE]
    } else {
        SMOLLM2_SHAPES
            .iter()
            .chain(&LARGE_SHAPES)
            .copied()
            .collect()
    };
    let products = |types: &[GgmlType], n_cols: u64| -> Vec<MatShape> {
        types
            .iter()
            .flat_map(|&ty| {
                shapes.iter().filter_map(move |&(n_in, n_out)| {
                    ty.row_fits(n_in).then_some(MatShape {
                        ty,
                        n_in,
                        n_out,
                        n_cols,
                    })
                })
            })
            .collect()
    };
    type Product<'a> = (&'static str, &'a [GgmlType], u64, fn(MatShape) -> CaseKind);
    let alt_types: &[GgmlType] = if plan.alt_matvec.is_some() {
        &plan.types
    } else {
        &[]
    };
    let kernels: [Product<'_>; 6] = [
        ("matvec", &plan.types, 1, CaseKind::Matvec),
        (
            plan.alt_matvec.unwrap_or("matvec_alt"),
            alt_types,
            1,
            CaseKind::MatvecAlt,
        ),
        ("matvec_q8_dot4", &plan.dot4_types, 1, CaseKind::MatvecDot4),
        ("matmul", &plan.types, plan.n_prompt, CaseKind::Matmul),
        (
            "matmul_f16",
            &plan.f16_types,
            plan.n_prompt,
            CaseKind::Matmul,
        ),
        // Prefill as matvec over chunks of 8 columns (what the engine runs on
        // CPU adapters; MatMulPath::Auto).
        (
            "matvec_chunks",
            &plan.types,
            plan.n_prompt,
            CaseKind::Matvec,
        ),
    ];
    for (kernel, types, n_cols, kind) in kernels {
        cases.extend(products(types, n_cols).into_iter().map(|m| Case {
            kernel,
            kind: kind(m),
        }));
    }
    let models = if plan.quick {
        &ATTENTION_MODELS[..1]
    } else {
        &ATTENTION_MODELS[..]
    };
    for &(_, n_head, n_head_kv, head_dim) in models {
        for kv in [KvType::F32, KvType::F16] {
            for (n_tokens, pos0) in [(1, DECODE_CONTEXT - 1), (plan.n_prompt, 0)] {
                cases.push(Case {
                    kernel: "attention",
                    kind: CaseKind::Attention(AttnShape {
                        n_tokens,
                        pos0,
                        n_head,
                        n_head_kv,
                        head_dim,
                        kv,
                    }),
                });
            }
        }
    }
    for n in NORM_WIDTHS {
        cases.push(Case {
            kernel: "rms_norm",
            kind: CaseKind::RmsNorm {
                rows: plan.n_prompt,
                n,
            },
        });
    }
    cases
}

/// Whether `case` matches one of `filters` (case-insensitive substrings of
/// its label); every case matches an empty list.
pub fn matches(case: &Case, filters: &[String]) -> bool {
    let label = case.label().to_ascii_lowercase();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| label.contains(&f.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(quick: bool) -> Plan {
        Plan {
            types: vec![GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_K],
            dot4_types: vec![GgmlType::Q8_0, GgmlType::Q4_K],
            alt_matvec: None,
            f16_types: Vec::new(),
            n_prompt: 64,
            quick,
        }
    }

    #[test]
    fn every_issue_shape_is_there_and_576_skips_256_blocks() {
        let cases = all_cases(&plan(false));
        let labels: Vec<String> = cases.iter().map(Case::label).collect();
        for shape in [
            "576x576",
            "576x1536",
            "1536x576",
            "576x49152",
            "2048x2048",
            "2048x6144",
            "6144x2048",
        ] {
            assert!(labels.contains(&format!("matvec/F32/{shape}")), "{shape}");
            assert!(labels.contains(&format!("matmul/Q8_0/{shape}")), "{shape}");
        }
        assert!(!labels.iter().any(|l| l.starts_with("matvec/Q4_K/576x")));
        assert!(labels.contains(&"matvec/Q4_K/1536x576".to_string()));
        assert!(labels.contains(&"matvec_q8_dot4/Q8_0/2048x6144".to_string()));
        assert!(labels.contains(&"matvec_q8_dot4/Q4_K/2048x6144".to_string()));
        assert!(
            !labels
                .iter()
                .any(|l| l.starts_with("matvec_q8_dot4/Q4_K/576x"))
        );
        assert_eq!(labels[0], format!("copy/F32/{CEILING_ELEMENTS}"));
        let quick = all_cases(&plan(true));
        assert!(quick.len() < cases.len());
        assert!(quick.iter().any(|c| c.label() == "matvec/Q4_K/2048x6144"));
    }

    #[test]
    fn byte_and_flop_counts() {
        let m = MatShape {
            ty: GgmlType::Q4_K,
            n_in: 2048,
            n_out: 6144,
            n_cols: 1,
        };
        let case = Case {
            kernel: "matvec",
            kind: CaseKind::Matvec(m),
        };
        // 8 blocks of 144 bytes per row.
        assert_eq!(case.bytes(), 6144 * 8 * 144 + 4 * (2048 + 6144));
        assert_eq!(case.flops(), 2 * 2048 * 6144);
        let attn = AttnShape {
            n_tokens: 3,
            pos0: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            kv: KvType::F16,
        };
        // Tokens see 3, 4 and 5 keys.
        assert_eq!(attn.pairs(), 12);
        let case = Case {
            kernel: "attention",
            kind: CaseKind::Attention(attn),
        };
        assert_eq!(case.flops(), 4 * 4 * 16 * 12);
        assert_eq!(case.bytes(), 2 * 5 * 2 * 16 * 2 + 2 * 4 * 3 * 4 * 16);
        assert_eq!(case.type_name(), "F16");
    }

    #[test]
    fn filters_are_case_insensitive_substrings() {
        let case = Case {
            kernel: "matvec",
            kind: CaseKind::Matvec(MatShape {
                ty: GgmlType::TQ2_0,
                n_in: 2048,
                n_out: 6144,
                n_cols: 1,
            }),
        };
        assert!(matches(&case, &[]));
        assert!(matches(&case, &["tq2_0".into()]));
        assert!(matches(
            &case,
            &["nope".into(), "matvec/TQ2_0/2048x6144".into()]
        ));
        assert!(!matches(&case, &["matmul".into()]));
    }
}
