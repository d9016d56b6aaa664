//! `MatMul` on the test adapter against the CPU oracle: every weight type on
//! both kernels over awkward shapes, GPU decoding against the CPU dequantizer
//! value by value, the SmolLM2 shapes, and argument checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::quantize_to_vec;
use seldon_kernels::matmul::{
    MatMul, MatMulPath, MatMulShape, MatvecVariant, SUPPORTED_TYPES, dequantize_reference,
    matvec_input_buffer, reference, split_supported,
};
use seldon_kernels::tolerance::{NMSE_MATMUL, check_nmse};

use common::{poisoned_output, read_output};

/// The shared test device, one test at a time: wgpu-core 30.0.1 can panic in
/// `Device::poll` when one thread waits for a submission while another
/// submits ("If the queue is empty, the current submission index ... should
/// be at least the wait submission index", fixed upstream in gfx-rs/wgpu#9958),
/// which `Gpu` reports as a lost device. Lavapipe spreads each dispatch over
/// every core anyway, so serializing costs little.
fn gpu() -> (&'static seldon_kernels::Gpu, MutexGuard<'static, ()>) {
    (common::gpu(), lock())
}

fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A second device on the same adapter without subgroups, f16 or dot4
/// (`force_portable`), so that both `matvec` kernels run: the subgroup one
/// on the shared device where the adapter has subgroups, the portable one here.
fn portable_gpu() -> &'static seldon_kernels::Gpu {
    static GPU: OnceLock<seldon_kernels::Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        common::new_gpu(seldon_kernels::GpuOptions {
            force_portable: true,
            ..Default::default()
        })
    })
}

/// splitmix64: fast deterministic test data from one proptest-chosen seed
/// (proptest's own vector strategies are slow at 10^5 elements).
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

/// [`common::run_matmul`], one test at a time.
fn run_on(
    run: common::Run<'_>,
    ty: GgmlType,
    w: &[u8],
    x: &[f32],
    s: MatMulShape,
    path: MatMulPath,
) -> Vec<f32> {
    let _lock = lock();
    common::run_matmul(run, ty, w, x, s, path)
}

/// Random weights of type `ty` quantized from [-1, 1] data whose rows vary in
/// scale, and activations, for `s`.
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

/// NMSE within the matmul tolerance, and every output within the f32
/// rounding bound of its dot product (2 n u sum |w x|), which a single wrong
/// output among thousands would break even where the NMSE stays small.
/// `matvec` is checked on both devices (subgroup and portable kernels).
fn check_product(ty: GgmlType, s: MatMulShape, path: MatMulPath, seed: u64) -> Result<f64, String> {
    let (w, x) = case_data(ty, s, seed);
    let want = reference(ty, &w, &x, s).unwrap();
    let mut nmse = 0.0;
    for run in common::matvec_runs(portable_gpu(), path) {
        let got = run_on(run, ty, &w, &x, s, path);
        let kernel = MatMul::with_variant(run.gpu, ty, run.variant)
            .unwrap()
            .matvec_kernel();
        nmse = check_against(ty, s, path, &w, &x, &want, &got)
            .map_err(|e| format!("{kernel:?} (uniform x: {}): {e}", run.uniform_x))?;
    }
    Ok(nmse)
}

fn check_against(
    ty: GgmlType,
    s: MatMulShape,
    path: MatMulPath,
    w: &[u8],
    x: &[f32],
    want: &[f32],
    got: &[f32],
) -> Result<f64, String> {
    let nmse =
        check_nmse(want, got, NMSE_MATMUL).map_err(|e| format!("{ty} {s:?} {path:?}: {e}"))?;
    let dense = dequantize_reference(ty, w, s.n_in, s.n_out).unwrap();
    common::check_outputs(&ty.to_string(), path, s, &dense, x, want, got)?;
    Ok(nmse)
}

/// n_in for `ty`: one block, a few blocks, SmolLM2's width; for the float
/// types also lengths that are not multiples of 8 or 32.
fn n_in_for(ty: GgmlType) -> BoxedStrategy<usize> {
    let block = ty.block_size() as usize;
    if block == 1 {
        prop_oneof![
            Just(1usize),
            Just(7),
            Just(64),
            Just(100),
            Just(576),
            1usize..700
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(block),
            Just(2 * block),
            Just(3 * block),
            Just(576),
            (1usize..24).prop_map(move |b| b * block)
        ]
        .boxed()
    }
}

fn n_out() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(3),
        Just(64),
        Just(65),
        Just(255),
        Just(257),
        1usize..600
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    }
}

macro_rules! product_tests {
    ($($name:ident: $ty:expr;)+) => {
        mod products {
            use super::*;
            $(
                mod $name {
                    use super::*;
                    proptest! {
                        #![proptest_config(config())]

                        #[test]
                        fn matvec(
                            n_in in n_in_for($ty),
                            n_out in n_out(),
                            n_cols in prop_oneof![Just(1usize), Just(2), Just(5), Just(8)],
                            seed in any::<u64>(),
                        ) {
                            let s = shape(n_in, n_out, n_cols);
                            let r = check_product($ty, s, MatMulPath::Matvec, seed);
                            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                        }

                        #[test]
                        fn matvec_chunks(
                            n_in in n_in_for($ty),
                            n_out in n_out(),
                            n_cols in prop_oneof![Just(9usize), Just(17), Just(40)],
                            seed in any::<u64>(),
                        ) {
                            let s = shape(n_in, n_out, n_cols);
                            let r = check_product($ty, s, MatMulPath::MatvecChunks, seed);
                            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                        }

                        #[test]
                        fn matmul(
                            n_in in n_in_for($ty),
                            n_out in n_out(),
                            n_cols in prop_oneof![Just(9usize), Just(33), Just(77)],
                            seed in any::<u64>(),
                        ) {
                            let s = shape(n_in, n_out, n_cols);
                            let r = check_product($ty, s, MatMulPath::Matmul, seed);
                            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                        }

                        /// f16 tiles where the device has SHADER_F16.
                        #[test]
                        fn matmul_f16(
                            n_in in n_in_for($ty),
                            n_out in n_out(),
                            n_cols in prop_oneof![Just(9usize), Just(33)],
                            seed in any::<u64>(),
                        ) {
                            if common::gpu().features().f16 {
                                let s = shape(n_in, n_out, n_cols);
                                let r = check_product($ty, s, MatMulPath::MatmulF16, seed);
                                prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                            }
                        }
                    }
                }
            )+
        }
    };
}

product_tests! {
    f32: GgmlType::F32;
    f16: GgmlType::F16;
    bf16: GgmlType::BF16;
    q4_0: GgmlType::Q4_0;
    q4_1: GgmlType::Q4_1;
    q5_0: GgmlType::Q5_0;
    q5_1: GgmlType::Q5_1;
    q8_0: GgmlType::Q8_0;
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

/// The gap between `v` and the next f32 away from zero.
fn ulp_of(v: f32) -> f32 {
    let a = v.abs();
    if !a.is_finite() {
        return 0.0;
    }
    f32::from_bits(a.to_bits() + 1) - a
}

/// The minimum `m` of block `b` for the types that have one (the f16 after `d`).
fn block_min(ty: GgmlType, w: &[u8], b: usize) -> Option<f32> {
    let size = ty.type_size() as usize;
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1).then(|| {
        let at = b * size + 2;
        half::f16::from_le_bytes([w[at], w[at + 1]]).to_f32()
    })
}

/// GPU decoding of `w` (`n_out` rows of `n_in`) against the CPU dequantizer:
/// within 1 ulp, or for `d * q + m` within what fusing it into one fma may
/// move (half an ulp of the product, plus the result's own rounding).
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
    let block = ty.block_size() as usize;
    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
        if g.is_nan() && e.is_nan() || ulps(g, e) <= 1 {
            continue;
        }
        let m = block_min(ty, w, i / block);
        let allowed = m.map_or(0.0, |m| ulp_of(e) + ulp_of(e - m));
        assert!(
            (g - e).abs() <= allowed,
            "{ty} element {i} (row {}, col {}): GPU {g:e} ({:#010x}), CPU {e:e} ({:#010x})",
            i / n_in,
            i % n_in,
            g.to_bits(),
            e.to_bits()
        );
    }
}

#[test]
fn gpu_decoding_matches_the_cpu_dequantizer() {
    let mut rng = Rng(0x005E_1D0A);
    for &ty in SUPPORTED_TYPES {
        let block = ty.block_size() as usize;
        // Quantized data with scales from 1e-6 to 1e4 (small scales give
        // subnormal f16 d fields), then raw random bytes: every quant value,
        // any scale, infinities and NaNs included.
        let (n_in, n_out) = if block == 1 {
            (37, 11)
        } else {
            (4 * block, 11)
        };
        let mut data = Vec::new();
        for r in 0..n_out {
            let scale = 10f32.powi(r as i32 - 6);
            data.extend(rng.values(n_in, scale));
        }
        check_dequantize(ty, &quantize_to_vec(ty, &data).unwrap(), n_in, n_out);
        let bytes = (n_in / block) * n_out * ty.type_size() as usize;
        check_dequantize(ty, &rng.bytes(bytes), n_in, n_out);
    }
}

#[test]
fn f16_subnormals_and_specials_decode_exactly() {
    let halves: Vec<u16> = vec![
        0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00,
        0xFC00, 0x0200, 0x83FF, 0x3555, 0x1234,
    ];
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    check_dequantize(GgmlType::F16, &bytes, 16, 1);
    // The same values as Q8_0 scales (d = the half, every q = 1 or -1).
    let mut q8 = Vec::new();
    for (i, h) in halves.iter().enumerate() {
        q8.extend(h.to_le_bytes());
        q8.extend((0..32).map(|j| if (i + j) % 2 == 0 { 1u8 } else { 0xFF }));
    }
    check_dequantize(GgmlType::Q8_0, &q8, 32, halves.len());
}

/// The shapes SmolLM2-135M runs: Q4_1 576x1536 (ffn_gate/up) and 1536x576
/// (ffn_down), Q8_0 token_embd as the tied output (576 x 4096 of its 49152
/// rows, enough for lavapipe), F32 576x576; decode and prefill.
#[test]
fn smollm2_shapes() {
    let cases = [
        (GgmlType::Q4_1, 576, 1536, 1, MatMulPath::Auto),
        (GgmlType::Q4_1, 576, 1536, 40, MatMulPath::Auto),
        (GgmlType::Q4_1, 1536, 576, 3, MatMulPath::Auto),
        (GgmlType::Q8_0, 576, 4096, 1, MatMulPath::Auto),
        (GgmlType::Q8_0, 576, 4096, 9, MatMulPath::Auto),
        (GgmlType::F32, 576, 576, 1, MatMulPath::Auto),
        (GgmlType::F32, 576, 576, 64, MatMulPath::Auto),
        // More rows than one matvec_split dispatch covers with subgroups of
        // 8: its grid-stride loop takes the rest.
        (GgmlType::Q8_0, 64, 40_000, 2, MatMulPath::Matvec),
    ];
    for (i, (ty, n_in, n_out, n_cols, path)) in cases.into_iter().enumerate() {
        let r = check_product(ty, shape(n_in, n_out, n_cols), path, i as u64);
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Several products recorded into one encoder and submitted once, as a
/// model step does: each keeps its own params.
#[test]
fn products_share_one_encoder() {
    let (gpu, _lock) = gpu();
    let specs = [
        (GgmlType::Q4_0, shape(64, 70, 1)),
        (GgmlType::Q8_0, shape(96, 33, 20)),
        (GgmlType::F16, shape(40, 5, 3)),
    ];
    let mut encoder = gpu.encoder("test.matmul.batch").unwrap();
    let mut runs = Vec::new();
    for (i, (ty, s)) in specs.into_iter().enumerate() {
        let (w, x) = case_data(ty, s, 100 + i as u64);
        let wb = gpu.upload_bytes("weights", &w).unwrap();
        let xb = gpu.upload_f32("x", &x).unwrap();
        let n = (s.n_cols * s.n_out) as usize;
        let yb = poisoned_output(gpu, "y", n);
        MatMul::new(gpu, ty)
            .unwrap()
            .encode(gpu, &mut encoder, &wb, &xb, &yb, s)
            .unwrap();
        runs.push((ty, s, w, x, yb, n));
    }
    gpu.submit_and_wait("test.matmul.batch", encoder).unwrap();
    for (ty, s, w, x, yb, n) in runs {
        let got = read_output(gpu, "y", &yb, n);
        let want = reference(ty, &w, &x, s).unwrap();
        check_nmse(&want, &got, NMSE_MATMUL).unwrap();
    }
}

#[test]
fn bad_arguments_are_errors() {
    let (gpu, _lock) = gpu();
    for ty in [GgmlType::Q8_K, GgmlType::Q8_1, GgmlType::I32] {
        let err = MatMul::new(gpu, ty).unwrap_err();
        assert!(err.to_string().contains(ty.name()), "{err}");
    }
    let kernel = MatMul::new(gpu, GgmlType::Q4_0).unwrap();
    let w = gpu.upload_bytes("weights", &[0u8; 18 * 4]).unwrap();
    let x = gpu.upload_f32("x", &[0.0; 64 * 9]).unwrap();
    let y = poisoned_output(gpu, "y", 4 * 9);
    let mut encoder = gpu.encoder("test.matmul.errors").unwrap();
    let mut try_shape = |s: MatMulShape, path| {
        kernel
            .encode_with(gpu, &mut encoder, &w, &x, &y, s, path)
            .unwrap_err()
            .to_string()
    };
    let err = try_shape(shape(48, 2, 1), MatMulPath::Auto);
    assert!(err.contains("block size 32"), "{err}");
    let err = try_shape(shape(64, 3, 1), MatMulPath::Auto);
    assert!(err.contains("weights (Q4_0, 3 rows of 64)"), "{err}");
    let err = try_shape(shape(32, 4, 9), MatMulPath::Matvec);
    assert!(err.contains("at most 8"), "{err}");
    let err = try_shape(shape(64, 2, 10), MatMulPath::Auto);
    assert!(err.contains("x holds"), "{err}");
    let err = try_shape(shape(32, 4, 11), MatMulPath::Matmul);
    assert!(err.contains("y holds"), "{err}");
    // Empty products record nothing and succeed.
    kernel
        .encode(gpu, &mut encoder, &w, &x, &y, shape(64, 0, 1))
        .unwrap();
}

#[test]
fn matvec_uses_subgroups_only_where_the_device_has_them() {
    let shared = common::gpu();
    let subgroups = shared.features().subgroups && shared.adapter_info().subgroup_min_size >= 8;
    for &ty in SUPPORTED_TYPES {
        let (_, entry) = MatMul::new(shared, ty).unwrap().matvec_kernel();
        let want = if subgroups {
            "matvec_subgroups"
        } else {
            "matvec"
        };
        assert_eq!(entry, want, "{ty}");
        let (shader, entry) = MatMul::new(portable_gpu(), ty).unwrap().matvec_kernel();
        assert_eq!(entry, "matvec", "{ty}");
        assert!(!shader.ends_with("_subgroups"), "{ty}");
    }
}

/// `matvec_split` runs where asked for and the device can run it, and where
/// `Auto` picks it (GPUs); asking for it elsewhere is an error, not a panic.
#[test]
fn matvec_split_runs_where_the_device_can() {
    let shared = common::gpu();
    let gpu_adapter = shared.adapter_info().device_type != wgpu::DeviceType::Cpu;
    for &ty in SUPPORTED_TYPES {
        let auto = MatMul::new(shared, ty).unwrap().matvec_kernel();
        assert_eq!(
            auto.1 == "matvec_split",
            split_supported(shared) && gpu_adapter,
            "{ty}: {auto:?}"
        );
        match MatMul::with_variant(shared, ty, MatvecVariant::Split) {
            Ok(kernel) => {
                assert!(split_supported(shared));
                let (shader, entry) = kernel.matvec_kernel();
                assert_eq!(entry, "matvec_split", "{ty}");
                assert!(shader.ends_with("_split"), "{ty}");
            }
            Err(e) => {
                assert!(!split_supported(shared), "{ty}: {e}");
                assert!(e.to_string().contains("SUBGROUP"), "{e}");
            }
        }
        let per_row = MatMul::with_variant(shared, ty, MatvecVariant::PerRow).unwrap();
        assert_ne!(per_row.matvec_kernel().1, "matvec_split", "{ty}");
        // No subgroups on the portable device.
        assert!(!split_supported(portable_gpu()));
        let err = MatMul::with_variant(portable_gpu(), ty, MatvecVariant::Split).unwrap_err();
        assert!(err.to_string().contains("SUBGROUP"), "{err}");
    }
}

/// Activations in a `matvec_input_buffer` are read as a uniform wherever they
/// fit the 64 KiB binding and the decode kernel would otherwise be the
/// portable `matvec` (the products above run `matvec_uniform` on the
/// portable device); elsewhere the storage kernel runs. Where the device has
/// subgroups, `matvec_subgroups` (or `matvec_split`) runs whatever x is.
#[test]
fn matvec_reads_activations_as_a_uniform_where_they_fit() {
    let _lock = lock();
    for gpu in [portable_gpu(), common::gpu()] {
        let kernel = MatMul::new(gpu, GgmlType::Q8_0).unwrap();
        let usage = wgpu::BufferUsages::COPY_DST;
        let x = matvec_input_buffer(gpu, "x", 4 * 2048, usage).unwrap();
        let plain = gpu.upload_f32("plain", &[0.0; 2048]).unwrap();
        let fits = shape(2048, 64, 8);
        let wide = shape(2048, 64, 9);
        let want = if kernel.matvec_kernel().1 == "matvec" {
            "matvec_uniform"
        } else {
            kernel.matvec_kernel().1
        };
        assert_eq!(kernel.matvec_kernel_for(gpu, &x, fits).1, want);
        for (buffer, s) in [(&x, shape(4096, 64, 5)), (&x, wide), (&plain, fits)] {
            assert_eq!(
                kernel.matvec_kernel_for(gpu, buffer, s),
                kernel.matvec_kernel()
            );
        }
    }
}
