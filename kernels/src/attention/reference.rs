//! The CPU oracle of attention: f64 scores, a plain (two-pass) softmax over
//! each row of visible keys, f64 sums.

use rayon::prelude::*;

use super::AttentionShape;

/// Causal grouped-query attention in f64. `q` is `[n_tokens][n_head][head_dim]`;
/// `k_cache` and `v_cache` are `[>= pos0 + n_tokens][n_head_kv][head_dim]`
/// values as the kernel reads them (round them with
/// [`crate::kv_cache::KvType::round`] for an f16 cache). Returns
/// `[n_tokens][n_head][head_dim]`; an inconsistent shape returns an empty vector.
pub fn attention_reference(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    shape: &AttentionShape,
    scale: f32,
) -> Vec<f32> {
    let n_tokens = shape.n_tokens as usize;
    let n_head = shape.n_head as usize;
    let n_head_kv = shape.n_head_kv as usize;
    let d = shape.head_dim as usize;
    let pos0 = shape.pos0 as usize;
    let n_kv = pos0 + n_tokens;
    let kv_len = n_kv * n_head_kv * d;
    if n_head_kv == 0
        || !n_head.is_multiple_of(n_head_kv)
        || q.len() < n_tokens * n_head * d
        || k_cache.len() < kv_len
        || v_cache.len() < kv_len
    {
        return Vec::new();
    }
    let group = n_head / n_head_kv;
    let mut out = vec![0.0f32; n_tokens * n_head * d];
    out.par_chunks_mut(d.max(1))
        .enumerate()
        .for_each(|(row, o)| {
            let (t, h) = (row / n_head, row % n_head);
            let kvh = h / group;
            let qr = &q[row * d..(row + 1) * d];
            let visible = pos0 + t + 1;
            let at = |j: usize| (j * n_head_kv + kvh) * d;
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    let k = &k_cache[at(j)..at(j) + d];
                    let dot: f64 = qr
                        .iter()
                        .zip(k)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    dot * f64::from(scale)
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|&s| (s - m).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for (e, oe) in o.iter_mut().enumerate() {
                let acc: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(j, &w)| w * f64::from(v_cache[at(j) + e]))
                    .sum();
                *oe = (acc / sum) as f32;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_returns_its_value_and_equal_scores_average() {
        let shape = AttentionShape {
            n_tokens: 2,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
            pos0: 0,
        };
        let q = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let k = [0.0, 0.0, 0.0, 0.0];
        let v = [1.0, 2.0, 3.0, 4.0];
        let out = attention_reference(&q, &k, &v, &shape, 1.0);
        // Token 0 sees key 0 only; token 1 sees both keys with equal scores.
        assert_eq!(out, [1.0, 2.0, 1.0, 2.0, 2.0, 3.0, 2.0, 3.0]);
        let bad = AttentionShape {
            n_head_kv: 3,
            ..shape
        };
        assert!(attention_reference(&q, &k, &v, &bad, 1.0).is_empty());
    }
}
