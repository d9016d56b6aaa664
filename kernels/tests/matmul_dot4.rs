//! `Dot4MatVec` on the test adapter: the GPU activation quantizers (Q8_0,
//! Q8_1, Q8_K) against seldon-formats' (bit-exact with ggml), the integer
//! products against the oracle that follows ggml's vec_dot arithmetic, and
//! the result against the portable f32 path (the difference is the rounding
//! of the activations).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::quantize_to_vec;
use seldon_kernels::Gpu;
use seldon_kernels::matmul::{
    ActivationFormat, DOT4_TYPES, Dot4MatVec, MatMul, MatMulPath, MatMulShape,
    dequantize_activations_reference, dequantize_reference, quantize_activations_reference,
    reference, reference_dot4,
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
    let kernel = Dot4MatVec::new(gpu, ty).unwrap();
    let wb = gpu.upload_bytes("weights", w).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let words = (kernel.scratch_bytes(s).unwrap() / 4) as usize;
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

/// Random weights of `ty`, rows of different magnitudes, and x in [-3, 3].
fn data(ty: GgmlType, s: MatMulShape, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut w = Vec::new();
    for r in 0..s.n_out as usize {
        w.extend(values(
            seed ^ r as u64,
            s.n_in as usize,
            1.0 + (r % 5) as f32,
        ));
    }
    let w = quantize_to_vec(ty, &w).unwrap();
    (w, values(!seed, (s.n_in * s.n_cols) as usize, 3.0))
}

fn check(ty: GgmlType, s: MatMulShape, seed: u64) -> Result<Vec<f32>, String> {
    let format = ActivationFormat::for_weights(ty).unwrap();
    let (w, x) = data(ty, s, seed);
    let (got, xq) = run(ty, &w, &x, s);
    let want_xq = quantize_activations_reference(format, &x, s.n_in, s.n_cols).unwrap();
    if xq != want_xq {
        let i = xq.iter().zip(&want_xq).position(|(a, b)| a != b);
        return Err(format!(
            "{ty} {s:?}: quantized activations differ at word {i:?}"
        ));
    }
    let want = reference_dot4(ty, &w, &x, s).unwrap();
    check_nmse(&want, &got, NMSE_MATMUL).map_err(|e| format!("{ty} {s:?}: {e}"))?;
    // Every output within f32 rounding of ggml's sum: the terms (scaled
    // integer sums, mins) are at most 3 max|w| |xq| each.
    let dense = dequantize_reference(ty, &w, s.n_in, s.n_out).unwrap();
    let xd = dequantize_activations_reference(format, &xq);
    let (n_in, n_out) = (s.n_in as usize, s.n_out as usize);
    let depth = (n_in / 32 + 32) as f64;
    for (idx, (&g, &e)) in got.iter().zip(&want).enumerate() {
        let (c, o) = (idx / n_out, idx % n_out);
        let row = &dense[o * n_in..(o + 1) * n_in];
        let wmax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let xabs: f64 = xd[c * n_in..(c + 1) * n_in]
            .iter()
            .map(|v| f64::from(v.abs()))
            .sum();
        let bound = 8.0 * depth * f64::from(f32::EPSILON) * 3.0 * f64::from(wmax) * xabs + 1e-30;
        if (f64::from(g) - f64::from(e)).abs() > bound {
            return Err(format!("{ty} {s:?}: y[{c}][{o}] = {g}, reference {e}"));
        }
    }
    // Close to the f32-activation product: only x's rounding differs, by at
    // most sum |w| |xq - x| per output (an NMSE over few outputs would flag
    // the ordinary rounding of a sum that cancels to near zero).
    let exact = reference(ty, &w, &x, s).unwrap();
    for (idx, (&g, &e)) in got.iter().zip(&exact).enumerate() {
        let (c, o) = (idx / n_out, idx % n_out);
        let row = &dense[o * n_in..(o + 1) * n_in];
        let cols = c * n_in..(c + 1) * n_in;
        let (xs, xqs) = (&x[cols.clone()], &xd[cols]);
        let mut rounding = 0.0f64;
        let mut magnitude = 0.0f64;
        for ((&wv, &xv), &xq) in row.iter().zip(xs).zip(xqs) {
            rounding += f64::from(wv.abs()) * f64::from((xq - xv).abs());
            magnitude += f64::from(wv.abs()) * f64::from(xv.abs());
        }
        let bound = rounding * (1.0 + 1e-4) + 1e-5 * magnitude + 1e-30;
        if (f64::from(g) - f64::from(e)).abs() > bound {
            return Err(format!(
                "{ty} {s:?} vs f32: y[{c}][{o}] = {g}, f32 product {e}, activation rounding bound {bound:e}"
            ));
        }
    }
    Ok(got)
}

fn dot4_type() -> impl Strategy<Value = GgmlType> {
    proptest::sample::select(DOT4_TYPES.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn every_type_matches_the_ggml_reference(
        ty in dot4_type(),
        blocks in prop_oneof![Just(1usize), Just(2), Just(3), 1usize..10],
        n_out in prop_oneof![Just(1usize), Just(3), Just(255), Just(257), 1usize..600],
        n_cols in 1usize..=8,
        seed in any::<u64>(),
    ) {
        let n_in = blocks * ty.block_size() as usize;
        let r = check(ty, shape(n_in, n_out, n_cols), seed);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Rounding edge cases of ggml's quantizers: ties (roundf takes Q8_0/Q8_1's
/// away from zero, nearest_int takes Q8_K's to even), zero blocks, tiny
/// scales, equal magnitudes of both signs (the first is Q8_K's max), and a
/// negative Q8_1 sum.
#[test]
fn quantizer_edge_cases() {
    let mut x = vec![0.0f32; 4 * 256];
    // Block of 32 #0 / Q8_K block 0: amax 127 (d = 1 for Q8_0/Q8_1; max is
    // -127, so iscale = 1 for Q8_K): ties at .5.
    x[..8].copy_from_slice(&[-127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -126.5, 3.4999998]);
    x[8] = 127.0;
    // 32..64 stay zero (a zero Q8_0/Q8_1 block). 64..96: an f16-subnormal d.
    for (i, v) in x[64..96].iter_mut().enumerate() {
        *v = (i as f32 - 15.5) * 6.4e-5;
    }
    // Q8_K block 1 (256..512) is zero. Block 2: +4 and -4 tie, +4 first.
    x[600] = 4.0;
    x[700] = -4.0;
    x[601] = -2.0;
    x[602] = 1.0 / 3.0;
    // Block 3: large values, a negative Q8_1 sum.
    for (i, v) in x[768..].iter_mut().enumerate() {
        *v = (i as f32 * 37.0 % 64.0 - 40.0) * 312.5;
    }
    for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q4_K] {
        let format = ActivationFormat::for_weights(ty).unwrap();
        let s = shape(1024, 3, 1);
        let w = quantize_to_vec(ty, &values(7, 1024 * 3, 1.0)).unwrap();
        let (_, xq) = run(ty, &w, &x, s);
        assert_eq!(
            xq,
            quantize_activations_reference(format, &x, 1024, 1).unwrap(),
            "{format:?}"
        );
    }
}

/// The shapes of SmolLM2 (576 wide: legacy types only) and of a 2048-wide
/// model, and the dot4 result against the portable f32 matvec on the GPU.
#[test]
fn real_shapes_and_the_portable_path() {
    let cases: Vec<(GgmlType, usize, usize, usize)> = DOT4_TYPES
        .iter()
        .map(|&ty| {
            if ty.block_size() == 32 {
                (ty, 576, 1536, 2)
            } else {
                (ty, 2048, 96, 1)
            }
        })
        .chain([
            (GgmlType::Q4_0, 1536, 576, 8),
            (GgmlType::Q6_K, 1536, 576, 8),
        ])
        .collect();
    for (ty, n_in, n_out, n_cols) in cases {
        let s = shape(n_in, n_out, n_cols);
        let got = check(ty, s, n_out as u64).unwrap_or_else(|e| panic!("{e}"));
        let (w, x) = data(ty, s, n_out as u64);
        let (gpu, _lock) = gpu();
        let portable = MatMul::new(gpu, ty).unwrap();
        let wb = gpu.upload_bytes("weights", &w).unwrap();
        let xb = gpu.upload_f32("x", &x).unwrap();
        let yb = poisoned_output(gpu, "y", n_out * n_cols);
        let mut encoder = gpu.encoder("test.dot4.portable").unwrap();
        portable
            .encode_with(gpu, &mut encoder, &wb, &xb, &yb, s, MatMulPath::Matvec)
            .unwrap();
        gpu.submit_and_wait("test.dot4.portable", encoder).unwrap();
        let f32_path = read_output(gpu, "y", &yb, n_out * n_cols);
        check_nmse(&f32_path, &got, NMSE_MATMUL)
            .unwrap_or_else(|e| panic!("{ty} {s:?} vs the portable matvec: {e}"));
    }
}

#[test]
fn bad_arguments_are_errors() {
    let (gpu, _lock) = gpu();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_1, GgmlType::Q8_K] {
        let err = Dot4MatVec::new(gpu, ty).unwrap_err();
        assert!(err.to_string().contains(ty.name()), "{err}");
    }
    let kernel = Dot4MatVec::new(gpu, GgmlType::Q8_0).unwrap();
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
    let k = Dot4MatVec::new(gpu, GgmlType::Q4_K).unwrap();
    let err = k
        .encode(gpu, &mut encoder, &w, &x, &scratch, &y, shape(128, 1, 1))
        .unwrap_err();
    assert!(err.to_string().contains("block size 256"), "{err}");
}
