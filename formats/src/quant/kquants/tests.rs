#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytemuck::{Pod, Zeroable};

use super::*;

/// One k-quant type, so that every property below is checked for all of them.
pub(super) trait KQuant: Pod + Zeroable + std::fmt::Debug {
    /// llama.cpp's type name.
    const NAME: &'static str;
    /// ggml test-quantize-fns' limit on its total quantization error.
    const MAX_TOTAL_ERROR: f32;
    fn quantize(x: &[f32], blocks: &mut [Self]);
    fn dequantize(blocks: &[Self], y: &mut [f32]);
}

macro_rules! kquant {
    ($block:ty, $name:literal, $limit:expr, $q:path, $dq:path) => {
        impl KQuant for $block {
            const NAME: &'static str = $name;
            const MAX_TOTAL_ERROR: f32 = $limit;
            fn quantize(x: &[f32], blocks: &mut [Self]) {
                $q(x, blocks)
            }
            fn dequantize(blocks: &[Self], y: &mut [f32]) {
                $dq(blocks, y)
            }
        }
    };
}

// MAX_QUANTIZATION_TOTAL_ERROR{,_2BITS,_3BITS} in ggml's tests/test-quantize-fns.cpp.
kquant!(
    BlockQ2K,
    "Q2_K",
    0.0075,
    quantize_row_q2_k,
    dequantize_row_q2_k
);
kquant!(
    BlockQ3K,
    "Q3_K",
    0.0040,
    quantize_row_q3_k,
    dequantize_row_q3_k
);
kquant!(
    BlockQ4K,
    "Q4_K",
    0.002,
    quantize_row_q4_k,
    dequantize_row_q4_k
);
kquant!(
    BlockQ5K,
    "Q5_K",
    0.002,
    quantize_row_q5_k,
    dequantize_row_q5_k
);
kquant!(
    BlockQ6K,
    "Q6_K",
    0.002,
    quantize_row_q6_k,
    dequantize_row_q6_k
);
kquant!(
    BlockQ8K,
    "Q8_K",
    0.002,
    quantize_row_q8_k,
    dequantize_row_q8_k
);

/// test-quantize-fns' `generate_data`: `0.1 + 2*cosf(i + offset)`, the sum in
/// double precision because `0.1` is a double literal.
pub(super) fn generate_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1f64 + f64::from(2.0 * (i as f32 + offset).cos())) as f32)
        .collect()
}

/// test-quantize-fns' `array_rmse`, including its `sqrt(sum)/n` normalisation.
pub(super) fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x - y);
            d * d
        })
        .sum();
    (sum as f32).sqrt() / a.len() as f32
}

pub(super) fn round_trip<T: KQuant>(x: &[f32]) -> (Vec<T>, Vec<f32>) {
    let mut blocks = vec![T::zeroed(); x.len() / QK_K];
    T::quantize(x, &mut blocks);
    let mut y = vec![f32::NAN; blocks.len() * QK_K];
    T::dequantize(&blocks, &mut y);
    (blocks, y)
}

fn check_total_error<T: KQuant>() {
    let x = generate_data(0.0, 32 * 128);
    let (_, y) = round_trip::<T>(&x);
    let err = array_rmse(&x, &y);
    eprintln!("{} total quantization error {err}", T::NAME);
    assert!(
        err < T::MAX_TOTAL_ERROR,
        "{}: total error {err} >= {}",
        T::NAME,
        T::MAX_TOTAL_ERROR
    );
}

/// A block whose largest magnitude is negative must keep its sign and be
/// represented about as well as its mirror image.
fn check_negative_max<T: KQuant>() {
    let mut x = generate_data(0.5, QK_K);
    x[77] = -7.5;
    let (_, y) = round_trip::<T>(&x);
    assert!(y[77] < -6.5, "{}: got {} for -7.5", T::NAME, y[77]);
    let neg: Vec<f32> = x.iter().map(|v| -v).collect();
    let (_, yn) = round_trip::<T>(&neg);
    // Over one block the metric's sqrt(sum)/n is 4x what the same per-weight
    // error gives over test-quantize-fns' 16 blocks.
    let limit = 4.0 * T::MAX_TOTAL_ERROR;
    for (x, y) in [(&x, &y), (&neg, &yn)] {
        let e = array_rmse(x, y);
        assert!(
            e < limit,
            "{}: error {e} >= {limit} (max {})",
            T::NAME,
            x[77]
        );
    }
}

fn check_zero<T: KQuant>() {
    let x = vec![0.0f32; 2 * QK_K];
    let (_, y) = round_trip::<T>(&x);
    assert!(y.iter().all(|&v| v == 0.0), "{}: {y:?}", T::NAME);
}

/// Magnitudes below GROUP_MAX_EPS (or so small that the f16 scales flush to
/// zero) must come back as exact zeros, never NaN or Inf.
fn check_tiny<T: KQuant>() {
    let x: Vec<f32> = generate_data(0.0, QK_K).iter().map(|v| v * 1e-20).collect();
    let (_, y) = round_trip::<T>(&x);
    for (a, b) in x.iter().zip(&y) {
        assert!(
            b.is_finite() && (a - b).abs() <= 3e-20,
            "{}: {a} -> {b}",
            T::NAME
        );
    }
}

/// A block of one repeated value: asymmetric types use the max == min path.
fn check_constant<T: KQuant>() {
    for v in [1.0f32, -1.0, 3.25] {
        let x = vec![v; QK_K];
        let (_, y) = round_trip::<T>(&x);
        for &b in &y {
            assert!((b - v).abs() <= 0.05 * v.abs(), "{}: {v} -> {b}", T::NAME);
        }
    }
}

fn check_all<T: KQuant>() {
    check_total_error::<T>();
    check_negative_max::<T>();
    check_zero::<T>();
    check_tiny::<T>();
    check_constant::<T>();
}

#[test]
fn q2_k_round_trip() {
    check_all::<BlockQ2K>();
}

#[test]
fn q3_k_round_trip() {
    check_all::<BlockQ3K>();
}

#[test]
fn q4_k_round_trip() {
    check_all::<BlockQ4K>();
}

#[test]
fn q5_k_round_trip() {
    check_all::<BlockQ5K>();
}

#[test]
fn q6_k_round_trip() {
    check_all::<BlockQ6K>();
}

#[test]
fn q8_k_round_trip() {
    check_all::<BlockQ8K>();
}

#[test]
fn q6_k_tiny_block_is_all_zero_bytes() {
    let x = vec![1e-17f32; QK_K];
    let (blocks, _) = round_trip::<BlockQ6K>(&x);
    assert!(bytemuck::bytes_of(&blocks[0]).iter().all(|&b| b == 0));
}

#[test]
fn q8_k_bsums_are_group_sums() {
    let x = generate_data(0.25, 4 * QK_K);
    let (blocks, y) = round_trip::<BlockQ8K>(&x);
    for b in &blocks {
        for (g, &s) in b.qs.chunks_exact(16).zip(&b.bsums) {
            assert_eq!(i32::from(s), g.iter().map(|&q| i32::from(q)).sum::<i32>());
        }
        // The value of largest magnitude maps to -127 (or 127 for a negative max).
        assert_eq!(b.qs.iter().map(|q| q.unsigned_abs()).max(), Some(127));
    }
    assert!(y.iter().all(|v| v.is_finite()));
    // A zero block gets zero sums, not stale ones.
    let mut blocks = vec![BlockQ8K {
        d: 1.0,
        qs: [1; QK_K],
        bsums: [16; 16],
    }];
    quantize_row_q8_k(&[0.0; QK_K], &mut blocks);
    assert!(bytemuck::bytes_of(&blocks[0]).iter().all(|&b| b == 0));
}

#[test]
fn nearest_int_rounds_half_to_even() {
    for (v, want) in [
        (0.5f32, 0),
        (1.5, 2),
        (2.5, 2),
        (-0.5, 0),
        (-1.5, -2),
        (-2.5, -2),
        (3.49, 3),
    ] {
        assert_eq!(nearest_int(v), want, "{v}");
    }
    // Every quarter step in +-2^10 (all ties included), and a sweep of large values.
    for k in -4096..=4096 {
        let v = k as f32 * 0.25;
        assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
    }
    let mut v = 1.1f32;
    while v <= 4_194_303.0 {
        for s in [v, -v, v + 0.5, -v - 0.5] {
            assert_eq!(nearest_int(s), s.round_ties_even() as i32, "{s}");
        }
        v *= 1.37;
    }
}

#[test]
fn get_scale_min_k4_inverts_the_packing() {
    // The quantizer's packing, applied to distinct 6-bit values.
    let ls: [u8; 8] = [63, 1, 17, 32, 48, 5, 62, 33];
    let lm: [u8; 8] = [0, 63, 40, 21, 7, 59, 16, 47];
    let mut q = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
    for j in 0..8 {
        assert_eq!(get_scale_min_k4(j, &q), (ls[j], lm[j]), "sub-block {j}");
    }
}

#[test]
fn row_functions_stop_at_the_shorter_side() {
    let x = generate_data(0.0, 3 * QK_K);
    let mut blocks = vec![BlockQ4K::zeroed(); 2];
    quantize_row_q4_k(&x, &mut blocks);
    let mut y = vec![7.0f32; QK_K + 5];
    dequantize_row_q4_k(&blocks, &mut y);
    assert!(y[QK_K..].iter().all(|&v| v == 7.0));
    assert!(y[..QK_K].iter().all(|&v| v != 7.0));
}
