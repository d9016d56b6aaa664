//! The ternary types TQ1_0 and TQ2_0 (BitNet b1.58, TriLMs): weights in
//! {-1, 0, 1} times one f16 scale per 256 elements.
//!
//! TQ1_0 packs five trits per byte as a fixed-point fraction: a byte `q`
//! holds `ceil(t * 256 / 243)` for the base-3 number `t`, so multiplying by
//! 3 (mod 256) shifts the next trit into the top and `(q * 3) >> 8` reads it.
//! TQ2_0 stores each trit plus one in two bits. Element order and arithmetic
//! mirror ggml's `quantize_row_tq*_ref` / `dequantize_row_tq*`.

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::float::{fp16_to_fp32, fp32_to_fp16};
use super::legacy::absmax;

/// Elements per block of both ternary types.
pub const QK_K: usize = 256;

/// Bytes of five-trit groups in a TQ1_0 block.
const TQ1_QS: usize = (QK_K - 4 * QK_K / 64) / 5;
/// Bytes of four-trit groups in a TQ1_0 block.
const TQ1_QH: usize = QK_K / 64;

/// TQ1_0: 1.6875 bits per weight.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ1_0 {
    /// Five trits per byte: 32 bytes over elements 0..160, then 16 bytes
    /// over 160..240; byte `m` of a group of `w` bytes holds elements
    /// `m, m + w, ..., m + 4w` from the most significant trit down.
    pub qs: [u8; TQ1_QS],
    /// Four trits per byte over elements 240..256, shifted up by one trit.
    pub qh: [u8; TQ1_QH],
    /// Scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockTQ1_0>() == 54);

/// TQ2_0: 2.0625 bits per weight.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ2_0 {
    /// Trit + 1 in two bits: byte `m` of each 32-byte group holds elements
    /// `m + 32 n` in bits `2n..2n+2`.
    pub qs: [u8; QK_K / 4],
    /// Scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockTQ2_0>() == 66);

/// `lroundf(v * id) + 1`: a trit mapped to 0..=2 (halves away from zero).
fn trit(v: f32, id: f32) -> u8 {
    ((v * id).round() as i32 + 1) as u8
}

/// Packs `n` trits (most significant first) into a base-3 number and scales
/// it to the byte fraction ceil(t * 256 / 243).
fn pack_trits(trits: impl Iterator<Item = u8>) -> u8 {
    let mut q = 0u8;
    for t in trits {
        q = q.wrapping_mul(3).wrapping_add(t);
    }
    // ggml writes the ceiling as (q * 256 + 242) / 243.
    (u16::from(q) * 256).div_ceil(243) as u8
}

/// Reads the `n`-th trit (0 = most significant) from a TQ1_0 byte as -1..=1.
fn unpack_trit(q: u8, n: u32) -> f32 {
    let shifted = q.wrapping_mul(3u8.pow(n));
    let xi = (u16::from(shifted) * 3) >> 8;
    (i32::from(xi) - 1) as f32
}

/// Dequantizes TQ1_0 blocks into `y` (`y.len() == 256 * blocks.len()`).
pub fn dequantize_row_tq1_0(blocks: &[BlockTQ1_0], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK_K);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = fp16_to_fp32(b.d);
        let mut k = 0;
        // Groups of 32 bytes, then of 16, each spanning 5 * width elements.
        for group in [&b.qs[..32], &b.qs[32..]] {
            for n in 0..5 {
                for &q in group {
                    out[k] = unpack_trit(q, n) * d;
                    k += 1;
                }
            }
        }
        for n in 0..4 {
            for &q in &b.qh {
                out[k] = unpack_trit(q, n) * d;
                k += 1;
            }
        }
    }
}

/// Quantizes `x` to TQ1_0 as `quantize_row_tq1_0_ref` does.
pub fn quantize_row_tq1_0(x: &[f32], blocks: &mut [BlockTQ1_0]) {
    debug_assert_eq!(x.len(), blocks.len() * QK_K);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let d = absmax(xb);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = fp32_to_fp16(d);
        let (head, tail) = xb.split_at(160);
        for (m, q) in b.qs[..32].iter_mut().enumerate() {
            *q = pack_trits((0..5).map(|n| trit(head[m + 32 * n], id)));
        }
        for (m, q) in b.qs[32..].iter_mut().enumerate() {
            *q = pack_trits((0..5).map(|n| trit(tail[m + 16 * n], id)));
        }
        let last = &tail[80..];
        for (j, q) in b.qh.iter_mut().enumerate() {
            // Four trits and a zero trit below them, so that the reader's
            // first multiply by 3^0 sees the first trit on top.
            let four = (0..4).map(|m| trit(last[j + TQ1_QH * m], id));
            *q = pack_trits(four.chain(std::iter::once(0)));
        }
    }
}

/// Dequantizes TQ2_0 blocks into `y` (`y.len() == 256 * blocks.len()`).
pub fn dequantize_row_tq2_0(blocks: &[BlockTQ2_0], y: &mut [f32]) {
    debug_assert_eq!(y.len(), blocks.len() * QK_K);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d = fp16_to_fp32(b.d);
        for (group, o) in b.qs.chunks_exact(32).zip(out.chunks_exact_mut(128)) {
            for (l, ol) in o.chunks_exact_mut(32).enumerate() {
                for (v, &q) in ol.iter_mut().zip(group) {
                    let t = i32::from((q >> (2 * l)) & 3);
                    *v = (t - 1) as f32 * d;
                }
            }
        }
    }
}

/// Quantizes `x` to TQ2_0 as `quantize_row_tq2_0_ref` does.
pub fn quantize_row_tq2_0(x: &[f32], blocks: &mut [BlockTQ2_0]) {
    debug_assert_eq!(x.len(), blocks.len() * QK_K);
    for (b, xb) in blocks.iter_mut().zip(x.chunks_exact(QK_K)) {
        let d = absmax(xb);
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b.d = fp32_to_fp16(d);
        for (group, xg) in b.qs.chunks_exact_mut(32).zip(xb.chunks_exact(128)) {
            for (m, q) in group.iter_mut().enumerate() {
                *q = (0..4).fold(0u8, |acc, n| {
                    acc | ((trit(xg[m + 32 * n], id) & 3) << (2 * n))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block's worth of trits in element order, with scale `d`.
    fn ternary(d: f32, f: impl Fn(usize) -> i32) -> Vec<f32> {
        (0..QK_K).map(|i| f(i) as f32 * d).collect()
    }

    #[test]
    fn exact_ternary_data_round_trips() {
        // Every element position takes each of -1, 0, 1 across the three blocks.
        let mut x = Vec::new();
        for s in 0..3 {
            x.extend(ternary(0.75, |i| ((i * 7 + s) % 3) as i32 - 1));
        }
        let mut y = vec![0.0f32; x.len()];
        let mut b1 = vec![BlockTQ1_0::zeroed(); 3];
        quantize_row_tq1_0(&x, &mut b1);
        dequantize_row_tq1_0(&b1, &mut y);
        assert_eq!(x, y);
        let mut b2 = vec![BlockTQ2_0::zeroed(); 3];
        quantize_row_tq2_0(&x, &mut b2);
        y.fill(9.0);
        dequantize_row_tq2_0(&b2, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn all_zero_blocks() {
        let x = vec![0.0f32; QK_K];
        let mut b1 = [BlockTQ1_0::zeroed()];
        quantize_row_tq1_0(&x, &mut b1);
        // Every trit is 0 -> stored 1; 11111 in base 3 is 121 -> ceil(121*256/243) = 128.
        assert_eq!(b1[0].d.to_bits(), 0);
        assert!(b1[0].qs.iter().all(|q| *q == 128));
        // 11110 in base 3 is 120 -> ceil(120*256/243) = 127.
        assert!(b1[0].qh.iter().all(|q| *q == 127));
        let mut b2 = [BlockTQ2_0::zeroed()];
        quantize_row_tq2_0(&x, &mut b2);
        assert!(b2[0].qs.iter().all(|q| *q == 0b0101_0101));
        let mut y = vec![1.0f32; QK_K];
        dequantize_row_tq1_0(&b1, &mut y);
        assert!(y.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn negative_max_and_half_way_values() {
        // amax comes from -2.0, so d = 2 and the scale stays positive; 1.0 and
        // -1.0 are exactly half a step and round away from zero.
        let mut x = vec![0.0f32; QK_K];
        x[0] = -2.0;
        x[1] = 1.0;
        x[2] = -1.0;
        x[3] = 0.999;
        x[255] = 1.0;
        let mut want = vec![0.0f32; QK_K];
        want[0] = -2.0;
        want[1] = 2.0;
        want[2] = -2.0;
        want[255] = 2.0;
        let mut y = vec![0.0f32; QK_K];
        let mut b1 = [BlockTQ1_0::zeroed()];
        quantize_row_tq1_0(&x, &mut b1);
        assert_eq!(b1[0].d.to_f32(), 2.0);
        dequantize_row_tq1_0(&b1, &mut y);
        assert_eq!(y, want);
        let mut b2 = [BlockTQ2_0::zeroed()];
        quantize_row_tq2_0(&x, &mut b2);
        dequantize_row_tq2_0(&b2, &mut y);
        assert_eq!(y, want);
    }

    #[test]
    fn every_tq1_byte_decodes_like_ggml() {
        // Against the plain definition: trit n of q is floor(3^(n+1) * q / 256) mod 3
        // when the byte is read as a fraction; spot-check it over all bytes.
        for q in 0..=255u8 {
            for n in 0..5u32 {
                let frac = u32::from(q) * 3u32.pow(n + 1);
                let want = ((frac >> 8) % 3) as f32 - 1.0;
                assert_eq!(unpack_trit(q, n), want, "q={q} n={n}");
            }
        }
    }
}
