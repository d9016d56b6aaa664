//! The conformance thresholds: one table, every number with its source.
//!
//! The float64 reference (conformance/references/README.md) measures how far
//! llama.cpp itself is from exact arithmetic: an engine that computes exactly
//! is that far from llama.cpp and no closer. Each case's `f64_reference`
//! holds that distance, and reports print it beside seldon's, so a reader can
//! see how much of seldon's distance is llama.cpp's activation rounding.

use serde::Serialize;

/// Which row of [`TABLE`] a case is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseClass {
    /// F32 weights (LoRA on F32 included): compared logit by logit.
    F32,
    /// Quantized or F16 weights on a small random model (flat distributions).
    QuantizedTiny,
    /// Quantized weights on a trained model (SmolLM2, `make-reference` output).
    QuantizedReal,
    /// SmolLM2 re-quantized by llama.cpp from Q4_1 to Q4_K_M (extended suite
    /// only): llama.cpp itself is farther from exact arithmetic there.
    RequantizedReal,
}

impl CaseClass {
    /// The class of a case from its `kind` and llama.cpp `type` name.
    pub fn of(kind: &str, type_name: &str) -> Self {
        match (kind, type_name) {
            (_, "F32") => Self::F32,
            ("tiny" | "lora", _) => Self::QuantizedTiny,
            ("smollm2", "Q4_K_M") => Self::RequantizedReal,
            _ => Self::QuantizedReal,
        }
    }
}

/// The limits one class of cases must meet; `None` means not checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Largest |logit difference| allowed anywhere.
    pub max_abs_logit: Option<f64>,
    /// Greedy tokens must be identical for every leading step whose
    /// llama.cpp top-1 margin exceeds this.
    pub greedy_margin: Option<f64>,
    /// Largest mean KL(llama.cpp || seldon) per position, nats.
    pub mean_kl: Option<f64>,
    /// Largest KL at any single position, nats.
    pub max_kl: Option<f64>,
    /// Smallest fraction of positions with the same top-1 token.
    pub min_top1: Option<f64>,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    /// The cases it applies to.
    pub class: CaseClass,
    /// Their limits.
    pub limits: Limits,
    /// Where the numbers come from.
    pub source: &'static str,
}

/// The thresholds of issue 5 item 3, one row per class.
pub const TABLE: [Row; 4] = [
    // F32: the float64 reference is within 2e-5 (max abs logit) of llama.cpp
    // on every F32 case, LoRA included (SUMMARY.md). 1e-3 is 50x that, room
    // for f32 sums taken in a different order on a GPU. Greedy steps are
    // compared while llama.cpp's top-1 lead exceeds 0.01, 10x the logit
    // limit, so no correct engine can flip them.
    Row {
        class: CaseClass::F32,
        limits: Limits {
            max_abs_logit: Some(1e-3),
            greedy_margin: Some(0.01),
            mean_kl: None,
            max_kl: None,
            min_top1: None,
        },
        source: "issue 5; f64 reference within 2e-5 of llama.cpp (SUMMARY.md)",
    },
    // Quantized tiny models: llama.cpp rounds activations to Q8 before
    // quantized matmuls, so its logits move by up to ~0.7 against exact
    // arithmetic (REFERENCES.md). The f64 reference reaches mean KL
    // 1.8e-3..9.5e-3 and max KL 0.057 on the committed cases and 0.054 on the
    // extended ones, hence 0.01 and 0.1. Random models have flat
    // distributions and near-tied top-1s: the f64 reference agrees on 87.5%
    // (extended llama-Q6_K) to 100%, hence 85%.
    Row {
        class: CaseClass::QuantizedTiny,
        limits: Limits {
            max_abs_logit: None,
            greedy_margin: None,
            mean_kl: Some(0.01),
            max_kl: Some(0.1),
            min_top1: Some(0.85),
        },
        source: "issue 5; f64 reference: mean KL <= 9.5e-3, max KL <= 0.057, top-1 >= 87.5%",
    },
    // SmolLM2 Q4_1 (and Q8_0 in the extended suite): the f64 reference
    // reaches mean KL 2.3e-3..5.9e-3, max KL 0.029, top-1 94.9-100%.
    Row {
        class: CaseClass::QuantizedReal,
        limits: Limits {
            max_abs_logit: None,
            greedy_margin: None,
            mean_kl: Some(0.01),
            max_kl: Some(0.1),
            min_top1: Some(0.90),
        },
        source: "issue 5; f64 reference on SmolLM2 Q4_1/Q8_0: mean KL <= 5.9e-3, top-1 >= 94.9%",
    },
    // SmolLM2 re-quantized to Q4_K_M (extended only): the f64 reference
    // itself reaches mean KL 0.024, max KL 0.098 and top-1 80% (4 of 5
    // tokens on the "capital" prompt), so the general limits would fail an
    // exact engine. These leave the same kind of headroom over it.
    Row {
        class: CaseClass::RequantizedReal,
        limits: Limits {
            max_abs_logit: None,
            greedy_margin: None,
            mean_kl: Some(0.03),
            max_kl: Some(0.15),
            min_top1: Some(0.80),
        },
        source: "f64 reference on SmolLM2 Q4_K_M: mean KL 0.024, max KL 0.098, top-1 80%",
    },
];

/// Tokenization must be identical to llama.cpp's on every text (issue 5).
pub const TOKENIZATION: &str = "exact: every token id equal";

/// Dequantization on the CPU must be bit-exact with ggml (seldon-formats'
/// golden tests); on the GPU within 1 ulp of the CPU, since WGSL may fuse
/// `a * b + c` (DESIGN.md).
pub const DEQUANT_GPU_MAX_ULPS: u32 = 1;

/// The row for a class.
pub fn row(class: CaseClass) -> &'static Row {
    // TABLE has one row per class, in the enum's order.
    &TABLE[class as usize]
}

/// One threshold applied to one measured value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// What was measured (`mean_kl`, `top1_agreement`, ...).
    pub metric: &'static str,
    /// The measured value.
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// `<=` or `>=`: how value must relate to limit.
    pub op: &'static str,
    /// Whether it holds (NaN never does).
    pub pass: bool,
}

impl Verdict {
    /// `value <= limit`.
    pub fn at_most(metric: &'static str, value: f64, limit: f64) -> Self {
        Self {
            metric,
            value,
            limit,
            op: "<=",
            pass: value <= limit,
        }
    }

    /// `value >= limit`.
    pub fn at_least(metric: &'static str, value: f64, limit: f64) -> Self {
        Self {
            metric,
            value,
            limit,
            op: ">=",
            pass: value >= limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_row() {
        for class in [
            CaseClass::F32,
            CaseClass::QuantizedTiny,
            CaseClass::QuantizedReal,
            CaseClass::RequantizedReal,
        ] {
            assert_eq!(row(class).class, class);
        }
    }

    #[test]
    fn cases_are_classified_by_kind_and_type() {
        assert_eq!(CaseClass::of("tiny", "F32"), CaseClass::F32);
        assert_eq!(CaseClass::of("lora", "F32"), CaseClass::F32);
        assert_eq!(CaseClass::of("tiny", "F16"), CaseClass::QuantizedTiny);
        assert_eq!(CaseClass::of("tiny", "TQ1_0"), CaseClass::QuantizedTiny);
        assert_eq!(CaseClass::of("smollm2", "Q4_1"), CaseClass::QuantizedReal);
        assert_eq!(
            CaseClass::of("smollm2", "Q4_K_M"),
            CaseClass::RequantizedReal
        );
        assert_eq!(CaseClass::of("custom", "Q8_0"), CaseClass::QuantizedReal);
    }

    #[test]
    fn verdicts_compare_and_reject_nan() {
        assert!(Verdict::at_most("x", 0.01, 0.01).pass);
        assert!(!Verdict::at_most("x", 0.02, 0.01).pass);
        assert!(!Verdict::at_most("x", f64::NAN, 0.01).pass);
        assert!(Verdict::at_least("x", 0.9, 0.9).pass);
        assert!(!Verdict::at_least("x", f64::NAN, 0.9).pass);
    }
}
