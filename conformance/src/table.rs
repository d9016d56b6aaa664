//! Running every case of a references directory, and the README table made
//! from the results (`seldon-conformance table`): the table is generated,
//! never typed.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::case::{LoadedCase, ModelIn, References};
use crate::check::{CaseReport, GreedyRun, check_case_with};
use crate::error::{ConformanceError, Result};
use crate::run::Engine;

/// What happened to one case.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It ran; the report says whether it passed.
    Ran(Box<CaseReport>),
    /// It could not run here, for a reason that is not a failure of seldon:
    /// its model lives outside the repository and is absent.
    Skipped {
        /// Why.
        reason: String,
    },
    /// It needs an engine feature that does not exist yet.
    Unsupported {
        /// Which.
        reason: String,
    },
    /// It failed to run (the engine erred, or the reference is bad).
    Error {
        /// The error.
        error: String,
    },
}

/// One case's row.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The case id.
    pub id: String,
    /// The case's `kind` (`tiny`, `lora`, `smollm2`, `custom`).
    pub kind: String,
    /// `general.architecture`.
    pub arch: String,
    /// llama.cpp's type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// What happened.
    pub outcome: Outcome,
}

impl CaseOutcome {
    /// Whether the case ran and met every threshold.
    pub fn passed(&self) -> bool {
        matches!(&self.outcome, Outcome::Ran(r) if r.pass)
    }

    /// One line for a log.
    pub fn line(&self) -> String {
        match &self.outcome {
            Outcome::Ran(r) => r.line(),
            Outcome::Skipped { reason } => format!("SKIP {:<28} {reason}", self.id),
            Outcome::Unsupported { reason } => format!("UNSUPPORTED {:<21} {reason}", self.id),
            Outcome::Error { error } => format!("ERROR {:<27} {error}", self.id),
        }
    }
}

/// Runs one case file, turning every failure to run into an [`Outcome`].
pub fn run_case_file(engine: &Engine, path: &Path) -> CaseOutcome {
    run_case_file_with(engine, path, GreedyRun::Always)
}

/// As [`run_case_file`], choosing whether the greedy continuation runs.
pub fn run_case_file_with(engine: &Engine, path: &Path, greedy: GreedyRun) -> CaseOutcome {
    let loaded = match LoadedCase::open(path) {
        Ok(c) => c,
        Err(e) => {
            return CaseOutcome {
                id: path.display().to_string(),
                kind: String::new(),
                arch: String::new(),
                type_name: String::new(),
                outcome: Outcome::Error {
                    error: e.to_string(),
                },
            };
        }
    };
    let model = loaded.model_path();
    let outcome = if loaded.case.model_in == ModelIn::ModelsDir && !model.is_file() {
        Outcome::Skipped {
            reason: format!(
                "{} is absent (scripts/fetch-models.sh fetches it)",
                model.display()
            ),
        }
    } else {
        match check_case_with(engine, &loaded, None, greedy) {
            Ok(r) => Outcome::Ran(Box::new(r)),
            Err(ConformanceError::Unsupported(reason)) => Outcome::Unsupported { reason },
            Err(e) => Outcome::Error {
                error: e.to_string(),
            },
        }
    };
    CaseOutcome {
        id: loaded.id(),
        kind: loaded.case.kind.clone(),
        arch: loaded.case.arch.clone(),
        type_name: loaded.case.type_name.clone(),
        outcome,
    }
}

/// Runs every case `refs` lists, in manifest order, calling `each` after each.
pub fn run_all(
    engine: &Engine,
    refs: &References,
    greedy: GreedyRun,
    mut each: impl FnMut(&CaseOutcome),
) -> Vec<CaseOutcome> {
    refs.case_files()
        .iter()
        .map(|p| {
            let o = run_case_file_with(engine, p, greedy);
            each(&o);
            o
        })
        .collect()
}

/// The line that opens the generated region of a README.
pub const README_BEGIN: &str = "<!-- conformance:begin -->";
/// The line that closes it.
pub const README_END: &str = "<!-- conformance:end -->";

/// Distances aggregated over the positions of one or more cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Aggregate {
    /// Fraction of positions with the same most likely token.
    pub top1_agreement: f64,
    /// Mean KL per position, in nats (over every position of every case).
    pub mean_kl: f64,
    /// The largest KL at any position.
    pub max_kl: f64,
    /// The largest |logit difference| anywhere.
    pub max_abs_logit_diff: f64,
}

#[derive(Default)]
struct Sum {
    positions: f64,
    top1: f64,
    kl: f64,
    max_kl: f64,
    max_abs: f64,
}

impl Sum {
    fn add(&mut self, n: usize, top1: f64, mean_kl: f64, max_kl: f64, max_abs: f64) {
        let n = n as f64;
        self.positions += n;
        self.top1 += n * top1;
        self.kl += n * mean_kl;
        self.max_kl = self.max_kl.max(max_kl);
        self.max_abs = self.max_abs.max(max_abs);
    }

    fn get(&self) -> Option<Aggregate> {
        (self.positions > 0.0).then(|| Aggregate {
            top1_agreement: self.top1 / self.positions,
            mean_kl: self.kl / self.positions,
            max_kl: self.max_kl,
            max_abs_logit_diff: self.max_abs,
        })
    }
}

/// One row of the README table: every case of one model, architecture and
/// type (SmolLM2's prompts are one row), from one references directory.
#[derive(Debug, Clone, Serialize)]
pub struct TableRow {
    /// `tiny random`, `SmolLM2-135M-Instruct`, `tiny + LoRA`, or a custom case's name.
    pub model: String,
    /// `general.architecture`.
    pub arch: String,
    /// llama.cpp's type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The references directory's label (`committed`, `extended`).
    pub suite: String,
    /// Cases in the row.
    pub cases: usize,
    /// Positions compared, over the cases that ran.
    pub positions: usize,
    /// seldon against llama.cpp, over the cases that ran.
    pub seldon: Option<Aggregate>,
    /// The float64 reference against llama.cpp, over the same cases.
    pub f64_reference: Option<Aggregate>,
    /// `pass`, `FAIL`, or why the row did not run.
    pub result: String,
    /// Whether the row counts as a failure (a threshold missed or an error).
    pub failed: bool,
}

const ARCH_ORDER: [&str; 4] = ["llama", "qwen2", "qwen3", "bitnet"];
const TYPE_ORDER: [&str; 15] = [
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_1", "Q5_0", "Q4_K_M", "Q4_1", "Q4_0",
    "Q3_K_M", "Q2_K", "TQ2_0", "TQ1_0",
];

fn model_label(o: &CaseOutcome) -> String {
    match o.kind.as_str() {
        "tiny" => "tiny random".into(),
        "smollm2" => "SmolLM2-135M-Instruct".into(),
        "lora" => "tiny random + LoRA".into(),
        _ => o.id.clone(),
    }
}

fn rank(list: &[&str], v: &str) -> usize {
    list.iter().position(|x| *x == v).unwrap_or(list.len())
}

/// Groups case outcomes, each with its suite label, into table rows, sorted
/// by model, architecture and type.
pub fn rows(outcomes: &[(String, CaseOutcome)]) -> Vec<TableRow> {
    // (model, arch, type, suite) and the cases that share them.
    type Key = (String, String, String, String);
    let mut groups: Vec<(Key, Vec<&CaseOutcome>)> = Vec::new();
    for (suite, o) in outcomes {
        let key = (
            model_label(o),
            o.arch.clone(),
            o.type_name.clone(),
            suite.clone(),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(o),
            None => groups.push((key, vec![o])),
        }
    }
    let kind_rank = |m: &str| match m {
        "tiny random" => 0,
        "SmolLM2-135M-Instruct" => 1,
        "tiny random + LoRA" => 2,
        _ => 3,
    };
    groups.sort_by(|(a, _), (b, _)| {
        (kind_rank(&a.0), rank(&ARCH_ORDER, &a.1), &a.1)
            .cmp(&(kind_rank(&b.0), rank(&ARCH_ORDER, &b.1), &b.1))
            .then(rank(&TYPE_ORDER, &a.2).cmp(&rank(&TYPE_ORDER, &b.2)))
            .then(a.2.cmp(&b.2))
            .then(a.0.cmp(&b.0))
    });
    groups
        .into_iter()
        .map(|((model, arch, type_name, suite), cases)| {
            let mut ours = Sum::default();
            let mut theirs = Sum::default();
            let mut all_f64 = true;
            let (mut ran, mut passed, mut errors, mut skipped) = (0, 0, 0, 0);
            let mut unsupported = None;
            for o in &cases {
                match &o.outcome {
                    Outcome::Ran(r) => {
                        ran += 1;
                        passed += usize::from(r.pass);
                        let m = &r.metrics;
                        ours.add(
                            m.n_positions,
                            m.top1_agreement,
                            m.kl.mean,
                            m.kl.max,
                            m.logit_diff.max_abs,
                        );
                        match r.f64_reference {
                            Some(d) => theirs.add(
                                m.n_positions,
                                d.top1_agreement,
                                d.mean_kl,
                                d.max_kl,
                                d.max_abs_logit_diff,
                            ),
                            None => all_f64 = false,
                        }
                    }
                    Outcome::Skipped { .. } => skipped += 1,
                    Outcome::Unsupported { reason } => unsupported = Some(reason.clone()),
                    Outcome::Error { .. } => errors += 1,
                }
            }
            let n = cases.len();
            let (result, failed) = if errors > 0 {
                (format!("**error** in {errors} of {n}"), true)
            } else if passed < ran {
                (format!("**FAIL** ({} of {n} cases)", ran - passed), true)
            } else if let Some(reason) = unsupported {
                (format!("not run: {reason}"), false)
            } else if skipped > 0 {
                (format!("{skipped} of {n} skipped: model absent"), false)
            } else {
                ("pass".into(), false)
            };
            TableRow {
                model,
                arch,
                type_name,
                suite,
                cases: n,
                positions: ours.positions as usize,
                seldon: ours.get(),
                f64_reference: if all_f64 { theirs.get() } else { None },
                result,
                failed,
            }
        })
        .collect()
}

fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (1e-2..1e3).contains(&v.abs()) {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The markdown table of `rows`: per row seldon's distance from llama.cpp and,
/// beside it, the float64 reference's.
pub fn markdown(rows: &[TableRow], backend: &str, llama_cpp: &str) -> Result<String> {
    let mut s = String::new();
    let w = |e: std::fmt::Error| ConformanceError::Invalid(e.to_string());
    writeln!(
        s,
        "Generated by `seldon-conformance table` on {backend} against llama.cpp {llama_cpp} \
         (CPU backend, flash attention off, F32 KV cache); do not edit by hand. Each cell is \
         **seldon's distance from llama.cpp / the float64 reference's distance from llama.cpp**: \
         the second number is how far an engine that computes exactly lands, because llama.cpp \
         rounds activations to Q8 before quantized matmuls. KL is KL(llama.cpp || other) per \
         position in nats, averaged over every position of the row's cases; top-1 is the share \
         of positions whose most likely token is llama.cpp's. SmolLM2 references store the top \
         20 log-probabilities per position, so its seldon KL folds the remaining tokens into one \
         (a lower bound); its rows cover six prompts, and its Q8_0 and Q4_K_M files are the shipped \
         Q4_1 re-quantized by llama.cpp. Thresholds: `conformance/src/thresholds.rs`.\n"
    )
    .map_err(w)?;
    writeln!(
        s,
        "| model | arch | type | suite | positions | top-1 | mean KL | max KL | max abs logit diff | result |"
    )
    .map_err(w)?;
    writeln!(s, "|---|---|---|---|---:|---:|---:|---:|---:|---|").map_err(w)?;
    for r in rows {
        let cell = |f: &dyn Fn(&Aggregate) -> String| match (&r.seldon, &r.f64_reference) {
            (Some(a), Some(b)) => format!("{} / {}", f(a), f(b)),
            (Some(a), None) => format!("{} / -", f(a)),
            (None, _) => "-".into(),
        };
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            r.arch,
            r.type_name,
            r.suite,
            r.positions,
            cell(&|a| pct(a.top1_agreement)),
            cell(&|a| sci(a.mean_kl)),
            cell(&|a| sci(a.max_kl)),
            cell(&|a| sci(a.max_abs_logit_diff)),
            r.result.replace('|', "\\|")
        )
        .map_err(w)?;
    }
    Ok(s)
}

/// Replaces what lies between the [`README_BEGIN`] and [`README_END`] lines
/// of `doc` with `body`; the markers stay. Both must appear exactly once, in
/// that order.
pub fn replace_region(doc: &str, body: &str) -> Result<String> {
    let one = |marker: &str| -> Result<usize> {
        let mut found = doc.match_indices(marker).map(|(i, _)| i);
        match (found.next(), found.next()) {
            (Some(i), None) => Ok(i),
            (None, _) => Err(ConformanceError::Invalid(format!(
                "no {marker} line: add {README_BEGIN} and {README_END} lines where the table goes"
            ))),
            (Some(_), Some(_)) => Err(ConformanceError::Invalid(format!(
                "{marker} appears more than once"
            ))),
        }
    };
    let (b, e) = (one(README_BEGIN)?, one(README_END)?);
    if e < b {
        return Err(ConformanceError::Invalid(format!(
            "{README_END} comes before {README_BEGIN}"
        )));
    }
    let head = &doc[..b + README_BEGIN.len()];
    let tail = &doc[e..];
    let body = body.trim_end_matches('\n');
    Ok(format!("{head}\n{body}\n{tail}"))
}

/// Rewrites the generated region of the file at `path` in place.
pub fn rewrite_readme(path: &Path, body: &str) -> Result<()> {
    let doc = std::fs::read_to_string(path).map_err(|e| ConformanceError::io(path, e))?;
    let new = replace_region(&doc, body)
        .map_err(|e| ConformanceError::Invalid(format!("{}: {e}", path.display())))?;
    if new != doc {
        std::fs::write(path, new).map_err(|e| ConformanceError::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_between_the_markers_is_replaced() {
        let doc = format!("# T\n\nbefore\n{README_BEGIN}\nold\nrows\n{README_END}\nafter\n");
        let new = replace_region(&doc, "| a |\n|---|\n").unwrap();
        assert_eq!(
            new,
            format!("# T\n\nbefore\n{README_BEGIN}\n| a |\n|---|\n{README_END}\nafter\n")
        );
        // Idempotent.
        assert_eq!(replace_region(&new, "| a |\n|---|\n").unwrap(), new);
    }

    #[test]
    fn missing_repeated_or_swapped_markers_are_errors() {
        assert!(replace_region("no markers", "x").is_err());
        let twice = format!("{README_BEGIN}\n{README_BEGIN}\n{README_END}\n");
        assert!(replace_region(&twice, "x").is_err());
        let swapped = format!("{README_END}\n{README_BEGIN}\n");
        assert!(replace_region(&swapped, "x").is_err());
    }

    fn outcome(id: &str, kind: &str, ty: &str, outcome: Outcome) -> (String, CaseOutcome) {
        (
            "committed".into(),
            CaseOutcome {
                id: id.into(),
                kind: kind.into(),
                arch: "llama".into(),
                type_name: ty.into(),
                outcome,
            },
        )
    }

    #[test]
    fn rows_are_grouped_sorted_and_keep_gaps_visible() {
        let skipped = || Outcome::Skipped {
            reason: "absent".into(),
        };
        let rows = rows(&[
            outcome("smollm2/Q4_1/a", "smollm2", "Q4_1", skipped()),
            outcome("smollm2/Q4_1/b", "smollm2", "Q4_1", skipped()),
            outcome(
                "lora/x",
                "lora",
                "F32",
                Outcome::Unsupported {
                    reason: "LoRA".into(),
                },
            ),
            outcome(
                "tiny/llama-Q8_0",
                "tiny",
                "Q8_0",
                Outcome::Error { error: "e".into() },
            ),
            outcome("tiny/llama-F32", "tiny", "F32", skipped()),
        ]);
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.model.as_str(), r.type_name.as_str(), r.cases))
            .collect();
        assert_eq!(
            names,
            [
                ("tiny random", "F32", 1),
                ("tiny random", "Q8_0", 1),
                ("SmolLM2-135M-Instruct", "Q4_1", 2),
                ("tiny random + LoRA", "F32", 1),
            ]
        );
        assert!(rows[1].failed && !rows[2].failed && !rows[3].failed);
        assert!(rows[3].result.starts_with("not run"));
        let md = markdown(&rows, "test", "x").unwrap();
        assert_eq!(md.matches("\n| ").count(), 5, "{md}");
    }
}
