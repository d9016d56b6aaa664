use proptest::prelude::*;
use seldon_kernels::rms_norm::{
    RmsNorm, RmsNormShape, rms_norm_per_head_reference, rms_norm_reference,
};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};

use crate::common::{gpu, gpu_cases, poisoned_output, read_output, values};

fn run(x: &[f32], weight: &[f32], shape: RmsNormShape, eps: f32) -> Vec<f32> {
    let gpu = gpu();
    let kernel = RmsNorm::new(gpu).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let wb = gpu.upload_f32("weight", weight).unwrap();
    let out = poisoned_output(gpu, "y", x.len());
    let mut encoder = gpu.encoder("test.rms_norm").unwrap();
    kernel
        .encode(gpu, &mut encoder, &xb, &wb, &out, shape, eps)
        .unwrap();
    gpu.submit_and_wait("test.rms_norm", encoder).unwrap();
    read_output(gpu, "y", &out, x.len())
}

fn row_case() -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>)> {
    let rows = prop_oneof![Just(1usize), Just(2), 1usize..12];
    let n = prop_oneof![
        Just(1usize),
        Just(255),
        Just(256),
        Just(257),
        Just(576),
        1usize..2100
    ];
    (rows, n).prop_flat_map(|(r, n)| (Just(r), values(r * n, 10.0), values(n, 2.0)))
}

/// (tokens, heads, x, weight) with head_dim from Qwen3 (64, 128) or anything small.
fn head_case() -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<f32>)> {
    let head_dim = prop_oneof![Just(64usize), Just(128), 1usize..130];
    (1usize..6, 1usize..9, head_dim)
        .prop_flat_map(|(t, h, d)| (Just(t), Just(h), values(t * h * d, 10.0), values(d, 2.0)))
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn rms_norm_matches_reference(
        (rows, x, w) in row_case(),
        eps in prop_oneof![Just(1e-6f32), Just(1e-5)],
    ) {
        let shape = RmsNormShape::rows(rows as u64, w.len() as u64);
        let got = run(&x, &w, shape, eps);
        let nmse = check_nmse(&rms_norm_reference(&x, &w, eps), &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }

    #[test]
    fn per_head_rms_norm_matches_reference(
        (tokens, heads, x, w) in head_case(),
    ) {
        let shape = RmsNormShape::per_head(tokens as u64, heads as u64, w.len() as u64).unwrap();
        let got = run(&x, &w, shape, 1e-6);
        let want = rms_norm_per_head_reference(&x, &w, heads, 1e-6);
        let nmse = check_nmse(&want, &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }
}

#[test]
fn large_and_tiny_magnitudes_stay_finite() {
    // Sums of squares near 1e36 (close to the f32 range) and rows far below eps.
    let n = 300;
    let w = vec![1.0f32; n];
    let mut x: Vec<f32> = (0..n).map(|i| (i as f32 - 150.0) * 1e15).collect();
    x.extend((0..n).map(|i| (i as f32 - 150.0) * 1e-20));
    let got = run(&x, &w, RmsNormShape::rows(2, n as u64), 1e-6);
    let want = rms_norm_reference(&x, &w, 1e-6);
    check_nmse(&want, &got, NMSE_ELEMENTWISE).unwrap();
}
