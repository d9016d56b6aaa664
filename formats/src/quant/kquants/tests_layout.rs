#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Each dequantizer against a per-weight decoder written from the layout
//! documented on the block struct, over random blocks; and the quantizers
//! over random inputs.

use half::f16;
use proptest::prelude::*;

use super::tests::KQuant;
use super::*;

/// Random block bytes with every f16 scale field replaced by a finite value,
/// since ggml's blocks from real files never hold NaN or Inf there.
fn block_from<T: KQuant>(mut bytes: Vec<u8>, scales: &[f32], set: fn(&mut T, &[f32])) -> T {
    bytes.resize(size_of::<T>(), 0);
    let mut b: T = bytemuck::pod_read_unaligned(&bytes);
    set(&mut b, scales);
    b
}

fn h(v: f32) -> f16 {
    f16::from_f32(v)
}

fn decode_q2_k(b: &BlockQ2K, p: usize) -> f32 {
    let (c, r) = (p / 128, p % 128);
    let q = (b.qs[32 * c + r % 32] >> (2 * (r / 32))) & 3;
    let sc = b.scales[p / 16];
    b.d.to_f32() * f32::from(sc & 0xF) * f32::from(q) - b.dmin.to_f32() * f32::from(sc >> 4)
}

fn decode_q3_k(b: &BlockQ3K, p: usize) -> f32 {
    let (c, r) = (p / 128, p % 128);
    let low = i32::from((b.qs[32 * c + r % 32] >> (2 * (r / 32))) & 3);
    let high = i32::from((b.hmask[p % 32] >> (p / 32)) & 1);
    let q = low + 4 * high - 4;
    b.d.to_f32() * f32::from(unpack_q3_k_scales(&b.scales)[p / 16]) * q as f32
}

fn decode_q4_k(b: &BlockQ4K, p: usize) -> f32 {
    let (c, r) = (p / 64, p % 64);
    let byte = b.qs[32 * c + r % 32];
    let q = if r < 32 { byte & 0xF } else { byte >> 4 };
    let (sc, m) = get_scale_min_k4(p / 32, &b.scales);
    b.d.to_f32() * f32::from(sc) * f32::from(q) - b.dmin.to_f32() * f32::from(m)
}

fn decode_q5_k(b: &BlockQ5K, p: usize) -> f32 {
    let (c, r) = (p / 64, p % 64);
    let byte = b.qs[32 * c + r % 32];
    let low = if r < 32 { byte & 0xF } else { byte >> 4 };
    let q = low | (((b.qh[r % 32] >> (p / 32)) & 1) << 4);
    let (sc, m) = get_scale_min_k4(p / 32, &b.scales);
    b.d.to_f32() * f32::from(sc) * f32::from(q) - b.dmin.to_f32() * f32::from(m)
}

fn decode_q6_k(b: &BlockQ6K, p: usize) -> f32 {
    let (hb, r) = (p / 128, p % 128);
    let (k, i) = (r / 32, r % 32);
    let byte = b.ql[64 * hb + 32 * (k % 2) + i];
    let low = if k < 2 { byte & 0xF } else { byte >> 4 };
    let high = (b.qh[32 * hb + i] >> (2 * k)) & 3;
    let q = i32::from(low | (high << 4)) - 32;
    b.d.to_f32() * f32::from(b.scales[p / 16]) * q as f32
}

fn decode_q8_k(b: &BlockQ8K, p: usize) -> f32 {
    b.d * f32::from(b.qs[p])
}

fn check_layout<T: KQuant>(b: T, decode: fn(&T, usize) -> f32) {
    let mut y = vec![f32::NAN; QK_K];
    T::dequantize(std::slice::from_ref(&b), &mut y);
    for (p, &v) in y.iter().enumerate() {
        let want = decode(&b, p);
        assert_eq!(
            v.to_bits(),
            want.to_bits(),
            "{} weight {p}: {v} vs {want}",
            T::NAME
        );
    }
}

/// Per-block RMS error of a round trip, relative to the block's largest magnitude.
fn relative_block_error<T: KQuant>(x: &[f32]) -> f32 {
    let mut blocks = vec![T::zeroed(); 1];
    T::quantize(x, &mut blocks);
    let mut y = vec![f32::NAN; QK_K];
    T::dequantize(&blocks, &mut y);
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let se: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
    assert!(
        y.iter().all(|v| v.is_finite()),
        "{}: non-finite output",
        T::NAME
    );
    if amax == 0.0 {
        se
    } else {
        (se / QK_K as f32).sqrt() / amax
    }
}

fn scales() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-2.0f32..2.0, 2)
}

fn bytes(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), n)
}

/// Blocks scaled to a largest magnitude of 0.1 ..= 1000: much smaller blocks
/// lose precision in the f16 super-block scales (Q6_K's d is about amax/4096).
fn inputs() -> impl Strategy<Value = Vec<f32>> {
    (prop::collection::vec(-1.0f32..1.0, QK_K), -1i32..=3).prop_map(|(v, e)| {
        let amax = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let s = if amax > 0.0 {
            10f32.powi(e) / amax
        } else {
            0.0
        };
        v.into_iter().map(|x| x * s).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn q2_k_layout(b in bytes(84), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ2K, s| { b.d = h(s[0]); b.dmin = h(s[1]); }), decode_q2_k);
    }

    #[test]
    fn q3_k_layout(b in bytes(110), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ3K, s| b.d = h(s[0])), decode_q3_k);
    }

    #[test]
    fn q4_k_layout(b in bytes(144), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ4K, s| { b.d = h(s[0]); b.dmin = h(s[1]); }), decode_q4_k);
    }

    #[test]
    fn q5_k_layout(b in bytes(176), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ5K, s| { b.d = h(s[0]); b.dmin = h(s[1]); }), decode_q5_k);
    }

    #[test]
    fn q6_k_layout(b in bytes(210), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ6K, s| b.d = h(s[0])), decode_q6_k);
    }

    #[test]
    fn q8_k_layout(b in bytes(292), s in scales()) {
        check_layout(block_from(b, &s, |b: &mut BlockQ8K, s| b.d = s[0]), decode_q8_k);
    }

    #[test]
    fn quantizers_bound_the_error(x in inputs()) {
        // Loose per-type bounds on uniform data, relative to the block's largest
        // magnitude: about half a quantization step of each type's grid.
        prop_assert!(relative_block_error::<BlockQ2K>(&x) < 0.25);
        prop_assert!(relative_block_error::<BlockQ3K>(&x) < 0.12);
        prop_assert!(relative_block_error::<BlockQ4K>(&x) < 0.06);
        prop_assert!(relative_block_error::<BlockQ5K>(&x) < 0.03);
        prop_assert!(relative_block_error::<BlockQ6K>(&x) < 0.015);
        prop_assert!(relative_block_error::<BlockQ8K>(&x) < 0.004);
    }
}
