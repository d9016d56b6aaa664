//! `MatVecQ8Dot4` on the test adapter: the GPU Q8_0 activation quantizer
//! against seldon-formats' (bit-exact with ggml), and the integer products
//! against the oracle that quantizes x the same way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::{dequantize_to_vec, quantize_to_vec};
use seldon_kernels::Gpu;
use seldon_kernels::matmul::{
    MatMulShape, MatVecQ8Dot4, dequantize_reference, quantize_activations_reference,
    reference_q8_activations,
};
use seldon_kernels::tolerance::{NMSE_MATMUL, check_nmse};

use common::{poisoned_output, read_output};

/// The shared device, one test at a time (see matmul_gpu.rs: wgpu-core 30.0.1
/// can panic when one thread polls for a submission while another submits).
fn gpu() -> (&'static Gpu, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let gpu = common::gpu();
    assert!(
        gpu.features().dot4_packed,
        "the test adapter lacks dot4I8Packed (lavapipe has it)"
    );
    (gpu, guard)
}

fn shape(n_in: usize, n_out: usize, n_cols: usize) -> MatMulShape {
    MatMulShape {
        n_in: n_in as u64,
        n_out: n_out as u64,
        n_cols: n_cols as u64,
    }
}

/// xorshift64*: fast deterministic data from a proptest-chosen seed.
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            (r as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

/// Runs the variant; returns y and the scratch words (the quantized x).
fn run(ty: GgmlType, w: &[u8], x: &[f32], s: MatMulShape) -> (Vec<f32>, Vec<u32>) {
    let (gpu, _lock) = gpu();
    let kernel = MatVecQ8Dot4::new(gpu, ty).unwrap();
    let wb = gpu.upload_bytes("weights", w).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let words = (MatVecQ8Dot4::scratch_bytes(s).unwrap() / 4) as usize;
    let scratch = poisoned_output(gpu, "scratch", words);
    let n = (s.n_cols * s.n_out) as usize;
    let yb = poisoned_output(gpu, "y", n);
    let mut encoder = gpu.encoder("test.dot4").unwrap();
    kernel
        .encode(gpu, &mut encoder, &wb, &xb, &scratch, &yb, s)
        .unwrap();
    gpu.submit_and_wait("test.dot4", encoder).unwrap();
    let y = read_output(gpu, "y", &yb, n);
    let xq = read_output(gpu, "scratch", &scratch, words);
    (y, xq.iter().map(|v| v.to_bits()).collect())
}

fn check(ty: GgmlType, s: MatMulShape, seed: u64) -> Result<(), String> {
    let mut w = Vec::new();
    for r in 0..s.n_out as usize {
        w.extend(values(
            seed ^ r as u64,
            s.n_in as usize,
            1.0 + (r % 5) as f32,
        ));
    }
    let w = quantize_to_vec(ty, &w).unwrap();
    let x = values(!seed, (s.n_in * s.n_cols) as usize, 3.0);
    let (got, xq) = run(ty, &w, &x, s);
    let want_xq = quantize_activations_reference(&x, s.n_in, s.n_cols).unwrap();
    if xq != want_xq {
        return Err(format!("{ty} {s:?}: quantized activations differ"));
    }
    let want = reference_q8_activations(ty, &w, &x, s).unwrap();
    check_nmse(&want, &got, NMSE_MATMUL).map_err(|e| format!("{ty} {s:?}: {e}"))?;
    // Every output within f32 rounding of its dot product.
    let dense = dequantize_reference(ty, &w, s.n_in, s.n_out).unwrap();
    let xq_bytes: Vec<u8> = quantize_to_vec(GgmlType::Q8_0, &x).unwrap();
    let xd = dequantize_to_vec(GgmlType::Q8_0, &xq_bytes).unwrap();
    let (n_in, n_out) = (s.n_in as usize, s.n_out as usize);
    for (idx, (&g, &e)) in got.iter().zip(&want).enumerate() {
        let (c, o) = (idx / n_out, idx % n_out);
        let abs: f64 = dense[o * n_in..(o + 1) * n_in]
            .iter()
            .zip(&xd[c * n_in..(c + 1) * n_in])
            .map(|(&a, &b)| f64::from(a * b).abs())
            .sum();
        let bound = 4.0 * n_in as f64 * f64::from(f32::EPSILON) * abs + 1e-30;
        if (f64::from(g) - f64::from(e)).abs() > bound {
            return Err(format!("{ty} {s:?}: y[{c}][{o}] = {g}, reference {e}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn q8_0_and_q4_0_match_the_q8_reference(
        ty in prop_oneof![Just(GgmlType::Q8_0), Just(GgmlType::Q4_0)],
        n_in in prop_oneof![Just(32usize), Just(64), Just(96), Just(576), (1usize..24).prop_map(|b| b * 32)],
        n_out in prop_oneof![Just(1usize), Just(3), Just(255), Just(257), 1usize..600],
        n_cols in prop_oneof![Just(1usize), Just(2), Just(5), Just(8)],
        seed in any::<u64>(),
    ) {
        let r = check(ty, shape(n_in, n_out, n_cols), seed);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Rounding edge cases of ggml's quantizer: ties (roundf takes them away from
/// zero), a zero block (d = 0), f16-subnormal scales, and SmolLM2's widths.
#[test]
fn quantizer_edge_cases_and_smollm2_shapes() {
    let mut x = vec![0.0f32; 4 * 32];
    // Block 0: amax 127 gives d = 1, so x itself is x * id: ties at .5.
    x[..8].copy_from_slice(&[127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -126.5, 3.4999998]);
    // Block 1 stays zero. Block 2: amax 1e-3, d ~ 7.9e-6, an f16 subnormal.
    for (i, v) in x[64..96].iter_mut().enumerate() {
        *v = (i as f32 - 15.5) * 6.4e-5;
    }
    // Block 3: amax 1e4 gives d ~ 78.7 (a normal f16 with rounding).
    for (i, v) in x[96..128].iter_mut().enumerate() {
        *v = (i as f32 * 37.0 % 64.0 - 32.0) * 312.5;
    }
    let w = quantize_to_vec(GgmlType::Q8_0, &values(7, 128 * 3, 1.0)).unwrap();
    let s = shape(128, 3, 1);
    let (_, xq) = run(GgmlType::Q8_0, &w, &x, s);
    assert_eq!(xq, quantize_activations_reference(&x, 128, 1).unwrap());

    for (ty, n_in, n_out, n_cols) in [
        (GgmlType::Q8_0, 576, 4096, 1),
        (GgmlType::Q4_0, 576, 1536, 2),
        (GgmlType::Q4_0, 1536, 576, 8),
    ] {
        let r = check(ty, shape(n_in, n_out, n_cols), n_out as u64);
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn bad_arguments_are_errors() {
    let (gpu, _lock) = gpu();
    for ty in [GgmlType::Q4_1, GgmlType::F32, GgmlType::Q4_K] {
        let err = MatVecQ8Dot4::new(gpu, ty).unwrap_err();
        assert!(err.to_string().contains(ty.name()), "{err}");
    }
    let kernel = MatVecQ8Dot4::new(gpu, GgmlType::Q8_0).unwrap();
    let w = gpu.upload_bytes("weights", &[0u8; 34 * 4]).unwrap();
    let x = gpu.upload_f32("x", &[0.0; 64 * 9]).unwrap();
    let scratch = poisoned_output(gpu, "scratch", 9);
    let y = poisoned_output(gpu, "y", 16);
    let mut encoder = gpu.encoder("test.dot4.errors").unwrap();
    let mut try_shape = |s| {
        kernel
            .encode(gpu, &mut encoder, &w, &x, &scratch, &y, s)
            .unwrap_err()
            .to_string()
    };
    assert!(try_shape(shape(64, 2, 9)).contains("at most 8"));
    assert!(try_shape(shape(48, 2, 1)).contains("block size 32"));
    assert!(try_shape(shape(64, 2, 2)).contains("scratch holds"));
}
