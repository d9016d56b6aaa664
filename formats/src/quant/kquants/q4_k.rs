//! Q4_K: 4-bit asymmetric quants, 8 groups of 32 weights with 6-bit scales and
//! mins, 4.5 bits per weight.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::helpers::{Qkx2Search, get_scale_min_k4, make_qkx2_quants, nearest_int};
use super::{K_SCALE_SIZE, QK_K};

/// One Q4_K super-block (ggml's `block_q4_K`): weight = d*sc*q - dmin*m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
    /// Eight 6-bit scales and mins, unpacked by [`get_scale_min_k4`].
    pub scales: [u8; K_SCALE_SIZE],
    /// Quants: byte `32*c + i` holds weight `64*c + i` in its low nibble and
    /// weight `64*c + 32 + i` in its high nibble.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// Dequantizes Q4_K blocks into `y` (ggml's `dequantize_row_q4_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q4_k(blocks: &[BlockQ4K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
        for c in 0..QK_K / 64 {
            let q = &b.qs[32 * c..32 * c + 32];
            let (sc, m) = get_scale_min_k4(2 * c, &b.scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            let (sc, m) = get_scale_min_k4(2 * c + 1, &b.scales);
            let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
            let out = &mut y[64 * c..64 * c + 64];
            for (l, &qb) in q.iter().enumerate() {
                out[l] = d1 * f32::from(qb & 0xF) - m1;
                out[l + 32] = d2 * f32::from(qb >> 4) - m2;
            }
        }
    }
}

/// Quantizes `x` into Q4_K blocks (ggml's `quantize_row_q4_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`.
pub fn quantize_row_q4_k(x: &[f32], blocks: &mut [BlockQ4K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        let l = quantize_scales_k4(x, 15, -1.0, 20, &mut y.d, &mut y.dmin, &mut y.scales);
        for c in 0..QK_K / 64 {
            for i in 0..32 {
                y.qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
            }
        }
    }
}

/// The part Q4_K and Q5_K share: picks per-group scales and mins with
/// `make_qkx2_quants`, packs them as 6-bit values against `d` and `dmin`, and
/// returns the quants `0..=nmax` computed against the scales as stored.
pub(super) fn quantize_scales_k4(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    d_out: &mut f16,
    dmin_out: &mut f16,
    packed: &mut [u8; K_SCALE_SIZE],
) -> [u8; QK_K] {
    let search = Qkx2Search {
        nmax,
        rmin,
        rdelta: 0.1,
        nstep,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let mut scales = [0.0f32; QK_K / 32];
    let mut mins = [0.0f32; QK_K / 32];

    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, (xg, lg)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let mut sum_x2 = 0.0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(search, xg, &weights, lg, &mut laux);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    *packed = [0; K_SCALE_SIZE];
    for j in 0..QK_K / 32 {
        // ggml stores the rounded values in a uint8_t before clamping.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    *d_out = f16::from_f32(max_scale / 63.0);
    *dmin_out = f16::from_f32(max_min / 63.0);

    // Re-quantize against the scales as stored, since those are what decode sees.
    let d_all = d_out.to_f32();
    let m_all = dmin_out.to_f32();
    for (j, (xg, lg)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let (sc, m) = get_scale_min_k4(j, packed);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(m);
        for (li, &xi) in lg.iter_mut().zip(xg) {
            *li = nearest_int((xi + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}
