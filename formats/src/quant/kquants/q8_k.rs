//! Q8_K: the 8-bit activation type that k-quant dot products pair with, one
//! f32 scale per 256 values plus per-16 sums of the quants.

use bytemuck::{Pod, Zeroable};

use super::QK_K;
use super::helpers::nearest_int;

/// One Q8_K block (ggml's `block_q8_K`): value = d*q.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Block scale.
    pub d: f32,
    /// Quants, `-127..=127` from the quantizer.
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 quants, so that dot products with asymmetric
    /// weights can apply the weights' mins without touching the quants again.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// Dequantizes Q8_K blocks into `y` (ggml's `dequantize_row_q8_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q8_k(blocks: &[BlockQ8K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (o, &q) in y.iter_mut().zip(&b.qs) {
            *o = b.d * f32::from(q);
        }
    }
}

/// Quantizes `x` into Q8_K blocks (ggml's `quantize_row_q8_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`. An all-zero block gets zero `bsums` too
/// (ggml leaves them as they were).
pub fn quantize_row_q8_k(x: &[f32], blocks: &mut [BlockQ8K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in x {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax == 0.0 {
            *y = BlockQ8K::zeroed();
            continue;
        }
        // -127 rather than -128 keeps every quant's negation in range, which
        // ggml's SIMD dot products rely on.
        let iscale = -127.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, g) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| i32::from(q)).sum::<i32>() as i16;
        }
        y.d = 1.0 / iscale;
    }
}
