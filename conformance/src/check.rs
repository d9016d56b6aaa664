//! One reference case run through seldon and held to the thresholds table.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::case::{Distances, LoadedCase};
use crate::error::{ConformanceError, Result};
use crate::metrics::{
    Metrics, PositionMetrics, TokenMatch, compare, first_divergence, greedy_steps_to_compare,
    tokens_match,
};
use crate::run::Engine;
use crate::thresholds::{CaseClass, Verdict, row};

/// How many of the worst positions a report lists.
pub const WORST_POSITIONS: usize = 5;

/// seldon's greedy continuation against llama.cpp's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GreedyReport {
    /// Whether it ran (see [`GreedyRun`]); when not, the rest is empty.
    pub run: bool,
    /// seldon's tokens, up to and including the first that differs.
    pub tokens: Vec<u32>,
    /// llama.cpp's tokens.
    pub reference: Vec<u32>,
    /// The first step where they differ.
    pub first_divergence: Option<usize>,
    /// Leading steps whose llama.cpp margin exceeds the class's greedy margin
    /// (or 0.01 where the class sets none): the steps that must agree.
    pub steps_to_compare: usize,
}

/// The full outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case id (`tiny/llama-Q8_0`).
    pub id: String,
    /// `general.architecture`.
    pub arch: String,
    /// llama.cpp's type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The thresholds row applied.
    pub class: CaseClass,
    /// The backend (GPU adapter name or `cpu`).
    pub backend: String,
    /// Tokens compared.
    pub n_tokens: usize,
    /// The logits comparison.
    pub metrics: Metrics,
    /// The worst positions by KL.
    pub worst_positions: Vec<PositionMetrics>,
    /// The prompt tokenized by seldon against llama.cpp (when the case has a prompt).
    pub tokenization: Option<TokenMatch>,
    /// The greedy comparison.
    pub greedy: GreedyReport,
    /// llama.cpp's own distance from the float64 reference, for scale.
    pub f64_reference: Option<Distances>,
    /// Every threshold applied.
    pub verdicts: Vec<Verdict>,
    /// Whether every verdict passed.
    pub pass: bool,
}

/// Greedy steps are compared while margins exceed this when the class sets
/// no margin of its own (reported, not asserted).
const DEFAULT_GREEDY_MARGIN: f64 = 0.01;

/// Whether a check runs the greedy continuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreedyRun {
    /// Always (it is reported even where no threshold applies to it).
    Always,
    /// Only for classes that assert it (F32): one forward call per step is
    /// the slow part of a case on a software GPU, and the table does not
    /// show it.
    WhenAsserted,
}

/// Runs `case` on `engine` (on `model` instead of the case's own model when
/// given) and applies the thresholds of its class.
pub fn check_case(engine: &Engine, case: &LoadedCase, model: Option<&Path>) -> Result<CaseReport> {
    check_case_with(engine, case, model, GreedyRun::Always)
}

/// As [`check_case`], choosing whether the greedy continuation runs.
pub fn check_case_with(
    engine: &Engine,
    case: &LoadedCase,
    model: Option<&Path>,
    greedy_run: GreedyRun,
) -> Result<CaseReport> {
    let c = &case.case;
    if !c.adapters.is_empty() {
        return Err(ConformanceError::Unsupported(
            "LoRA adapters: seldon-engine has no API to apply an adapter to a model yet".into(),
        ));
    }
    let path = model.map_or_else(|| case.model_path(), Path::to_path_buf);
    let n_greedy = c.greedy.tokens.len();
    let mut runner = engine.load(&path, c.n_tokens + n_greedy)?;
    if runner.n_vocab() != c.n_vocab {
        return Err(ConformanceError::Invalid(format!(
            "{} has {} tokens, the reference {}",
            path.display(),
            runner.n_vocab(),
            c.n_vocab
        )));
    }
    let reference = case.load_reference()?;
    let tokenization = match &c.prompt {
        Some(p) => {
            let ours = runner
                .tokenizer()?
                .encode(&p.text, p.add_special, p.parse_special)?;
            Some(tokens_match(&c.tokens, &ours))
        }
        None => None,
    };
    let logits = runner.logits_all(&c.tokens)?;
    let metrics = compare(reference.as_ref_logits(), &logits, c.n_vocab, &c.tokens)?;
    let last = &logits[(c.n_tokens - 1) * c.n_vocab..];
    let class = CaseClass::of(&c.kind, &c.type_name);
    let limits = row(class).limits;
    let run_greedy = greedy_run == GreedyRun::Always || limits.greedy_margin.is_some();
    let ours = if run_greedy {
        runner.greedy_against(last, c.n_tokens, &c.greedy.tokens)?
    } else {
        Vec::new()
    };
    let greedy = GreedyReport {
        run: run_greedy,
        first_divergence: if run_greedy {
            first_divergence(&c.greedy.tokens, &ours)
        } else {
            None
        },
        steps_to_compare: greedy_steps_to_compare(
            &c.greedy.margins,
            limits.greedy_margin.unwrap_or(DEFAULT_GREEDY_MARGIN),
        ),
        tokens: ours,
        reference: c.greedy.tokens.clone(),
    };

    let mut verdicts = Vec::new();
    if let Some(t) = &tokenization {
        verdicts.push(Verdict::at_least(
            "tokenization_exact",
            f64::from(u8::from(t.exact)),
            1.0,
        ));
    }
    if let Some(l) = limits.max_abs_logit {
        verdicts.push(Verdict::at_most(
            "max_abs_logit_diff",
            metrics.logit_diff.max_abs,
            l,
        ));
    }
    if limits.greedy_margin.is_some() {
        let same = greedy.first_divergence.unwrap_or(n_greedy);
        verdicts.push(Verdict::at_least(
            "greedy_steps_identical",
            same as f64,
            greedy.steps_to_compare as f64,
        ));
    }
    if let Some(l) = limits.mean_kl {
        verdicts.push(Verdict::at_most("mean_kl", metrics.kl.mean, l));
    }
    if let Some(l) = limits.max_kl {
        verdicts.push(Verdict::at_most("max_kl", metrics.kl.max, l));
    }
    if let Some(l) = limits.min_top1 {
        verdicts.push(Verdict::at_least(
            "top1_agreement",
            metrics.top1_agreement,
            l,
        ));
    }
    let pass = verdicts.iter().all(|v| v.pass);
    Ok(CaseReport {
        id: case.id(),
        arch: c.arch.clone(),
        type_name: c.type_name.clone(),
        class,
        backend: runner.backend_name(),
        n_tokens: c.n_tokens,
        worst_positions: metrics.worst_positions(WORST_POSITIONS),
        metrics,
        tokenization,
        greedy,
        f64_reference: c.f64_reference,
        verdicts,
        pass,
    })
}

fn g(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

impl CaseReport {
    /// One line for a suite log.
    pub fn line(&self) -> String {
        let m = &self.metrics;
        format!(
            "{} {:<28} {:<7} mean KL {:>10} max KL {:>10} top-1 {:>6.1}% max|dlogit| {:>10} greedy {}",
            if self.pass { "PASS" } else { "FAIL" },
            self.id,
            self.type_name,
            g(m.kl.mean),
            g(m.kl.max),
            100.0 * m.top1_agreement,
            g(m.logit_diff.max_abs),
            match self.greedy.first_divergence {
                _ if !self.greedy.run => "not run".to_string(),
                None => format!("{0}/{0}", self.greedy.reference.len()),
                Some(d) => format!("diverges at {d}"),
            },
        )
    }

    /// The full text report.
    pub fn to_text(&self) -> String {
        let m = &self.metrics;
        let f = self.f64_reference;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "case {} ({} {}, {} tokens) on {}: thresholds row {:?}",
            self.id, self.arch, self.type_name, self.n_tokens, self.backend, self.class
        );
        let _ = writeln!(s, "  {:<28} {:>12} {:>14}", "", "seldon", "f64 reference");
        let fr = |v: Option<f64>| v.map_or_else(|| "-".to_string(), g);
        let rows: [(&str, f64, Option<f64>); 11] = [
            ("mean KL (nats)", m.kl.mean, f.map(|d| d.mean_kl)),
            ("median KL", m.kl.median, None),
            ("p99 KL", m.kl.p99, None),
            ("max KL", m.kl.max, f.map(|d| d.max_kl)),
            (
                "top-1 agreement",
                m.top1_agreement,
                f.map(|d| d.top1_agreement),
            ),
            (
                "max abs logit diff",
                m.logit_diff.max_abs,
                f.map(|d| d.max_abs_logit_diff),
            ),
            ("RMS logit diff", m.logit_diff.rms, None),
            ("max abs prob diff", m.prob_diff.max_abs, None),
            ("RMS prob diff", m.prob_diff.rms, None),
            (
                "next-token dp max abs",
                m.next_token_prob_diff.max_abs,
                None,
            ),
            ("next-token dp RMS", m.next_token_prob_diff.rms, None),
        ];
        for (name, v, r) in rows {
            let _ = writeln!(s, "  {name:<28} {:>12} {:>14}", g(v), fr(r));
        }
        let gr = &self.greedy;
        let asserted = row(self.class).limits.greedy_margin.is_some();
        if !gr.run {
            let _ = writeln!(s, "  greedy: not run (not asserted for this class)");
        } else {
            let _ = writeln!(
                s,
                "  greedy: {}; llama.cpp's margin exceeds {} for the first {} of {} steps ({})",
                gr.first_divergence.map_or_else(
                    || "identical".to_string(),
                    |d| format!("first divergence at step {d}")
                ),
                row(self.class)
                    .limits
                    .greedy_margin
                    .unwrap_or(DEFAULT_GREEDY_MARGIN),
                gr.steps_to_compare,
                gr.reference.len(),
                if asserted {
                    "those must agree"
                } else {
                    "reported, not asserted for this class"
                }
            );
        }
        if let Some(t) = &self.tokenization {
            let _ = writeln!(
                s,
                "  tokenization: {}",
                t.first_mismatch
                    .map_or_else(|| "exact".to_string(), |i| format!("differs at token {i}"))
            );
        }
        let _ = writeln!(s, "  worst positions:");
        for p in &self.worst_positions {
            let _ = writeln!(
                s,
                "    pos {:>4}  KL {:>10}  top-1 ref {:>6} ours {:>6}  max|dlogit| {:>10}  max|dp| {:>10}",
                p.pos,
                g(p.kl),
                p.ref_top1,
                p.our_top1,
                g(p.max_abs_logit_diff),
                g(p.max_abs_prob_diff)
            );
        }
        for v in &self.verdicts {
            let _ = writeln!(
                s,
                "  {} {} = {} {} {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.metric,
                g(v.value),
                v.op,
                g(v.limit)
            );
        }
        let _ = writeln!(s, "{}", if self.pass { "PASS" } else { "FAIL" });
        s
    }
}
