//! Q2_K: 2-bit asymmetric quants, 16 groups of 16 weights with 4-bit scales
//! and mins, 2.625 bits per weight.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::QK_K;
use super::helpers::{Qkx2Search, make_qkx2_quants, nearest_int};

/// One Q2_K super-block (ggml's `block_q2_K`): weight = d*sc*q - dmin*m.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Per group of 16: the scale in the low nibble, the min in the high nibble.
    pub scales: [u8; QK_K / 16],
    /// Quants, four 2-bit values per byte; byte `32*c + i` holds weights
    /// `128*c + i + 32*k` in bits `2k..2k+2`.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the quantized scales.
    pub d: f16,
    /// Super-block scale of the quantized mins.
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Dequantizes Q2_K blocks into `y` (ggml's `dequantize_row_q2_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q2_k(blocks: &[BlockQ2K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let min = b.dmin.to_f32();
        for c in 0..QK_K / 128 {
            let q = &b.qs[32 * c..32 * c + 32];
            for j in 0..4 {
                let shift = 2 * j;
                for half in 0..2 {
                    let sc = b.scales[8 * c + 2 * j + half];
                    let dl = d * f32::from(sc & 0xF);
                    let ml = min * f32::from(sc >> 4);
                    let out = 128 * c + 32 * j + 16 * half;
                    for l in 0..16 {
                        let v = (q[16 * half + l] >> shift) & 3;
                        y[out + l] = dl * f32::from(v) - ml;
                    }
                }
            }
        }
    }
}

/// Quantizes `x` into Q2_K blocks (ggml's `quantize_row_q2_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`.
pub fn quantize_row_q2_k(x: &[f32], blocks: &mut [BlockQ2K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        quantize_block(x, y);
    }
}

fn quantize_block(x: &[f32], y: &mut BlockQ2K) {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0.0f32; 16];
    let mut scales = [0.0f32; QK_K / 16];
    let mut mins = [0.0f32; QK_K / 16];

    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, (xg, lg)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = v.abs();
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

    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (s, &sc) in y.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * sc) as u8;
        }
        y.d = f16::from_f32(max_scale / Q4SCALE);
    } else {
        y.scales = [0; QK_K / 16];
        y.d = f16::from_f32(0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (s, &m) in y.scales.iter_mut().zip(&mins) {
            *s = (i32::from(*s) | (nearest_int(iscale * m) << 4)) as u8;
        }
        y.dmin = f16::from_f32(max_min / Q4SCALE);
    } else {
        y.dmin = f16::from_f32(0.0);
    }

    // Re-quantize against the scales as stored, since those are what decode sees.
    let d_all = y.d.to_f32();
    let m_all = y.dmin.to_f32();
    for ((xg, lg), &sc) in x
        .chunks_exact(16)
        .zip(l.chunks_exact_mut(16))
        .zip(&y.scales)
    {
        let d = d_all * f32::from(sc & 0xF);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(sc >> 4);
        for (li, &xi) in lg.iter_mut().zip(xg) {
            *li = nearest_int((xi + dm) / d).clamp(0, 3) as u8;
        }
    }

    for c in 0..QK_K / 128 {
        let lc = &l[128 * c..128 * c + 128];
        for i in 0..32 {
            y.qs[32 * c + i] = lc[i] | (lc[i + 32] << 2) | (lc[i + 64] << 4) | (lc[i + 96] << 6);
        }
    }
}
