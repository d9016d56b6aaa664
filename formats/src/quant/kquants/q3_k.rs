//! Q3_K: 3-bit symmetric quants, 16 groups of 16 weights with 6-bit scales,
//! 3.4375 bits per weight.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::QK_K;
use super::helpers::{make_q3_quants, nearest_int};

/// One Q3_K super-block (ggml's `block_q3_K`): weight = d*(sc-32)*(q-4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High (third) bit of each quant: bit `k` of byte `i` belongs to weight
    /// `32*k + i`. A cleared bit means the quant is 4 lower.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of each quant, laid out as in Q2_K.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales (offset by 32), unpacked by [`unpack_q3_k_scales`].
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// The sixteen signed group scales of a Q3_K block, `-32..=31`.
///
/// Scale `j` keeps its low nibble in byte `j` (j < 8) or the high nibble of byte
/// `j - 8`, and its top two bits in byte `8 + j % 4` at bit `2 * (j / 4)`.
pub fn unpack_q3_k_scales(scales: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 {
            scales[j] & 0xF
        } else {
            scales[j - 8] >> 4
        };
        let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8 - 32;
    }
    out
}

/// Dequantizes Q3_K blocks into `y` (ggml's `dequantize_row_q3_K`), bit-exact.
///
/// Writes `min(blocks.len(), y.len() / 256)` blocks; callers pass
/// `y.len() == blocks.len() * 256`.
pub fn dequantize_row_q3_k(blocks: &[BlockQ3K], y: &mut [f32]) {
    for (b, y) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = b.d.to_f32();
        let scales = unpack_q3_k_scales(&b.scales);
        for c in 0..QK_K / 128 {
            let q = &b.qs[32 * c..32 * c + 32];
            for j in 0..4 {
                let shift = 2 * j;
                let m = 1u8 << (4 * c + j);
                for half in 0..2 {
                    let dl = d_all * f32::from(scales[8 * c + 2 * j + half]);
                    let out = 128 * c + 32 * j + 16 * half;
                    for l in 0..16 {
                        let i = 16 * half + l;
                        let low = ((q[i] >> shift) & 3) as i8;
                        let v = if b.hmask[i] & m != 0 { low } else { low - 4 };
                        y[out + l] = dl * f32::from(v);
                    }
                }
            }
        }
    }
}

/// Quantizes `x` into Q3_K blocks (ggml's `quantize_row_q3_K_ref`).
///
/// Fills `min(blocks.len(), x.len() / 256)` blocks; callers pass
/// `x.len() == blocks.len() * 256`.
pub fn quantize_row_q3_k(x: &[f32], blocks: &mut [BlockQ3K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(blocks.iter_mut()) {
        quantize_block(x, y);
    }
}

fn quantize_block(x: &[f32], y: &mut BlockQ3K) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];

    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for ((xg, lg), s) in x
        .chunks_exact(16)
        .zip(l.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        *s = make_q3_quants(4, xg, lg);
        let scale = s.abs();
        if scale > amax {
            amax = scale;
            max_scale = *s;
        }
    }

    y.scales = [0; 12];
    // `if (max_scale)` in C: NaN counts as true.
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // ggml stores the rounded value in an int8_t before clamping.
            let q = i32::from(nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
            if j < 8 {
                y.scales[j] = (q & 0xF) as u8;
            } else {
                y.scales[j - 8] |= ((q & 0xF) << 4) as u8;
            }
            y.scales[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        y.d = f16::from_f32(1.0 / iscale);
    } else {
        y.d = f16::from_f32(0.0);
    }

    // Re-quantize against the scales as stored, since those are what decode sees.
    let d_all = y.d.to_f32();
    let stored = unpack_q3_k_scales(&y.scales);
    for ((xg, lg), &sc) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).zip(&stored) {
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        for (li, &xi) in lg.iter_mut().zip(xg) {
            *li = (nearest_int(xi / d).clamp(-4, 3) + 4) as i8;
        }
    }

    y.hmask = [0; QK_K / 8];
    for (j, li) in l.iter_mut().enumerate() {
        if *li > 3 {
            y.hmask[j % 32] |= 1 << (j / 32);
            *li -= 4;
        }
    }
    for c in 0..QK_K / 128 {
        let lc = &l[128 * c..128 * c + 128];
        let q = |i: usize| lc[i] as u8;
        for i in 0..32 {
            y.qs[32 * c + i] = q(i) | (q(i + 32) << 2) | (q(i + 64) << 4) | (q(i + 96) << 6);
        }
    }
}
