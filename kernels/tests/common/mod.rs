//! Shared by the GPU test binaries: the test device and the poisoning helpers.

#![allow(dead_code)]

use std::sync::OnceLock;

use proptest::prelude::*;
use seldon_kernels::{Gpu, GpuOptions};

/// The bit pattern every output is filled with before a run: a NaN, so an
/// element the kernel forgot to write fails the NMSE check.
pub const POISON: u32 = 0xFFFF_FFFF;
/// Extra elements after each output that a kernel must leave untouched.
pub const GUARD: usize = 4;

/// Creates a device with `options`, failing (never skipping) when there is none.
pub fn new_gpu(options: GpuOptions) -> Gpu {
    match Gpu::new(options) {
        Ok(gpu) => gpu,
        Err(e) => panic!("cannot create the test GPU: {e}"),
    }
}

/// One device shared by the tests of a binary (SELDON_DEVICE may pick it).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| new_gpu(GpuOptions::default()))
}

/// An output buffer of `n` f32 plus [`GUARD`] more, all poisoned.
pub fn poisoned_output(gpu: &Gpu, name: &str, n: usize) -> wgpu::Buffer {
    let bytes = ((n + GUARD) * 4) as u64;
    let usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = gpu.storage_buffer(name, bytes, usage).unwrap();
    gpu.fill_u32(name, &buffer, POISON).unwrap();
    buffer
}

/// Reads back an output made by [`poisoned_output`]: its first `n` values, after
/// checking that the guard elements still hold the poison.
pub fn read_output(gpu: &Gpu, name: &str, buffer: &wgpu::Buffer, n: usize) -> Vec<f32> {
    let mut all = gpu.read_f32(name, buffer).unwrap();
    assert!(all.len() >= n + GUARD, "{name}: read {} values", all.len());
    for (i, v) in all[n..].iter().enumerate() {
        assert_eq!(
            v.to_bits(),
            POISON,
            "{name}: kernel wrote past the end at {}",
            n + i
        );
    }
    all.truncate(n);
    all
}

/// Lengths that break tiling assumptions: 1, just below/above a workgroup,
/// several workgroups plus a remainder, and random ones.
pub fn awkward_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(3),
        Just(255),
        Just(256),
        Just(257),
        Just(1023),
        Just(4097),
        1usize..3000,
    ]
}

/// `n` values in [-range, range].
pub fn values(n: usize, range: f32) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-range..=range, n)
}

/// Proptest settings for GPU tests: few enough cases to stay fast on lavapipe.
pub fn gpu_cases() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

/// Where and how a product runs: the device, whether x lives in a buffer
/// that `matvec` may read as a uniform (as the engine's activations do, so
/// that `matvec_uniform` runs where x fits), and the decode kernel.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub gpu: &'a Gpu,
    pub uniform_x: bool,
    pub variant: seldon_kernels::matmul::MatvecVariant,
}

/// Runs `ty` weights (raw bytes) times `x` with `path` as `run` says.
/// Callers serialize device use (see the lock in each test binary).
pub fn run_matmul(
    run: Run<'_>,
    ty: seldon_formats::GgmlType,
    w: &[u8],
    x: &[f32],
    s: seldon_kernels::matmul::MatMulShape,
    path: seldon_kernels::matmul::MatMulPath,
) -> Vec<f32> {
    let Run {
        gpu,
        uniform_x,
        variant,
    } = run;
    let kernel = seldon_kernels::matmul::MatMul::with_variant(gpu, ty, variant).unwrap();
    let wb = gpu.upload_bytes("weights", w).unwrap();
    let xb = if uniform_x {
        let usage = wgpu::BufferUsages::COPY_DST;
        let bytes = 4 * x.len() as u64;
        let xb = seldon_kernels::matmul::matvec_input_buffer(gpu, "x", bytes, usage).unwrap();
        gpu.write_f32("x", &xb, 0, x).unwrap();
        xb
    } else {
        gpu.upload_f32("x", x).unwrap()
    };
    let n = (s.n_cols * s.n_out) as usize;
    let yb = poisoned_output(gpu, "y", n);
    let mut encoder = gpu.encoder("test.matmul").unwrap();
    kernel
        .encode_with(gpu, &mut encoder, &wb, &xb, &yb, s, path)
        .unwrap();
    gpu.submit_and_wait("test.matmul", encoder).unwrap();
    read_output(gpu, "y", &yb, n)
}

/// The devices, x buffers and decode kernels a product on `path` is checked
/// with: for matvec paths, the per-row kernels on the shared device (its
/// subgroup variant where it has subgroups) from a storage and from a uniform
/// x, the portable one on `portable`, and `matvec_split` where the shared
/// device can run it; for the tiled path, the shared device once.
pub fn matvec_runs(portable: &Gpu, path: seldon_kernels::matmul::MatMulPath) -> Vec<Run<'_>> {
    use seldon_kernels::matmul::{MatMulPath, MatvecVariant, split_supported};
    let shared = gpu();
    let run = |gpu, uniform_x, variant| Run {
        gpu,
        uniform_x,
        variant,
    };
    match path {
        MatMulPath::Matvec | MatMulPath::MatvecChunks => {
            let mut runs = vec![
                run(shared, false, MatvecVariant::PerRow),
                run(portable, false, MatvecVariant::PerRow),
                run(portable, true, MatvecVariant::PerRow),
            ];
            if split_supported(shared) {
                runs.push(run(shared, false, MatvecVariant::Split));
                runs.push(run(shared, true, MatvecVariant::Split));
            }
            runs
        }
        _ => vec![run(shared, false, MatvecVariant::Auto)],
    }
}

/// Every output of a product within the rounding bound of its dot product
/// against the reference: 2 n u sum |w x| for f32 arithmetic (which a single
/// wrong output among thousands breaks even where the NMSE stays small); for
/// f16 tiles (`MatmulF16`) also the rounding of w and x to f16, relative
/// 2^-11 each (2^-25 absolute below f16's normal range). `dense` holds the
/// dequantized weights, `[n_out][n_in]`.
pub fn check_outputs(
    label: &str,
    path: seldon_kernels::matmul::MatMulPath,
    s: seldon_kernels::matmul::MatMulShape,
    dense: &[f32],
    x: &[f32],
    want: &[f32],
    got: &[f32],
) -> Result<(), String> {
    let (n_in, n_out) = (s.n_in as usize, s.n_out as usize);
    let u = f64::from(f32::EPSILON) / 2.0;
    let (rel16, abs16) = if path == seldon_kernels::matmul::MatMulPath::MatmulF16 {
        (2f64.powi(-10) + 2f64.powi(-22), 2f64.powi(-25))
    } else {
        (0.0, 0.0)
    };
    for (idx, (&g, &e)) in got.iter().zip(want).enumerate() {
        let (c, o) = (idx / n_out, idx % n_out);
        let row = &dense[o * n_in..(o + 1) * n_in];
        let col = &x[c * n_in..(c + 1) * n_in];
        let abs: f64 = row
            .iter()
            .zip(col)
            .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
            .sum();
        let magnitudes: f64 = row
            .iter()
            .zip(col)
            .map(|(&a, &b)| f64::from(a).abs() + f64::from(b).abs())
            .sum();
        let bound =
            (2.0 * n_in as f64 * u * (1.0 + rel16) + rel16) * abs + abs16 * magnitudes + 1e-30;
        if (f64::from(g) - f64::from(e)).abs() > bound {
            return Err(format!(
                "{label} {s:?} {path:?}: y[{c}][{o}] = {g}, reference {e}, bound {bound:e}"
            ));
        }
    }
    Ok(())
}
