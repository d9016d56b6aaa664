//! Q5_K: 5-bit asymmetric quants, 8 groups of 32 weights with 6-bit scales and
//! mins, 5.5 bits per weight.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::helpers::get_scale_min_k4;
use super::q4_k::quantize_scales_k4;
use super::{K_SCALE_SIZE, QK_K};

/// One Q5_K super-block (ggml's `block_q5_K`): weight = d*sc*q - dmin*m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
    /// Eight 6-bit scales and mins, unpacked by [`get_scale_min_k4`].
    pub scales: [u8; K_SCALE_SIZE],
    /// Fifth bit of each quant: bit `2c` of byte `i` belongs to weight
    /// `64*c + i`, bit `2c + 1` to weight `64*c + 32 + i`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits of each quant, laid out as in Q4_K.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// Dequantizes Q5_K blocks into `y` (ggml's `dequantize_row_q5_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q5_k(blocks: &[BlockQ5K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
        for c in 0..QK_K / 64 {
            let ql = &b.qs[32 * c..32 * c + 32];
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (sc, m) = get_scale_min_k4(2 * c, &b.scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            let (sc, m) = get_scale_min_k4(2 * c + 1, &b.scales);
            let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
            let out = &mut y[64 * c..64 * c + 64];
            for (l, (&qb, &hb)) in ql.iter().zip(&b.qh).enumerate() {
                let lo = (qb & 0xF) + if hb & u1 != 0 { 16 } else { 0 };
                let hi = (qb >> 4) + if hb & u2 != 0 { 16 } else { 0 };
                out[l] = d1 * f32::from(lo) - m1;
                out[l + 32] = d2 * f32::from(hi) - m2;
            }
        }
    }
}

/// Quantizes `x` into Q5_K blocks (ggml's `quantize_row_q5_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`.
pub fn quantize_row_q5_k(x: &[f32], blocks: &mut [BlockQ5K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        let l = quantize_scales_k4(x, 31, -0.5, 15, &mut y.d, &mut y.dmin, &mut y.scales);
        y.qh = [0; QK_K / 8];
        for c in 0..QK_K / 64 {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for i in 0..32 {
                let mut l1 = l[64 * c + i];
                if l1 > 15 {
                    l1 -= 16;
                    y.qh[i] |= m1;
                }
                let mut l2 = l[64 * c + 32 + i];
                if l2 > 15 {
                    l2 -= 16;
                    y.qh[i] |= m2;
                }
                y.qs[32 * c + i] = l1 | (l2 << 4);
            }
        }
    }
}
