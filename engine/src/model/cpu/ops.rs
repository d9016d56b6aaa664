//! The CPU reference's operations, each as ggml's CPU backend defines it, with
//! sums in f64 so that the oracle's own rounding stays far below any GPU
//! tolerance.

use rayon::prelude::*;
use seldon_formats::gguf::GgufFile;
use seldon_formats::quant;

use super::super::ModelError;
use super::super::weights::{Linear, Matrix};

/// Output rows dequantized together: enough work per rayon task to hide its
/// overhead, little enough memory (16 rows of a 49152-wide matrix = 3 MiB).
const ROWS_PER_TASK: usize = 16;

/// `sum(a[i] * b[i])` in f64: f32 products are exact in f64, and eight lanes
/// let the compiler vectorise without reordering any one lane's sum.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    let mut sum: f64 = lanes.iter().sum();
    for (&x, &y) in ra.iter().zip(rb) {
        sum += f64::from(x) * f64::from(y);
    }
    sum
}

/// ggml's `rms_norm` followed by `mul` with `weight`, on each row of `x` in place:
/// the mean square in f64, then `1 / sqrt(mean + eps)` in f32.
pub(crate) fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let n = weight.len();
    if n == 0 {
        return;
    }
    for row in x.chunks_exact_mut(n) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

fn tensor_error(m: &Matrix, reason: impl Into<String>) -> ModelError {
    ModelError::Tensor {
        name: m.name().to_string(),
        reason: reason.into(),
    }
}

/// Row `row` of `m` dequantized (an embedding lookup, ggml's `get_rows`).
pub(crate) fn matrix_row(file: &GgufFile, m: &Matrix, row: usize) -> Result<Vec<f32>, ModelError> {
    let rb = m.row_bytes();
    let bytes = m
        .data(file)
        .get(row * rb..(row + 1) * rb)
        .ok_or_else(|| tensor_error(m, format!("row {row} is outside the data")))?;
    let mut out = vec![0f32; m.n_in];
    quant::dequantize(m.ty(), bytes, &mut out).map_err(|e| tensor_error(m, e.to_string()))?;
    Ok(out)
}

/// `y[t] = (W x[t]) * scale + bias` for each of the `n_tokens` rows of `x`
/// (`[n_tokens][n_in]`); returns `[n_tokens][n_out]`. Weights are dequantized a
/// few rows at a time (bit-exact with ggml), never as a whole f32 matrix.
pub(crate) fn linear(
    file: &GgufFile,
    lin: &Linear,
    x: &[f32],
    n_tokens: usize,
) -> Result<Vec<f32>, ModelError> {
    let m = &lin.w;
    let (n_in, n_out) = (m.n_in, m.n_out);
    let rb = m.row_bytes();
    let data = m.data(file);
    if data.len() != rb * n_out || rb == 0 {
        return Err(tensor_error(m, "data size does not match its shape"));
    }
    if x.len() != n_tokens * n_in {
        return Err(ModelError::Invalid(format!(
            "{}: input holds {} values, expected {n_tokens} x {n_in}",
            m.name(),
            x.len()
        )));
    }
    // Transposed ([n_out][n_tokens]) so that each task owns whole rows.
    let mut yt = vec![0f32; n_out * n_tokens];
    data.par_chunks(rb * ROWS_PER_TASK)
        .zip(yt.par_chunks_mut(n_tokens * ROWS_PER_TASK))
        .try_for_each(|(bytes, out)| {
            let rows = bytes.len() / rb;
            let mut w = vec![0f32; rows * n_in];
            quant::dequantize(m.ty(), bytes, &mut w).map_err(|e| tensor_error(m, e.to_string()))?;
            for (wr, orow) in w.chunks_exact(n_in).zip(out.chunks_exact_mut(n_tokens)) {
                for (o, xt) in orow.iter_mut().zip(x.chunks_exact(n_in)) {
                    *o = dot(wr, xt) as f32;
                }
            }
            Ok::<(), ModelError>(())
        })?;
    let mut y = vec![0f32; n_tokens * n_out];
    for (o, col) in yt.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in col.iter().enumerate() {
            y[t * n_out + o] = v;
        }
    }
    if let Some(s) = lin.scale {
        y.iter_mut().for_each(|v| *v *= s);
    }
    if let Some(b) = &lin.bias {
        for row in y.chunks_exact_mut(n_out) {
            row.iter_mut().zip(b).for_each(|(v, &bv)| *v += bv);
        }
    }
    Ok(y)
}

/// The shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnShape {
    pub n_tokens: usize,
    pub pos0: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub scale: f32,
}

/// Causal grouped-query attention: token `t` (at position `pos0 + t`) sees
/// cached positions `0..=pos0 + t`. `q` is `[n_tokens][n_head][head_dim_k]`,
/// the caches `[position][n_head_kv][head_dim]`; returns
/// `[n_tokens][n_head][head_dim_v]`. ggml's `soft_max_ext` with a causal mask,
/// in f64.
pub(crate) fn attention(q: &[f32], k_cache: &[f32], v_cache: &[f32], s: AttnShape) -> Vec<f32> {
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let group = s.n_head / s.n_head_kv;
    let mut out = vec![0f32; s.n_tokens * s.n_head * dv];
    out.par_chunks_mut(dv).enumerate().for_each(|(row, o)| {
        let (t, h) = (row / s.n_head, row % s.n_head);
        let kvh = h / group;
        let qr = &q[row * dk..(row + 1) * dk];
        let visible = s.pos0 + t + 1;
        let scores: Vec<f64> = (0..visible)
            .map(|j| {
                let at = (j * s.n_head_kv + kvh) * dk;
                dot(qr, &k_cache[at..at + dk]) * f64::from(s.scale)
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|&v| (v - max).exp()).collect();
        let sum: f64 = weights.iter().sum();
        let mut acc = vec![0f64; dv];
        for (j, &w) in weights.iter().enumerate() {
            let at = (j * s.n_head_kv + kvh) * dv;
            for (a, &v) in acc.iter_mut().zip(&v_cache[at..at + dv]) {
                *a += w * f64::from(v);
            }
        }
        for (oe, a) in o.iter_mut().zip(acc) {
            *oe = (a / sum) as f32;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let b = vec![2.0f32; 19];
        assert_eq!(dot(&a, &b), 2.0 * (0..19).sum::<i32>() as f64);
    }

    #[test]
    fn rms_norm_scales_each_row() {
        let mut x = [3.0, 4.0, 1.0, 1.0];
        rms_norm(&mut x, &[1.0, 2.0], 0.0);
        let s = 1.0 / 12.5f32.sqrt();
        assert_eq!(x, [3.0 * s, 8.0 * s, 1.0, 2.0]);
    }

    #[test]
    fn attention_is_causal_and_grouped() {
        // Two query heads share one KV head; token 0 sees only key 0.
        let s = AttnShape {
            n_tokens: 2,
            pos0: 0,
            n_head: 2,
            n_head_kv: 1,
            head_dim_k: 1,
            head_dim_v: 1,
            scale: 1.0,
        };
        let q = [1.0, 1.0, 0.0, 0.0];
        let k = [5.0, -5.0];
        let v = [10.0, 20.0];
        let out = attention(&q, &k, &v, s);
        assert_eq!(&out[..2], &[10.0, 10.0]);
        // Token 1 has zero queries: equal weights over both keys.
        assert_eq!(&out[2..], &[15.0, 15.0]);
    }
}
