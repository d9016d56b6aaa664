//! How far seldon's logits are from a reference's, position by position:
//! KL(reference || seldon), top-1 agreement, probability and logit
//! differences, as llama-perplexity's KL-divergence mode reports them, plus
//! the greedy and tokenization comparisons.
//!
//! Everything is computed in f64 from f32 logits, so the metric adds no
//! rounding of its own at the sizes that matter (KL down to ~1e-12).

use serde::Serialize;

use crate::error::{ConformanceError, Result};

/// The reference side of a comparison.
#[derive(Debug, Clone, Copy)]
pub enum RefLogits<'a> {
    /// Every logit, `[n_positions][n_vocab]`.
    Full(&'a [f32]),
    /// The `k` highest logits per position (SmolLM2 cases): ids in descending
    /// order of logit, their log-probabilities and each row's log-sum-exp.
    TopK {
        /// `[n_positions][k]` token ids.
        ids: &'a [u32],
        /// `[n_positions][k]` log-probabilities, `logit - lse`.
        logprobs: &'a [f32],
        /// `[n_positions]` log-sum-exp of the full row.
        lse: &'a [f32],
        /// Entries per position.
        k: usize,
    },
}

/// One position's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PositionMetrics {
    /// The position in the sequence.
    pub pos: usize,
    /// KL(reference || seldon) in nats.
    pub kl: f64,
    /// The reference's most likely token (lowest id among ties).
    pub ref_top1: u32,
    /// seldon's most likely token (lowest id among ties).
    pub our_top1: u32,
    /// The largest |logit difference| at this position.
    pub max_abs_logit_diff: f64,
    /// The largest |probability difference| at this position.
    pub max_abs_prob_diff: f64,
}

/// Order statistics of a per-position quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The mean.
    pub mean: f64,
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The 99th percentile, interpolated as llama-perplexity does.
    pub p99: f64,
    /// The maximum.
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (all zeros for none).
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self {
                mean: 0.0,
                median: 0.0,
                p99: 0.0,
                max: 0.0,
            };
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n.is_multiple_of(2) {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        } else {
            v[n / 2]
        };
        Self {
            mean: v.iter().sum::<f64>() / n as f64,
            median,
            p99: percentile(&v, 0.99),
            max: v[n - 1],
        }
    }
}

/// The value at `fraction` of sorted `values`, linearly interpolated between
/// neighbours (llama-perplexity's `percentile`).
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
        return 0.0;
    };
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let p = fraction * (sorted.len() - 1) as f64;
    let i = p.floor() as usize;
    let t = p - i as f64;
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    (1.0 - t) * sorted[i] + t * next
}

/// Root mean square and maximum absolute value of a set of differences.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DiffStats {
    /// sqrt(mean(d^2)).
    pub rms: f64,
    /// max |d|.
    pub max_abs: f64,
}

#[derive(Debug, Default)]
struct DiffAcc {
    sum2: f64,
    max_abs: f64,
    n: usize,
}

impl DiffAcc {
    fn add(&mut self, d: f64) {
        self.sum2 += d * d;
        // NaN must not hide behind max(): it makes the maximum NaN.
        self.max_abs = nan_max(self.max_abs, d.abs());
        self.n += 1;
    }

    fn stats(&self) -> DiffStats {
        DiffStats {
            rms: if self.n == 0 {
                0.0
            } else {
                (self.sum2 / self.n as f64).sqrt()
            },
            max_abs: self.max_abs,
        }
    }
}

/// The comparison of two sets of logits over the same tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Positions compared.
    pub n_positions: usize,
    /// KL(reference || seldon) per position, in nats.
    pub kl: Summary,
    /// The fraction of positions whose most likely token is the same
    /// (llama-perplexity's "same top p").
    pub top1_agreement: f64,
    /// Differences of probabilities, over every (position, token) the
    /// reference holds.
    pub prob_diff: DiffStats,
    /// Differences of logits, over the same entries.
    pub logit_diff: DiffStats,
    /// Differences of the probability given to the next token of the sequence
    /// (llama-perplexity's Δp), over positions `0..n-1`.
    pub next_token_prob_diff: DiffStats,
    /// Every position's numbers, in order (left out of JSON reports, which
    /// list the worst positions instead).
    #[serde(skip)]
    pub positions: Vec<PositionMetrics>,
}

impl Metrics {
    /// The `n` positions with the largest KL, largest first.
    pub fn worst_positions(&self, n: usize) -> Vec<PositionMetrics> {
        let mut p = self.positions.clone();
        p.sort_by(|a, b| b.kl.total_cmp(&a.kl).then(a.pos.cmp(&b.pos)));
        p.truncate(n);
        p
    }
}

/// The index of the largest value; the lowest index among ties, as
/// llama.cpp's greedy sampler and numpy's argmax choose. NaN is never chosen
/// over a number.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// log-softmax of a row in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = max
        + row
            .iter()
            .map(|&x| (f64::from(x) - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&x| f64::from(x) - lse).collect()
}

/// Compares seldon's `ours` (`[n_positions][n_vocab]`) with the reference.
///
/// `tokens` is the sequence the logits belong to; position `i` predicts
/// `tokens[i + 1]`, which gives the next-token Δp.
pub fn compare(
    reference: RefLogits<'_>,
    ours: &[f32],
    n_vocab: usize,
    tokens: &[u32],
) -> Result<Metrics> {
    if n_vocab == 0 || !ours.len().is_multiple_of(n_vocab) {
        return Err(ConformanceError::Invalid(format!(
            "{} logits are not rows of {n_vocab}",
            ours.len()
        )));
    }
    let n = ours.len() / n_vocab;
    if tokens.len() != n {
        return Err(ConformanceError::Invalid(format!(
            "{n} positions of logits for {} tokens",
            tokens.len()
        )));
    }
    let mut positions = Vec::with_capacity(n);
    let (mut prob, mut logit, mut next) =
        (DiffAcc::default(), DiffAcc::default(), DiffAcc::default());
    for (pos, our_row) in ours.chunks_exact(n_vocab).enumerate() {
        let lq = log_softmax(our_row);
        let our_top1 = argmax(our_row);
        let next_tok = tokens.get(pos + 1).map(|&t| t as usize);
        let m = match reference {
            RefLogits::Full(r) => {
                let ref_row = r
                    .get(pos * n_vocab..(pos + 1) * n_vocab)
                    .ok_or_else(|| shape_error("reference logits", r.len(), n * n_vocab))?;
                full_position(
                    pos,
                    ref_row,
                    our_row,
                    &lq,
                    our_top1,
                    next_tok,
                    [&mut prob, &mut logit, &mut next],
                )?
            }
            RefLogits::TopK {
                ids,
                logprobs,
                lse,
                k,
            } => {
                let rng = pos * k..(pos + 1) * k;
                let (Some(ids), Some(lps), Some(&lse)) =
                    (ids.get(rng.clone()), logprobs.get(rng), lse.get(pos))
                else {
                    return Err(shape_error("reference top-k", ids.len(), n * k));
                };
                topk_position(
                    pos,
                    ids,
                    lps,
                    f64::from(lse),
                    our_row,
                    &lq,
                    our_top1,
                    next_tok,
                    [&mut prob, &mut logit, &mut next],
                )?
            }
        };
        positions.push(m);
    }
    let kls: Vec<f64> = positions.iter().map(|p| p.kl).collect();
    let same = positions
        .iter()
        .filter(|p| p.ref_top1 == p.our_top1)
        .count();
    Ok(Metrics {
        n_positions: n,
        kl: Summary::of(&kls),
        top1_agreement: if n == 0 { 1.0 } else { same as f64 / n as f64 },
        prob_diff: prob.stats(),
        logit_diff: logit.stats(),
        next_token_prob_diff: next.stats(),
        positions,
    })
}

fn shape_error(what: &str, have: usize, want: usize) -> ConformanceError {
    ConformanceError::Invalid(format!("{what}: {have} values, {want} needed"))
}

fn bad_id(id: usize, n_vocab: usize) -> ConformanceError {
    ConformanceError::Invalid(format!(
        "reference token id {id} is outside the vocabulary ({n_vocab})"
    ))
}

fn full_position(
    pos: usize,
    ref_row: &[f32],
    our_row: &[f32],
    lq: &[f64],
    our_top1: usize,
    next_tok: Option<usize>,
    [prob, logit, next]: [&mut DiffAcc; 3],
) -> Result<PositionMetrics> {
    let lp = log_softmax(ref_row);
    let mut kl = 0.0;
    let (mut max_logit, mut max_prob) = (0.0f64, 0.0f64);
    for i in 0..ref_row.len() {
        let p = lp[i].exp();
        kl += p * (lp[i] - lq[i]);
        let dl = f64::from(our_row[i]) - f64::from(ref_row[i]);
        let dp = lq[i].exp() - p;
        logit.add(dl);
        prob.add(dp);
        max_logit = nan_max(max_logit, dl.abs());
        max_prob = nan_max(max_prob, dp.abs());
    }
    if let Some(t) = next_tok {
        let (Some(a), Some(b)) = (lq.get(t), lp.get(t)) else {
            return Err(bad_id(t, ref_row.len()));
        };
        next.add(a.exp() - b.exp());
    }
    Ok(PositionMetrics {
        pos,
        // An exact match can round to -1e-17; a NaN stays NaN and fails.
        kl: if kl.is_nan() { kl } else { kl.max(0.0) },
        ref_top1: argmax(ref_row) as u32,
        our_top1: our_top1 as u32,
        max_abs_logit_diff: max_logit,
        max_abs_prob_diff: max_prob,
    })
}

/// KL over the reference's top-k entries plus one bucket for the rest of the
/// vocabulary. Merging outcomes can only lower a KL divergence, so this is a
/// lower bound of the full one; with k = 20 the tail holds little mass.
#[allow(clippy::too_many_arguments)]
fn topk_position(
    pos: usize,
    ids: &[u32],
    lps: &[f32],
    lse: f64,
    our_row: &[f32],
    lq: &[f64],
    our_top1: usize,
    next_tok: Option<usize>,
    [prob, logit, next]: [&mut DiffAcc; 3],
) -> Result<PositionMetrics> {
    let n_vocab = our_row.len();
    let (mut kl, mut p_head, mut q_head) = (0.0, 0.0, 0.0);
    let (mut max_logit, mut max_prob) = (0.0f64, 0.0f64);
    for (&id, &lp) in ids.iter().zip(lps) {
        let id = id as usize;
        let (Some(&lq_i), Some(&our_logit)) = (lq.get(id), our_row.get(id)) else {
            return Err(bad_id(id, n_vocab));
        };
        let lp = f64::from(lp);
        let (p, q) = (lp.exp(), lq_i.exp());
        kl += p * (lp - lq_i);
        p_head += p;
        q_head += q;
        let dl = f64::from(our_logit) - (lp + lse);
        logit.add(dl);
        prob.add(q - p);
        max_logit = nan_max(max_logit, dl.abs());
        max_prob = nan_max(max_prob, (q - p).abs());
    }
    let p_tail = (1.0 - p_head).max(0.0);
    if p_tail > 0.0 {
        // The tail bucket of seldon's distribution can underflow to 0 when
        // both agree on a peaked row; the smallest positive f64 keeps the
        // term finite and large, as a missing tail should be.
        let q_tail = (1.0 - q_head).max(f64::MIN_POSITIVE);
        kl += p_tail * (p_tail.ln() - q_tail.ln());
    }
    if let Some(t) = next_tok {
        // The next token's reference probability is known only in the top-k.
        if let Some(j) = ids.iter().position(|&id| id as usize == t) {
            let q = lq.get(t).ok_or_else(|| bad_id(t, n_vocab))?.exp();
            next.add(q - f64::from(lps[j]).exp());
        }
    }
    Ok(PositionMetrics {
        pos,
        kl: if kl.is_nan() { kl } else { kl.max(0.0) },
        ref_top1: ids.first().copied().unwrap_or(0),
        our_top1: our_top1 as u32,
        max_abs_logit_diff: max_logit,
        max_abs_prob_diff: max_prob,
    })
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The first step at which two greedy continuations differ (`None` when the
/// shorter is a prefix of the longer).
pub fn first_divergence(reference: &[u32], ours: &[u32]) -> Option<usize> {
    reference.iter().zip(ours).position(|(a, b)| a != b)
}

/// How many leading greedy steps are meaningful to compare: steps are taken
/// while llama.cpp's top-1 lead exceeds `min_margin`; at a closer call the
/// winner may legitimately flip and everything after it diverges.
pub fn greedy_steps_to_compare(margins: &[f64], min_margin: f64) -> usize {
    margins.iter().take_while(|&&m| m > min_margin).count()
}

/// An exact tokenization check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenMatch {
    /// Whether the two sequences are identical.
    pub exact: bool,
    /// The first index where they differ (or where one ends), if not.
    pub first_mismatch: Option<usize>,
}

/// Compares seldon's tokenization with llama.cpp's.
pub fn tokens_match(expected: &[u32], got: &[u32]) -> TokenMatch {
    let first = first_divergence(expected, got)
        .or_else(|| (expected.len() != got.len()).then(|| expected.len().min(got.len())));
    TokenMatch {
        exact: first.is_none(),
        first_mismatch: first,
    }
}

#[cfg(test)]
mod tests;
