//! The statistics `llama-perplexity --kl-divergence` prints, accumulated as
//! it accumulates them (the same f32/f64 mix, so the numbers agree with
//! llama.cpp's to the printed digits).

use serde::Serialize;

use super::file::QuantRow;

/// The distribution being compared with the base, at one position.
#[derive(Debug, Clone, Copy)]
pub enum Ours<'a> {
    /// Raw logits (a model run).
    Logits(&'a [f32]),
    /// Stored log-probabilities (a second base file), used as they are.
    LogProbs(QuantRow<'a>),
}

/// llama.cpp's `kl_divergence_result` plus the per-position values it sorts.
#[derive(Debug, Clone, Default)]
pub struct KldAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f32,
    n_same_top: usize,
    count: usize,
    kld_values: Vec<f32>,
    p_diff_values: Vec<f32>,
}

impl KldAccumulator {
    /// Adds one position: `base` is the stored distribution, `ours` the
    /// compared one, `tok` the token that follows the position.
    pub fn add(&mut self, base: QuantRow<'_>, ours: Ours<'_>, tok: usize) {
        let n_vocab = base.q.len();
        let (value, imax, shift) = match ours {
            Ours::Logits(l) => {
                let mut max = l[0];
                let mut imax = 0;
                for (i, &v) in l.iter().enumerate().skip(1) {
                    if v > max {
                        max = v;
                        imax = i;
                    }
                }
                let sum_exp: f64 = l.iter().map(|&v| f64::from((v - max).exp())).sum();
                let log_sum_exp = sum_exp.ln() as f32;
                (Value::Logits(l), imax, max + log_sum_exp)
            }
            Ours::LogProbs(r) => {
                let mut imax = 0;
                let mut max = r.log_prob(0);
                for i in 1..n_vocab {
                    if r.log_prob(i) > max {
                        max = r.log_prob(i);
                        imax = i;
                    }
                }
                (Value::Quant(r), imax, 0.0)
            }
        };
        // nll = -log q(tok) = shift - value(tok); f32 products widened as in C.
        let nll = shift - value.get(tok);
        self.sum_nll += f64::from(nll);
        self.sum_nll2 += f64::from(nll * nll);
        let nll_base = -base.log_prob(tok);
        self.sum_nll_base += f64::from(nll_base);
        self.sum_nll_base2 += f64::from(nll_base * nll_base);
        self.sum_nll_nll_base += f64::from(nll * nll_base);

        let mut sum = 0.0f64;
        let mut imax_base = 0;
        let mut p_log_base_max = 0.0f32;
        for i in 0..n_vocab {
            let p_log_base = base.log_prob(i);
            if i == 0 || p_log_base > p_log_base_max {
                p_log_base_max = p_log_base;
                imax_base = i;
            }
            // Like llama.cpp, tokens below e^-16 of the base are left out.
            if p_log_base > -16.0 {
                let p_base = p_log_base.exp();
                sum += f64::from(p_base * (p_log_base - value.get(i) + shift));
            }
        }
        self.sum_kld += sum;
        self.sum_kld2 += sum * sum;
        self.count += 1;
        if imax == imax_base {
            self.n_same_top += 1;
        }
        let p_base = (-nll_base).exp();
        let p = (-nll).exp();
        let p_diff = p - p_base;
        self.sum_p_diff += f64::from(p_diff);
        let p_diff2 = f64::from(p_diff * p_diff);
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        self.kld_values.push(sum as f32);
        self.p_diff_values.push(p_diff);
    }

    /// Positions added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The running values llama-perplexity prints after each chunk.
    pub fn running(&self) -> Running {
        let log_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, self.count);
        let log_ppl_base = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, self.count);
        let cov = covariance(
            self.sum_nll,
            self.sum_nll_base,
            self.sum_nll_nll_base,
            self.count,
        );
        let ppl = log_ppl.0.exp();
        let p_diff_mse = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, self.count);
        let rms = p_diff_mse.0.sqrt();
        let same = self.same_top();
        Running {
            ppl: Pm::new(ppl, ppl * log_ppl.1),
            ln_ppl_ratio: Pm::new(
                log_ppl.0 - log_ppl_base.0,
                (log_ppl.1 * log_ppl.1 + log_ppl_base.1 * log_ppl_base.1 - 2.0 * cov).sqrt(),
            ),
            kld: Pm::from(mean_and_uncertainty(
                self.sum_kld,
                self.sum_kld2,
                self.count,
            )),
            rms_p_diff: Pm::new(rms, 0.5 / rms * p_diff_mse.1),
            same_top_p: same,
        }
    }

    fn same_top(&self) -> Pm {
        let p = self.n_same_top as f64 / self.count as f64;
        Pm::new(p, (p * (1.0 - p) / (self.count as f64 - 1.0)).sqrt())
    }

    /// The final statistics (`None` for no positions).
    pub fn summary(&self) -> Option<KldSummary> {
        if self.count == 0 {
            return None;
        }
        let mut kld = self.kld_values.clone();
        let mut dp = self.p_diff_values.clone();
        kld.sort_by(f32::total_cmp);
        dp.sort_by(f32::total_cmp);
        let log_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, self.count);
        let log_ppl_base = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, self.count);
        let cov = covariance(
            self.sum_nll,
            self.sum_nll_base,
            self.sum_nll_nll_base,
            self.count,
        );
        let ppl = log_ppl.0.exp();
        let ppl_base = log_ppl_base.0.exp();
        let (ppl_unc, ppl_base_unc) = (ppl * log_ppl.1, ppl_base * log_ppl_base.1);
        let ln_ratio = log_ppl.0 - log_ppl_base.0;
        let ln_ratio_unc =
            (log_ppl.1 * log_ppl.1 + log_ppl_base.1 * log_ppl_base.1 - 2.0 * cov).sqrt();
        let ratio = ln_ratio.exp();
        let ppl_cov = ppl * ppl_base * cov;
        let p_diff_mse = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, self.count);
        let rms = p_diff_mse.0.sqrt();
        let pct = |v: &[f32], f: &[(&'static str, f32)]| -> Vec<(&'static str, f64)> {
            f.iter()
                .map(|&(name, x)| (name, f64::from(percentile(v, x))))
                .collect()
        };
        Some(KldSummary {
            count: self.count,
            ppl: Pm::new(ppl, ppl_unc),
            ppl_base: Pm::new(ppl_base, ppl_base_unc),
            cor_ln_ppl: cov / (log_ppl.1 * log_ppl_base.1),
            ln_ppl_ratio: Pm::new(ln_ratio, ln_ratio_unc),
            ppl_ratio: Pm::new(ratio, ratio * ln_ratio_unc),
            ppl_diff: Pm::new(
                ppl - ppl_base,
                (ppl_unc * ppl_unc + ppl_base_unc * ppl_base_unc - 2.0 * ppl_cov).sqrt(),
            ),
            kld: Pm::from(mean_and_uncertainty(
                self.sum_kld,
                self.sum_kld2,
                self.count,
            )),
            kld_percentiles: pct(&kld, &KLD_PERCENTILES),
            p_diff: Pm::from(mean_and_uncertainty(
                self.sum_p_diff,
                self.sum_p_diff2,
                self.count,
            )),
            p_diff_percentiles: pct(&dp, &P_DIFF_PERCENTILES),
            max_abs_p_diff: f64::from(self.max_p_diff),
            rms_p_diff: Pm::new(rms, 0.5 / rms * p_diff_mse.1),
            same_top_p: self.same_top(),
        })
    }
}

/// What a position's "ours" values are read from.
#[derive(Clone, Copy)]
enum Value<'a> {
    Logits(&'a [f32]),
    Quant(QuantRow<'a>),
}

impl Value<'_> {
    fn get(&self, i: usize) -> f32 {
        match self {
            Self::Logits(l) => l[i],
            Self::Quant(r) => r.log_prob(i),
        }
    }
}

/// The KLD percentiles llama-perplexity prints, top down ("Median" is the
/// middle value, or the mean of the middle two).
pub const KLD_PERCENTILES: [(&str, f32); 11] = [
    ("Maximum", 1.0),
    ("99.9%", 0.999),
    ("99.0%", 0.990),
    ("95.0%", 0.950),
    ("90.0%", 0.900),
    ("Median", -1.0),
    ("10.0%", 0.100),
    (" 5.0%", 0.050),
    (" 1.0%", 0.010),
    (" 0.1%", 0.001),
    ("Minimum", 0.0),
];

/// The Δp percentiles llama-perplexity prints.
pub const P_DIFF_PERCENTILES: [(&str, f32); 13] = [
    ("Maximum", 1.0),
    ("99.9%", 0.999),
    ("99.0%", 0.990),
    ("95.0%", 0.950),
    ("90.0%", 0.900),
    ("75.0%", 0.750),
    ("Median", -1.0),
    ("25.0%", 0.250),
    ("10.0%", 0.100),
    (" 5.0%", 0.050),
    (" 1.0%", 0.010),
    (" 0.1%", 0.001),
    ("Minimum", 0.0),
];

/// llama-perplexity's `percentile` on sorted values, in its f32 arithmetic;
/// a negative fraction asks for its median.
fn percentile(v: &[f32], fraction: f32) -> f32 {
    let (Some(&first), Some(&last)) = (v.first(), v.last()) else {
        return 0.0;
    };
    let n = v.len();
    if fraction < 0.0 {
        return if n.is_multiple_of(2) {
            0.5 * (v[n / 2] + v[n / 2 - 1])
        } else {
            v[n / 2]
        };
    }
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let p = fraction * (n - 1) as f32;
    let i = p as usize;
    let t = p - i as f32;
    (1.0 - t) * v[i] + t * v[(i + 1).min(n - 1)]
}

fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let f = sum / n;
    let df = sum2 / n - f * f;
    let df = if df > 0.0 && count > 10 {
        (df / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (f, df)
}

fn covariance(a: f64, b: f64, ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (ab / n - (a / n) * (b / n)) / (n - 1.0)
}

/// A value and its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pm {
    /// The value.
    pub value: f64,
    /// One standard error.
    pub uncertainty: f64,
}

impl Pm {
    fn new(value: f64, uncertainty: f64) -> Self {
        Self { value, uncertainty }
    }
}

impl From<(f64, f64)> for Pm {
    fn from((value, uncertainty): (f64, f64)) -> Self {
        Self::new(value, uncertainty)
    }
}

/// The values of one per-chunk line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Running {
    /// PPL(Q).
    pub ppl: Pm,
    /// ln(PPL(Q)/PPL(base)).
    pub ln_ppl_ratio: Pm,
    /// Mean KL divergence.
    pub kld: Pm,
    /// RMS of Δp (fraction, not percent).
    pub rms_p_diff: Pm,
    /// Same top p (fraction).
    pub same_top_p: Pm,
}

/// Everything the final report holds; probabilities are fractions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KldSummary {
    /// Positions scored.
    pub count: usize,
    /// Mean PPL(Q).
    pub ppl: Pm,
    /// Mean PPL(base).
    pub ppl_base: Pm,
    /// Cor(ln(PPL(Q)), ln(PPL(base))), a fraction.
    pub cor_ln_ppl: f64,
    /// Mean ln(PPL(Q)/PPL(base)).
    pub ln_ppl_ratio: Pm,
    /// Mean PPL(Q)/PPL(base).
    pub ppl_ratio: Pm,
    /// Mean PPL(Q)-PPL(base).
    pub ppl_diff: Pm,
    /// Mean KLD.
    pub kld: Pm,
    /// [`KLD_PERCENTILES`] with their values.
    pub kld_percentiles: Vec<(&'static str, f64)>,
    /// Mean Δp.
    pub p_diff: Pm,
    /// [`P_DIFF_PERCENTILES`] with their values.
    pub p_diff_percentiles: Vec<(&'static str, f64)>,
    /// max |Δp|.
    pub max_abs_p_diff: f64,
    /// RMS Δp.
    pub rms_p_diff: Pm,
    /// Same top p.
    pub same_top_p: Pm,
}

impl KldSummary {
    /// The text llama-perplexity prints after its per-chunk lines.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line("====== Perplexity statistics ======".into());
        line(format!(
            "Mean PPL(Q)                   : {:10.6} ± {:10.6}",
            self.ppl.value, self.ppl.uncertainty
        ));
        line(format!(
            "Mean PPL(base)                : {:10.6} ± {:10.6}",
            self.ppl_base.value, self.ppl_base.uncertainty
        ));
        line(format!(
            "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
            100.0 * self.cor_ln_ppl
        ));
        line(format!(
            "Mean ln(PPL(Q)/PPL(base))     : {:10.6} ± {:10.6}",
            self.ln_ppl_ratio.value, self.ln_ppl_ratio.uncertainty
        ));
        line(format!(
            "Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}",
            self.ppl_ratio.value, self.ppl_ratio.uncertainty
        ));
        line(format!(
            "Mean PPL(Q)-PPL(base)         : {:10.6} ± {:10.6}",
            self.ppl_diff.value, self.ppl_diff.uncertainty
        ));
        line(String::new());
        line("====== KL divergence statistics ======".into());
        line(format!(
            "Mean    KLD: {:10.6} ± {:10.6}",
            self.kld.value, self.kld.uncertainty
        ));
        for (name, v) in &self.kld_percentiles {
            line(format!("{name:<8}KLD: {v:10.6}"));
        }
        line(String::new());
        line("====== Token probability statistics ======".into());
        line(format!(
            "Mean    Δp: {:6.3} ± {:5.3} %",
            100.0 * self.p_diff.value,
            100.0 * self.p_diff.uncertainty
        ));
        for (name, v) in &self.p_diff_percentiles {
            line(format!("{name:<8}Δp: {:6.3}%", 100.0 * v));
        }
        line(format!(
            "RMS Δp    : {:6.3} ± {:5.3} %",
            100.0 * self.rms_p_diff.value,
            100.0 * self.rms_p_diff.uncertainty
        ));
        line(format!(
            "Same top p: {:6.3} ± {:5.3} %",
            100.0 * self.same_top_p.value,
            100.0 * self.same_top_p.uncertainty
        ));
        s
    }
}
