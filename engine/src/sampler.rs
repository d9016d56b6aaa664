//! Token sampling as llama.cpp's default chain (common/sampling.cpp): repeat
//! penalty over the last N tokens, top-k, top-p, min-p, temperature, then a
//! draw from the remaining distribution with a seeded generator. The other
//! samplers of that chain (DRY, typical, XTC, top-n-sigma) are off by default
//! in llama.cpp and are not implemented. A temperature <= 0 is greedy.

use std::collections::{HashMap, VecDeque};

/// The sampler's settings, with llama.cpp's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    /// Temperature; `<= 0` takes the most likely token (greedy).
    pub temp: f32,
    /// Keep the `top_k` most likely tokens; `<= 0` keeps all.
    pub top_k: i32,
    /// Keep the smallest set whose probability reaches `top_p`; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely; 0 disables.
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens; 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at; 0 disables.
    pub repeat_last_n: usize,
    /// The generator's seed: the same seed and logits give the same tokens.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        Self {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// SplitMix64: tiny, fast, and good enough for drawing tokens; the point is
/// reproducibility across runs and platforms, which `std` does not promise.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    logit: f32,
    p: f32,
}

/// Higher logit first; among equal logits the lower id, so results never
/// depend on sort stability. NaN sorts last.
fn by_logit_desc(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let key = |c: &Candidate| {
        if c.logit.is_nan() {
            f32::NEG_INFINITY
        } else {
            c.logit
        }
    };
    key(b).total_cmp(&key(a)).then(a.id.cmp(&b.id))
}

/// A sampler with its penalty history and random state.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: SplitMix64,
    recent: VecDeque<u32>,
}

impl Sampler {
    /// A sampler seeded with `params.seed`.
    pub fn new(params: SamplerParams) -> Self {
        Self {
            params,
            rng: SplitMix64(params.seed),
            recent: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token (prompt or generated) for the repeat penalty.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() >= self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Picks the next token from one row of logits (`n_vocab` values). Returns
    /// `None` only for an empty row.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let mut cands: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            })
            .collect();
        if cands.is_empty() {
            return None;
        }
        self.apply_penalty(&mut cands);
        if self.params.temp <= 0.0 {
            return cands
                .iter()
                .min_by(|a, b| by_logit_desc(a, b))
                .map(|c| c.id);
        }
        let mut sorted = false;
        top_k(&mut cands, self.params.top_k, &mut sorted);
        top_p(&mut cands, self.params.top_p, &mut sorted);
        min_p(&mut cands, self.params.min_p);
        for c in &mut cands {
            c.logit /= self.params.temp;
        }
        Some(self.draw(&mut cands))
    }

    fn apply_penalty(&self, cands: &mut [Candidate]) {
        let penalty = self.params.repeat_penalty;
        if penalty == 1.0 || self.recent.is_empty() {
            return;
        }
        let mut seen: HashMap<u32, usize> = HashMap::new();
        for &t in &self.recent {
            *seen.entry(t).or_default() += 1;
        }
        for &t in seen.keys() {
            if let Some(c) = cands.get_mut(t as usize) {
                // llama.cpp: multiplying a negative logit by the penalty, rather
                // than dividing it, makes the token less likely, as intended.
                if c.logit <= 0.0 {
                    c.logit *= penalty;
                } else {
                    c.logit /= penalty;
                }
            }
        }
    }

    /// llama.cpp's `dist` sampler: softmax, one uniform draw, the first token
    /// whose running probability sum reaches it.
    fn draw(&mut self, cands: &mut [Candidate]) -> u32 {
        let max = cands
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f64;
        for c in cands.iter_mut() {
            c.p = (c.logit - max).exp();
            total += f64::from(c.p);
        }
        let target = total * self.rng.next_f64();
        let mut run = 0f64;
        for c in cands.iter() {
            run += f64::from(c.p);
            if run >= target {
                return c.id;
            }
        }
        cands.last().map_or(0, |c| c.id)
    }
}

fn sort_prefix(cands: &mut [Candidate], k: usize) {
    if k < cands.len() {
        cands.select_nth_unstable_by(k, by_logit_desc);
    }
    let k = k.min(cands.len());
    cands[..k].sort_unstable_by(by_logit_desc);
}

fn top_k(cands: &mut Vec<Candidate>, k: i32, sorted: &mut bool) {
    let Ok(k) = usize::try_from(k) else { return };
    if k == 0 {
        return;
    }
    let k = k.min(cands.len());
    sort_prefix(cands, k);
    cands.truncate(k);
    *sorted = true;
}

fn softmax(cands: &mut [Candidate]) {
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for c in cands.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += c.p;
    }
    for c in cands.iter_mut() {
        c.p /= sum;
    }
}

fn top_p(cands: &mut Vec<Candidate>, p: f32, sorted: &mut bool) {
    if p >= 1.0 {
        return;
    }
    softmax(cands);
    if !*sorted {
        let n = cands.len();
        sort_prefix(cands, n);
        *sorted = true;
    }
    let mut cum = 0f32;
    let mut keep = cands.len();
    for (i, c) in cands.iter().enumerate() {
        cum += c.p;
        if cum >= p {
            keep = i + 1;
            break;
        }
    }
    cands.truncate(keep);
}

fn min_p(cands: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let min_logit = max + p.ln();
    // The most likely token always passes, so the set never empties.
    cands.retain(|c| c.logit >= min_logit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temp: f32) -> SamplerParams {
        SamplerParams {
            temp,
            ..SamplerParams::default()
        }
    }

    #[test]
    fn greedy_takes_the_lowest_id_among_ties() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&[0.0, 3.0, 1.0, 3.0]), Some(1));
        assert_eq!(s.sample(&[]), None);
    }

    #[test]
    fn same_seed_same_tokens_and_seeds_differ() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerParams {
                seed,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                temp: 1.0,
                ..SamplerParams::default()
            });
            (0..40)
                .filter_map(|_| s.sample(&logits))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy_at_any_temperature() {
        let mut s = Sampler::new(SamplerParams {
            top_k: 1,
            temp: 5.0,
            ..SamplerParams::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.1, 0.2, 0.15]), Some(1));
        }
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        // p = [0.5, 0.25, 0.125, ...]: min-p 0.3 keeps the tokens within 0.3x of
        // the best (ids 0 and 1); top-p 0.5 keeps id 0 alone.
        let logits: Vec<f32> = (0..8)
            .map(|i| -(i as f32) * std::f32::consts::LN_2)
            .collect();
        let mut c: Vec<Candidate> = logits
            .iter()
            .enumerate()
            .map(|(i, &logit)| Candidate {
                id: i as u32,
                logit,
                p: 0.0,
            })
            .collect();
        let mut d = c.clone();
        min_p(&mut c, 0.3);
        assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), [0, 1]);
        let mut sorted = false;
        top_p(&mut d, 0.5, &mut sorted);
        assert_eq!(d.iter().map(|c| c.id).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn repeat_penalty_lowers_recent_tokens_both_signs() {
        let mut s = Sampler::new(SamplerParams {
            repeat_penalty: 2.0,
            repeat_last_n: 2,
            ..params(0.0)
        });
        // Token 0 (logit 3) is penalised to 1.5 < 2; token 2 (logit -1) to -2.
        s.accept(0);
        assert_eq!(s.sample(&[3.0, 2.0, -1.0]), Some(1));
        // Only the last two tokens count: 0 drops out of the window.
        s.accept(1);
        s.accept(2);
        assert_eq!(s.sample(&[3.0, 2.9, -1.0]), Some(0));
    }

    #[test]
    fn temperature_sampling_follows_the_distribution() {
        // Two tokens with p = 0.75 / 0.25 at temp 1: the frequencies agree.
        let logits = [3f32.ln(), 0.0];
        let mut s = Sampler::new(SamplerParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            temp: 1.0,
            seed: 42,
            ..SamplerParams::default()
        });
        let n = 4000;
        let zeros = (0..n).filter(|_| s.sample(&logits) == Some(0)).count();
        let freq = zeros as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.03, "{freq}");
    }
}
