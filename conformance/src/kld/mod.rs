//! llama-perplexity's KL-divergence mode: read the base file that
//! `llama-perplexity --kl-divergence-base FILE` writes and report what
//! `llama-perplexity --kl-divergence` would, for seldon running a model on the
//! file's tokens or for a second such file.

pub mod file;
pub mod stats;

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{ConformanceError, Result};
use crate::run::Engine;
use crate::thresholds::{CaseClass, Verdict, row};
use file::{KldReader, first_scored, scored_per_chunk};
use stats::{KldAccumulator, KldSummary, Ours, Running};

/// The outcome of a `kld` comparison.
#[derive(Debug, Clone, Serialize)]
pub struct KldReport {
    /// The base file.
    pub base: String,
    /// What was compared with it (a model on a backend, or a second file).
    pub other: String,
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Chunks.
    pub n_chunk: usize,
    /// The running values after each chunk.
    pub chunks: Vec<Running>,
    /// The final statistics (`None` when no position was scored).
    pub summary: Option<KldSummary>,
    /// The thresholds applied: the mean KL and top-1 limits of the
    /// quantized-real row (a long text's worst position has no limit).
    pub verdicts: Vec<Verdict>,
    /// Whether every verdict passed.
    pub pass: bool,
}

fn finish(
    base: &Path,
    other: String,
    h: &file::KldHeader,
    chunks: Vec<Running>,
    acc: &KldAccumulator,
) -> KldReport {
    let summary = acc.summary();
    let limits = row(CaseClass::QuantizedReal).limits;
    let mut verdicts = Vec::new();
    if let Some(s) = &summary {
        if let Some(l) = limits.mean_kl {
            verdicts.push(Verdict::at_most("mean_kl", s.kld.value, l));
        }
        if let Some(l) = limits.min_top1 {
            verdicts.push(Verdict::at_least("same_top_p", s.same_top_p.value, l));
        }
    }
    let pass = summary.is_some() && verdicts.iter().all(|v| v.pass);
    KldReport {
        base: base.display().to_string(),
        other,
        n_ctx: h.n_ctx,
        n_vocab: h.n_vocab,
        n_chunk: h.n_chunk,
        chunks,
        summary,
        verdicts,
        pass,
    }
}

/// Compares two base files made from the same tokens: the second file's
/// stored log-probabilities stand in for a model's. A file compared with
/// itself gives KLD 0 and same top p 100%.
pub fn compare_files(base: &Path, other: &Path) -> Result<KldReport> {
    let mut a = KldReader::open(base)?;
    let mut b = KldReader::open(other)?;
    let (ha, hb) = (a.header().clone(), b.header());
    if (ha.n_ctx, ha.n_vocab, ha.n_chunk) != (hb.n_ctx, hb.n_vocab, hb.n_chunk)
        || ha.tokens != hb.tokens
    {
        return Err(ConformanceError::KldFile(format!(
            "{} and {} were not made from the same tokens (n_ctx {} / {}, n_vocab {} / {}, n_chunk {} / {})",
            base.display(),
            other.display(),
            ha.n_ctx,
            hb.n_ctx,
            ha.n_vocab,
            hb.n_vocab,
            ha.n_chunk,
            hb.n_chunk
        )));
    }
    let mut acc = KldAccumulator::default();
    let mut chunks = Vec::new();
    let first = first_scored(ha.n_ctx);
    for c in 0..ha.n_chunk {
        let (Some(ca), Some(cb)) = (a.next_chunk()?, b.next_chunk()?) else {
            return Err(ConformanceError::KldFile(format!("chunk {c} missing")));
        };
        let tokens = ha.chunk_tokens(c);
        for j in 0..ca.len() {
            acc.add(
                ca.row(j),
                Ours::LogProbs(cb.row(j)),
                tokens[first + j + 1] as usize,
            );
        }
        chunks.push(acc.running());
    }
    // KL, Δp and top-1 match llama-perplexity's for the model that made the
    // file; PPL(Q) does not, because a file stores clamped log-probabilities.
    let other = format!(
        "{} (a base file: log-probabilities more than 16 nats below the top token are stored \
         clamped, which lowers PPL(Q))",
        other.display()
    );
    Ok(finish(base, other, &ha, chunks, &acc))
}

/// Runs the model at `model` on `engine` over the base file's chunks, as
/// llama-perplexity does (the KV cache cleared per chunk, BOS in place of each
/// chunk's first token when the model adds one), and compares its logits at
/// the scored positions with the stored ones.
pub fn compare_model(base: &Path, engine: &Engine, model: &Path) -> Result<KldReport> {
    let mut reader = KldReader::open(base)?;
    let h = reader.header().clone();
    let mut runner = engine.load(model, h.n_ctx)?;
    if runner.n_vocab() != h.n_vocab {
        return Err(ConformanceError::KldFile(format!(
            "inconsistent vocabulary: {} has {} tokens, the base file {}",
            model.display(),
            runner.n_vocab(),
            h.n_vocab
        )));
    }
    let tokenizer = runner.tokenizer()?;
    let bos = if tokenizer.add_bos() {
        tokenizer.bos()
    } else {
        None
    };
    let first = first_scored(h.n_ctx);
    let n_vocab = h.n_vocab;
    let mut acc = KldAccumulator::default();
    let mut chunks = Vec::new();
    for c in 0..h.n_chunk {
        let Some(chunk) = reader.next_chunk()? else {
            return Err(ConformanceError::KldFile(format!("chunk {c} missing")));
        };
        let original = h.chunk_tokens(c);
        let mut tokens = original.to_vec();
        if let (Some(bos), Some(t)) = (bos, tokens.first_mut()) {
            *t = bos;
        }
        let logits = runner.logits_all(&tokens)?;
        for j in 0..scored_per_chunk(h.n_ctx) {
            let p = first + j;
            let ours = &logits[p * n_vocab..(p + 1) * n_vocab];
            acc.add(chunk.row(j), Ours::Logits(ours), original[p + 1] as usize);
        }
        chunks.push(acc.running());
    }
    let other = format!("{} on {}", model.display(), runner.backend_name());
    Ok(finish(base, other, &h, chunks, &acc))
}

impl KldReport {
    /// The text llama-perplexity prints: a line per chunk, then the statistics.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "base  : {}", self.base);
        let _ = writeln!(s, "other : {}", self.other);
        let _ = writeln!(
            s,
            "kl_divergence: computing over {} chunks, n_ctx={}, n_vocab={}\n",
            self.n_chunk, self.n_ctx, self.n_vocab
        );
        let _ = writeln!(
            s,
            "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p"
        );
        for (i, r) in self.chunks.iter().enumerate() {
            let _ = writeln!(
                s,
                "{:4}    {:9.4} ± {:9.4}    {:10.5} ± {:10.5}    {:10.5} ± {:10.5}    {:6.3} ± {:6.3} %    {:6.3} ± {:6.3} %",
                i + 1,
                r.ppl.value,
                r.ppl.uncertainty,
                r.ln_ppl_ratio.value,
                r.ln_ppl_ratio.uncertainty,
                r.kld.value,
                r.kld.uncertainty,
                100.0 * r.rms_p_diff.value,
                100.0 * r.rms_p_diff.uncertainty,
                100.0 * r.same_top_p.value,
                100.0 * r.same_top_p.uncertainty
            );
        }
        s.push('\n');
        match &self.summary {
            Some(sum) => {
                if sum.count < 100 {
                    let _ = writeln!(
                        s,
                        "(only {} positions: llama-perplexity prints no statistics below 100)",
                        sum.count
                    );
                }
                s.push_str(&sum.to_text());
            }
            None => s.push_str("no positions scored\n"),
        }
        s.push('\n');
        for v in &self.verdicts {
            let _ = writeln!(
                s,
                "{} {} = {:.6} {} {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.metric,
                v.value,
                v.op,
                v.limit
            );
        }
        let _ = writeln!(s, "{}", if self.pass { "PASS" } else { "FAIL" });
        s
    }
}

#[cfg(test)]
mod tests;
