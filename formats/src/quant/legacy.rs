//! The legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the
//! activation type Q8_1.
//!
//! Layouts follow ggml-common.h; dequantizers mirror ggml's
//! `dequantize_row_*` and quantizers its `quantize_row_*_ref`, keeping their
//! f32 operation order, truncating casts and rounding functions, because the
//! quantized bytes must match the files llama.cpp writes exactly.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::float::{fp16_to_fp32, fp32_to_fp16};

/// Elements per block of every legacy type.
pub const QK: usize = 32;

/// Q4_0: `x = d * (q - 8)`, 4-bit `q`; low nibbles hold elements 0..16,
/// high nibbles 16..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// Q4_1: `x = d * q + m`, 4-bit `q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// Q5_0: `x = d * (q - 16)`, 5-bit `q`: low 4 bits in `qs`, bit 4 of
/// element `j` in bit `j` of the little-endian u32 `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, a little-endian u32 kept as bytes so the block stays 22 bytes.
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// Q5_1: `x = d * q + m`, 5-bit `q` split as in Q5_0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Fifth bits, a little-endian u32.
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// Q8_0: `x = d * q`, signed 8-bit `q`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// Q8_1: Q8_0 plus `s = d * sum(qs)`, which the dot products with Q4_1/Q5_1
/// weights use to apply the weights' minimum once per block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`.
    pub s: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// The value with the largest magnitude (the first one on ties), as the
/// symmetric quantizers pick it so that it maps to the extreme negative quant.
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// The largest magnitude, with C's `MAX(a, b)` = `a > b ? a : b` semantics.
pub(crate) fn absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    amax
}

/// `(min, max)` starting from `(FLT_MAX, -FLT_MAX)` as ggml does.
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `d ? 1.0f/d : 0.0f`.
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Dequantizes Q4_0 blocks into `y` (`y.len() == 32 * blocks.len()`).
pub fn dequantize_row_q4_0(blocks: &[BlockQ4_0], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        let (lo, hi) = out.split_at_mut(QK / 2);
        for (j, &q) in b.qs.iter().enumerate() {
            lo[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
            hi[j] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
}

/// Quantizes `x` (`x.len() == 32 * blocks.len()`) to Q4_0 as
/// `quantize_row_q4_0_ref` does.
pub fn quantize_row_q4_0(x: &[f32], blocks: &mut [BlockQ4_0]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = signed_absmax(xb) / -8.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        for j in 0..QK / 2 {
            let x0 = xb[j] * id;
            let x1 = xb[QK / 2 + j] * id;
            // C: MIN(15, (int8_t)(x + 8.5f)), a truncating cast.
            let q0 = i32::from((x0 + 8.5) as i8).min(15) as u8;
            let q1 = i32::from((x1 + 8.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// Dequantizes Q4_1 blocks into `y`.
pub fn dequantize_row_q4_1(blocks: &[BlockQ4_1], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        let m = fp16_to_fp32(b.m);
        let (lo, hi) = out.split_at_mut(QK / 2);
        for (j, &q) in b.qs.iter().enumerate() {
            lo[j] = f32::from(q & 0x0F) * d + m;
            hi[j] = f32::from(q >> 4) * d + m;
        }
    }
}

/// Quantizes `x` to Q4_1 as `quantize_row_q4_1_ref` does.
pub fn quantize_row_q4_1(x: &[f32], blocks: &mut [BlockQ4_1]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        b.m = fp32_to_fp16(min);
        for j in 0..QK / 2 {
            let x0 = (xb[j] - min) * id;
            let x1 = (xb[QK / 2 + j] - min) * id;
            let q0 = i32::from((x0 + 0.5) as i8).min(15) as u8;
            let q1 = i32::from((x1 + 0.5) as i8).min(15) as u8;
            b.qs[j] = q0 | (q1 << 4);
        }
    }
}

/// The 5-bit quants of a Q5 block, unsigned (0..32).
fn unpack_q5(qh: [u8; 4], qs: &[u8; QK / 2], j: usize) -> (u8, u8) {
    let qh = u32::from_le_bytes(qh);
    let h0 = (((qh >> j) << 4) & 0x10) as u8;
    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
    ((qs[j] & 0x0F) | h0, (qs[j] >> 4) | h1)
}

/// Packs 5-bit quants `l` (0..32) into `(qh, qs)`.
fn pack_q5(l: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qh = 0u32;
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        let (q0, q1) = (l[j], l[QK / 2 + j]);
        qs[j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
    }
    (qh.to_le_bytes(), qs)
}

/// Dequantizes Q5_0 blocks into `y`.
pub fn dequantize_row_q5_0(blocks: &[BlockQ5_0], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        let (lo, hi) = out.split_at_mut(QK / 2);
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(b.qh, &b.qs, j);
            lo[j] = (i32::from(q0) - 16) as f32 * d;
            hi[j] = (i32::from(q1) - 16) as f32 * d;
        }
    }
}

/// Quantizes `x` to Q5_0 as `quantize_row_q5_0_ref` does.
pub fn quantize_row_q5_0(x: &[f32], blocks: &mut [BlockQ5_0]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = signed_absmax(xb) / -16.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        let mut l = [0u8; QK];
        for (q, &v) in l.iter_mut().zip(xb) {
            *q = i32::from((v * id + 16.5) as i8).min(31) as u8;
        }
        (b.qh, b.qs) = pack_q5(&l);
    }
}

/// Dequantizes Q5_1 blocks into `y`.
pub fn dequantize_row_q5_1(blocks: &[BlockQ5_1], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        let m = fp16_to_fp32(b.m);
        let (lo, hi) = out.split_at_mut(QK / 2);
        for j in 0..QK / 2 {
            let (q0, q1) = unpack_q5(b.qh, &b.qs, j);
            lo[j] = f32::from(q0) * d + m;
            hi[j] = f32::from(q1) * d + m;
        }
    }
}

/// Quantizes `x` to Q5_1 as `quantize_row_q5_1_ref` does.
pub fn quantize_row_q5_1(x: &[f32], blocks: &mut [BlockQ5_1]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        b.m = fp32_to_fp16(min);
        let mut l = [0u8; QK];
        for (q, &v) in l.iter_mut().zip(xb) {
            // C: (uint8_t)(x + 0.5f), no clamp; the largest value lands on 31.
            *q = ((v - min) * id + 0.5) as u8;
        }
        (b.qh, b.qs) = pack_q5(&l);
    }
}

/// Dequantizes Q8_0 blocks into `y`.
pub fn dequantize_row_q8_0(blocks: &[BlockQ8_0], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = f32::from(q) * d;
        }
    }
}

/// Quantizes `x` to Q8_0 as `quantize_row_q8_0_ref` does.
pub fn quantize_row_q8_0(x: &[f32], blocks: &mut [BlockQ8_0]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = absmax(xb) / 127.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            // C's roundf rounds half away from zero, as f32::round does.
            *q = (v * id).round() as i8;
        }
    }
}

/// Dequantizes Q8_1 blocks into `y` (ggml's Q8_1 `to_float` ignores `s`).
pub fn dequantize_row_q8_1(blocks: &[BlockQ8_1], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK)) {
        let d = fp16_to_fp32(b.d);
        for (o, &q) in out.iter_mut().zip(&b.qs) {
            *o = f32::from(q) * d;
        }
    }
}

/// Quantizes `x` to Q8_1 as `quantize_row_q8_1_ref` does.
pub fn quantize_row_q8_1(x: &[f32], blocks: &mut [BlockQ8_1]) {
    debug_assert_eq!(x.len(), blocks.len() * QK);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK)) {
        let d = absmax(xb) / 127.0;
        let id = inverse(d);
        b.d = fp32_to_fp16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
            sum += i32::from(*q);
        }
        b.s = fp32_to_fp16(sum as f32 * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_of(first: &[f32], fill: f32) -> [f32; QK] {
        let mut x = [fill; QK];
        x[..first.len()].copy_from_slice(first);
        x
    }

    #[test]
    fn all_zero_blocks() {
        let x = [0.0f32; QK];
        let mut b = [BlockQ4_0::zeroed()];
        quantize_row_q4_0(&x, &mut b);
        // ggml computes d = 0.0f / -8 = -0.0, which reaches the file as 0x8000.
        assert_eq!(b[0].d.to_bits(), 0x8000);
        assert_eq!(b[0].qs, [0x88; QK / 2]);
        let mut b5 = [BlockQ5_0::zeroed()];
        quantize_row_q5_0(&x, &mut b5);
        assert_eq!(b5[0].d.to_bits(), 0x8000);
        assert_eq!((b5[0].qh, b5[0].qs), ([0xFF; 4], [0; QK / 2]));
        let mut b41 = [BlockQ4_1::zeroed()];
        quantize_row_q4_1(&x, &mut b41);
        assert_eq!((b41[0].d.to_bits(), b41[0].m.to_bits()), (0, 0));
        assert_eq!(b41[0].qs, [0; QK / 2]);
        let mut b51 = [BlockQ5_1::zeroed()];
        quantize_row_q5_1(&x, &mut b51);
        assert_eq!((b51[0].qh, b51[0].qs), ([0; 4], [0; QK / 2]));
        let mut b8 = [BlockQ8_1::zeroed()];
        quantize_row_q8_1(&x, &mut b8);
        assert_eq!((b8[0].d.to_bits(), b8[0].s.to_bits()), (0, 0));
        assert_eq!(b8[0].qs, [0; QK]);
        let mut y = [1.0f32; QK];
        dequantize_row_q4_0(&b, &mut y);
        assert!(y.iter().all(|v| *v == 0.0));
        dequantize_row_q5_0(&b5, &mut y);
        assert!(y.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn negative_max_maps_to_the_lowest_quant() {
        // The value of largest magnitude is negative: d = -4 / -8 = 0.5.
        let x = block_of(&[-4.0, 1.0, 3.75, -0.25], 0.0);
        let mut b = [BlockQ4_0::zeroed()];
        quantize_row_q4_0(&x, &mut b);
        assert_eq!(b[0].d.to_f32(), 0.5);
        let q: Vec<u8> = b[0].qs[..4].iter().map(|q| q & 0x0F).collect();
        assert_eq!(q, [0, 10, 15, 8]);
        let mut y = [0.0f32; QK];
        dequantize_row_q4_0(&b, &mut y);
        assert_eq!(&y[..4], &[-4.0, 1.0, 3.5, 0.0]);

        let mut b5 = [BlockQ5_0::zeroed()];
        quantize_row_q5_0(&x, &mut b5);
        assert_eq!(b5[0].d.to_f32(), 0.25);
        dequantize_row_q5_0(&b5, &mut y);
        assert_eq!(&y[..4], &[-4.0, 1.0, 3.75, -0.25]);

        let mut b8 = [BlockQ8_0::zeroed()];
        let x8 = block_of(&[-127.0, 5.0], -1.0);
        quantize_row_q8_0(&x8, &mut b8);
        assert_eq!((b8[0].d.to_f32(), b8[0].qs[0], b8[0].qs[1]), (1.0, -127, 5));
    }

    #[test]
    fn half_way_values_follow_ggml_rounding() {
        // Q8_0/Q8_1 use roundf: halves go away from zero.
        let x = block_of(&[127.0, 2.5, -2.5, 0.5, -0.5], 0.0);
        let mut b = [BlockQ8_1::zeroed()];
        quantize_row_q8_1(&x, &mut b);
        assert_eq!(&b[0].qs[..5], &[127, 3, -3, 1, -1]);
        assert_eq!(b[0].s.to_f32(), 127.0);
        // Q4_0 truncates x + 8.5: halves go up, towards +inf.
        let x = block_of(&[-8.0, 0.5, -0.5, 1.5, -1.5, 6.5], 0.0);
        let mut b = [BlockQ4_0::zeroed()];
        quantize_row_q4_0(&x, &mut b);
        assert_eq!(b[0].d.to_f32(), 1.0);
        let q: Vec<u8> = b[0].qs[..6].iter().map(|q| q & 0x0F).collect();
        assert_eq!(q, [0, 9, 8, 10, 7, 15]);
        // Q4_1 truncates (x - min) / d + 0.5, and clamps at 15.
        let x = block_of(&[0.0, 15.0, 7.5, 0.5], 0.0);
        let mut b = [BlockQ4_1::zeroed()];
        quantize_row_q4_1(&x, &mut b);
        let q: Vec<u8> = b[0].qs[..4].iter().map(|q| q & 0x0F).collect();
        assert_eq!(q, [0, 15, 8, 1]);
        // Q5_1 puts the maximum on 31 without a clamp.
        let x = block_of(&[0.0, 31.0, 15.5], 0.0);
        let mut b = [BlockQ5_1::zeroed()];
        quantize_row_q5_1(&x, &mut b);
        let mut y = [0.0f32; QK];
        dequantize_row_q5_1(&b, &mut y);
        assert_eq!(&y[..3], &[0.0, 31.0, 16.0]);
    }

    #[test]
    fn q5_high_bits_land_in_the_right_qh_bits() {
        let mut l = [0u8; QK];
        l[0] = 0x10;
        l[17] = 0x1F;
        let (qh, qs) = pack_q5(&l);
        assert_eq!(u32::from_le_bytes(qh), (1 << 0) | (1 << 17));
        assert_eq!(unpack_q5(qh, &qs, 0), (0x10, 0));
        assert_eq!(unpack_q5(qh, &qs, 1), (0, 0x1F));
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let x: Vec<f32> = (0..4 * QK)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let mut y = vec![0.0f32; x.len()];
        let mut b = vec![BlockQ8_0::zeroed(); 4];
        quantize_row_q8_0(&x, &mut b);
        dequantize_row_q8_0(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK).zip(y.chunks(QK))) {
            let step = blk.d.to_f32();
            for (a, c) in xs.iter().zip(ys) {
                // f16 rounding of d adds up to 127 * 2^-11 steps.
                assert!((a - c).abs() <= 0.57 * step, "{a} vs {c}");
            }
        }
        let mut b = vec![BlockQ4_1::zeroed(); 4];
        quantize_row_q4_1(&x, &mut b);
        dequantize_row_q4_1(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK).zip(y.chunks(QK))) {
            let step = blk.d.to_f32();
            for (a, c) in xs.iter().zip(ys) {
                assert!((a - c).abs() <= 0.51 * step + 0.01, "{a} vs {c}");
            }
        }
    }
}
