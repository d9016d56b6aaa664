//! Q6_K: 6-bit symmetric quants, 16 groups of 16 weights with 8-bit scales,
//! 6.5625 bits per weight.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::QK_K;
use super::helpers::{GROUP_MAX_EPS, make_qx_quants, nearest_int};

/// One Q6_K super-block (ggml's `block_q6_K`): weight = d*sc*(q-32).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of each quant. Per half block `h` (128 weights), byte
    /// `64*h + i` holds weights `i` (low nibble) and `i + 64` (high nibble),
    /// byte `64*h + 32 + i` weights `i + 32` and `i + 96`, for i < 32.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits: byte `32*h + i` holds weights `i + 32*k` at bits `2k..2k+2`.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit scale per group of 16.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// Dequantizes Q6_K blocks into `y` (ggml's `dequantize_row_q6_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q6_k(blocks: &[BlockQ6K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for h in 0..QK_K / 128 {
            let ql = &b.ql[64 * h..64 * h + 64];
            let qh = &b.qh[32 * h..32 * h + 32];
            let sc = &b.scales[8 * h..8 * h + 8];
            let out = &mut y[128 * h..128 * h + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                out[l] = d * f32::from(sc[is]) * f32::from(q1);
                out[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
                out[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
                out[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
            }
        }
    }
}

/// Quantizes `x` into Q6_K blocks (ggml's `quantize_row_q6_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`.
pub fn quantize_row_q6_k(x: &[f32], blocks: &mut [BlockQ6K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        quantize_block(x, y);
    }
}

fn quantize_block(x: &[f32], y: &mut BlockQ6K) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];

    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ((xg, lg), s) in x
        .chunks_exact(16)
        .zip(l.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        let scale = make_qx_quants(32, xg, lg);
        *s = scale;
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }

    if max_abs_scale < GROUP_MAX_EPS {
        *y = BlockQ6K::zeroed();
        return;
    }

    let iscale = -128.0 / max_scale;
    y.d = f16::from_f32(1.0 / iscale);
    for (s, &scale) in y.scales.iter_mut().zip(&scales) {
        *s = nearest_int(iscale * scale).min(127) as i8;
    }

    // Re-quantize against the scales as stored, since those are what decode sees.
    let d_all = y.d.to_f32();
    for ((xg, lg), &sc) in x
        .chunks_exact(16)
        .zip(l.chunks_exact_mut(16))
        .zip(&y.scales)
    {
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        for (li, &xi) in lg.iter_mut().zip(xg) {
            *li = (nearest_int(xi / d).clamp(-32, 31) + 32) as i8;
        }
    }

    for h in 0..QK_K / 128 {
        let lh = &l[128 * h..128 * h + 128];
        let q = |i: usize| lh[i] as u8;
        for i in 0..32 {
            y.ql[64 * h + i] = (q(i) & 0xF) | ((q(i + 64) & 0xF) << 4);
            y.ql[64 * h + 32 + i] = (q(i + 32) & 0xF) | ((q(i + 96) & 0xF) << 4);
            y.qh[32 * h + i] = (q(i) >> 4)
                | ((q(i + 32) >> 4) << 2)
                | ((q(i + 64) >> 4) << 4)
                | ((q(i + 96) >> 4) << 6);
        }
    }
}
