//! `MatMul` for the k-quants (Q2_K..Q6_K) and the ternary types (TQ1_0,
//! TQ2_0) on the test adapter: GPU decoding against the CPU dequantizer value
//! by value, and both kernels against the CPU oracle over awkward shapes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::quantize_to_vec;
use seldon_kernels::matmul::{
    MatMul, MatMulPath, MatMulShape, dequantize_reference, matvec_entry, reference, shader_for,
};
use seldon_kernels::tolerance::{NMSE_MATMUL, check_nmse};

use common::{poisoned_output, read_output};

/// The types this file covers.
const TYPES: [GgmlType; 7] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// The shared test device, one test at a time (wgpu-core 30.0.1 can panic
/// when one thread polls while another submits; see matmul_gpu.rs).
fn gpu() -> (&'static seldon_kernels::Gpu, MutexGuard<'static, ()>) {
    (common::gpu(), gpu_lock())
}

fn gpu_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// splitmix64: deterministic test data from one proptest-chosen seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.unit() * scale).collect()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn shape(n_in: usize, n_out: usize, n_cols: usize) -> MatMulShape {
    MatMulShape {
        n_in: n_in as u64,
        n_out: n_out as u64,
        n_cols: n_cols as u64,
    }
}

/// A second device without subgroups (`force_portable`): `matvec` runs its
/// portable kernel there, the subgroup one on the shared device.
fn portable_gpu() -> &'static seldon_kernels::Gpu {
    static GPU: OnceLock<seldon_kernels::Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        common::new_gpu(seldon_kernels::GpuOptions {
            force_portable: true,
            ..Default::default()
        })
    })
}

/// [`common::run_matmul`], one test at a time.
fn run_on(
    run: common::Run<'_>,
    ty: GgmlType,
    w: &[u8],
    x: &[f32],
    s: MatMulShape,
    path: MatMulPath,
) -> Vec<f32> {
    let _lock = gpu_lock();
    common::run_matmul(run, ty, w, x, s, path)
}

/// Weights quantized from [-1, 1] data whose rows vary in scale, and
/// activations, for `s`.
fn case_data(ty: GgmlType, s: MatMulShape, seed: u64) -> (Vec<u8>, Vec<f32>) {
    let mut rng = Rng(seed);
    let (n_in, n_out) = (s.n_in as usize, s.n_out as usize);
    let mut w = Vec::with_capacity(n_in * n_out);
    for r in 0..n_out {
        w.extend(rng.values(n_in, 1.0 + (r % 7) as f32));
    }
    let x = rng.values(n_in * s.n_cols as usize, 2.0);
    (quantize_to_vec(ty, &w).unwrap(), x)
}

/// `w` times `x` on the GPU against the oracle: NMSE within the matmul
/// tolerance (NaN fails), and every output within the f32 rounding bound of
/// its dot product (2 n u sum |w x|), which catches a single wrong output
/// that the NMSE of thousands would hide.
fn check_product(
    ty: GgmlType,
    w: &[u8],
    x: &[f32],
    s: MatMulShape,
    path: MatMulPath,
) -> Result<(), String> {
    let want = reference(ty, w, x, s).unwrap();
    for run in common::matvec_runs(portable_gpu(), path) {
        let got = run_on(run, ty, w, x, s, path);
        let kernel = MatMul::with_variant(run.gpu, ty, run.variant)
            .unwrap()
            .matvec_kernel();
        check_against(ty, w, x, s, path, &want, &got)
            .map_err(|e| format!("{kernel:?} (uniform x: {}): {e}", run.uniform_x))?;
    }
    Ok(())
}

fn check_against(
    ty: GgmlType,
    w: &[u8],
    x: &[f32],
    s: MatMulShape,
    path: MatMulPath,
    want: &[f32],
    got: &[f32],
) -> Result<(), String> {
    check_nmse(want, got, NMSE_MATMUL).map_err(|e| format!("{ty} {s:?} {path:?}: {e}"))?;
    let dense = dequantize_reference(ty, w, s.n_in, s.n_out).unwrap();
    common::check_outputs(&ty.to_string(), path, s, &dense, x, want, got)?;
    Ok(())
}

fn check_quantized(
    ty: GgmlType,
    s: MatMulShape,
    path: MatMulPath,
    seed: u64,
) -> Result<(), String> {
    let (w, x) = case_data(ty, s, seed);
    check_product(ty, &w, &x, s, path)
}

/// Distance in representable f32 values (-0 and +0 are the same point).
fn ulps(a: f32, b: f32) -> u64 {
    let ordered = |f: f32| {
        let i = f.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    ordered(a).abs_diff(ordered(b))
}

/// GPU decoding of `w` (`n_out` rows of `n_in`) against the CPU dequantizer,
/// within 1 ulp (NaN where the CPU has NaN).
fn check_dequantize(ty: GgmlType, w: &[u8], n_in: usize, n_out: usize) {
    let (gpu, _lock) = gpu();
    let kernel = MatMul::new(gpu, ty).unwrap();
    let wb = gpu.upload_bytes("weights", w).unwrap();
    let n = n_in * n_out;
    let out = poisoned_output(gpu, "out", n);
    let mut encoder = gpu.encoder("test.dequantize").unwrap();
    kernel
        .encode_dequantize(gpu, &mut encoder, &wb, &out, n_in as u64, n_out as u64)
        .unwrap();
    gpu.submit_and_wait("test.dequantize", encoder).unwrap();
    let got = read_output(gpu, "out", &out, n);
    let want = dequantize_reference(ty, w, n_in as u64, n_out as u64).unwrap();
    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
        let same = if e.is_nan() {
            g.is_nan()
        } else {
            !g.is_nan() && ulps(g, e) <= 1
        };
        assert!(
            same,
            "{ty} element {i} (row {}, col {}): GPU {g:e} ({:#010x}), CPU {e:e} ({:#010x})",
            i / n_in,
            i % n_in,
            g.to_bits(),
            e.to_bits()
        );
    }
}

#[test]
fn the_types_have_their_shaders_and_decode_kernels() {
    for ty in TYPES {
        let ternary = matches!(ty, GgmlType::TQ1_0 | GgmlType::TQ2_0);
        let shader = if ternary {
            "matmul_ternary"
        } else {
            "matmul_kquants"
        };
        assert_eq!(shader_for(ty), Some(shader), "{ty}");
        assert_eq!(matvec_entry(ty), "matvec", "{ty}");
    }
}

#[test]
fn gpu_decoding_matches_the_cpu_dequantizer() {
    let mut rng = Rng(0x6B_0A_47);
    let (n_in, n_out) = (3 * 256, 9);
    for ty in TYPES {
        // Quantized data with row scales from 1e-6 to 1e2 (the small ones
        // give subnormal f16 scales), then raw random bytes: every quant and
        // scale bit pattern, TQ2_0's unused code 3, infinities and NaNs.
        let mut data = Vec::new();
        for r in 0..n_out {
            data.extend(rng.values(n_in, 10f32.powi(r as i32 - 6)));
        }
        check_dequantize(ty, &quantize_to_vec(ty, &data).unwrap(), n_in, n_out);
        let bytes = (n_in / 256) * n_out * ty.type_size() as usize;
        check_dequantize(ty, &rng.bytes(bytes), n_in, n_out);
    }
}

/// Random block bytes with every f16 scale field replaced by a finite one,
/// so that the product is defined: all quant codes, including TQ2_0's code 3
/// (decoded by ggml as +2) and TQ1_0 bytes the quantizer never writes.
fn raw_weights(ty: GgmlType, blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let size = ty.type_size() as usize;
    let scale_fields: &[usize] = match ty {
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::TQ1_0 => &[52],
        GgmlType::TQ2_0 => &[64],
        _ => panic!("{ty}"),
    };
    let mut w = rng.bytes(blocks * size);
    for block in w.chunks_exact_mut(size) {
        for &at in scale_fields {
            let d = half::f16::from_f32(rng.unit() * 0.05);
            block[at..at + 2].copy_from_slice(&d.to_le_bytes());
        }
    }
    w
}

#[test]
fn raw_codes_multiply_as_the_dequantizer_decodes_them() {
    let mut rng = Rng(0x7A_11);
    for ty in TYPES {
        for (n_cols, path) in [
            (3, MatMulPath::Matvec),
            (8, MatMulPath::Matvec),
            (9, MatMulPath::Matmul),
        ] {
            let s = shape(512, 67, n_cols);
            let w = raw_weights(ty, 2 * 67, &mut rng);
            let x = rng.values(512 * n_cols, 1.5);
            check_product(ty, &w, &x, s, path).unwrap();
        }
    }
}

/// The largest and smallest shapes of the brief on both kernels.
#[test]
fn corner_shapes() {
    for (i, ty) in TYPES.into_iter().enumerate() {
        for (n_in, n_out, n_cols, path) in [
            (256, 1, 1, MatMulPath::Matvec),
            (768, 257, 8, MatMulPath::Matvec),
            (768, 255, 5, MatMulPath::Auto),
            (256, 3, 33, MatMulPath::Matmul),
            (768, 257, 33, MatMulPath::Auto),
        ] {
            let s = shape(n_in, n_out, n_cols);
            check_quantized(ty, s, path, i as u64).unwrap();
        }
    }
}

fn n_in() -> impl Strategy<Value = usize> {
    prop_oneof![Just(256usize), Just(512), Just(768)]
}

fn n_out() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(3), Just(255), Just(257), 1usize..300]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 6,
        ..ProptestConfig::default()
    }
}

macro_rules! product_tests {
    ($($name:ident: $ty:expr;)+) => {
        $(
            mod $name {
                use super::*;
                proptest! {
                    #![proptest_config(config())]

                    #[test]
                    fn matvec(
                        n_in in n_in(),
                        n_out in n_out(),
                        n_cols in prop_oneof![Just(1usize), Just(2), Just(5), Just(8)],
                        seed in any::<u64>(),
                    ) {
                        let s = shape(n_in, n_out, n_cols);
                        let r = check_quantized($ty, s, MatMulPath::Matvec, seed);
                        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                    }

                    #[test]
                    fn matvec_chunks(
                        n_in in n_in(),
                        n_out in n_out(),
                        n_cols in prop_oneof![Just(9usize), Just(17), Just(40)],
                        seed in any::<u64>(),
                    ) {
                        let s = shape(n_in, n_out, n_cols);
                        let r = check_quantized($ty, s, MatMulPath::MatvecChunks, seed);
                        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                    }

                    #[test]
                    fn matmul(
                        n_in in n_in(),
                        n_out in n_out(),
                        n_cols in prop_oneof![Just(9usize), Just(33)],
                        seed in any::<u64>(),
                    ) {
                        let s = shape(n_in, n_out, n_cols);
                        let r = check_quantized($ty, s, MatMulPath::Matmul, seed);
                        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                    }

                    /// f16 tiles where the device has SHADER_F16.
                    #[test]
                    fn matmul_f16(
                        n_in in n_in(),
                        n_out in n_out(),
                        n_cols in prop_oneof![Just(9usize), Just(33)],
                        seed in any::<u64>(),
                    ) {
                        if common::gpu().features().f16 {
                            let s = shape(n_in, n_out, n_cols);
                            let r = check_quantized($ty, s, MatMulPath::MatmulF16, seed);
                            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                        }
                    }
                }
            }
        )+
    };
}

product_tests! {
    q2_k: GgmlType::Q2_K;
    q3_k: GgmlType::Q3_K;
    q4_k: GgmlType::Q4_K;
    q5_k: GgmlType::Q5_K;
    q6_k: GgmlType::Q6_K;
    tq1_0: GgmlType::TQ1_0;
    tq2_0: GgmlType::TQ2_0;
}
