use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::quantize_to_vec;
use seldon_kernels::get_rows::{GetRows, SUPPORTED, get_rows_reference};

use crate::common::{gpu, gpu_cases, poisoned_output, read_output, values};

fn run(ty: GgmlType, weight: &[u8], n_rows: usize, n_cols: usize, ids: &[u32]) -> Vec<f32> {
    let gpu = gpu();
    let kernel = GetRows::new(gpu, ty).unwrap();
    let w = gpu.upload_bytes("weight", weight).unwrap();
    let idb = gpu.upload_bytes("ids", bytemuck::cast_slice(ids)).unwrap();
    let out = poisoned_output(gpu, "dst", ids.len() * n_cols);
    let mut encoder = gpu.encoder("test.get_rows").unwrap();
    kernel
        .encode(
            gpu,
            &mut encoder,
            &w,
            &idb,
            &out,
            n_rows as u64,
            n_cols as u64,
            ids.len() as u64,
        )
        .unwrap();
    gpu.submit_and_wait("test.get_rows", encoder).unwrap();
    read_output(gpu, "dst", &out, ids.len() * n_cols)
}

/// Distance in units in the last place between two finite f32 of any sign.
fn ulps(a: f32, b: f32) -> u32 {
    let key = |v: f32| {
        let bits = v.to_bits() as i32;
        if bits < 0 { i32::MIN - bits } else { bits }
    };
    key(a).abs_diff(key(b))
}

fn check(ty: GgmlType, x: &[f32], n_rows: usize, n_cols: usize, ids: &[u32]) {
    let weight = quantize_to_vec(ty, x).unwrap();
    let got = run(ty, &weight, n_rows, n_cols, ids);
    let want = get_rows_reference(ty, &weight, n_cols, ids).unwrap();
    for (i, (&w, &g)) in want.iter().zip(&got).enumerate() {
        assert!(
            g.is_finite() && ulps(w, g) <= 1,
            "{ty} element {i}: CPU {w}, GPU {g}"
        );
    }
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn get_rows_is_within_one_ulp_of_the_cpu_dequantizer(
        ty in proptest::sample::select(SUPPORTED.to_vec()),
        blocks in 1usize..5,
        n_rows in 1usize..9,
        (ids_len, seed) in (1usize..12, any::<u64>()),
    ) {
        let n_cols = blocks * ty.block_size() as usize;
        // Deterministic data from the seed, with varied block magnitudes.
        let mut state = seed;
        let x: Vec<f32> = (0..n_rows * n_cols)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * (1.0 + (i / 32 % 7) as f32 * 3.0)
            })
            .collect();
        // Ids cycle through the rows, repeat some, and one points past the end.
        let ids: Vec<u32> = (0..ids_len)
            .map(|i| if i == 5 { n_rows as u32 + 3 } else { ((i * 7 + (seed as usize % 5)) % n_rows) as u32 })
            .collect();
        check(ty, &x, n_rows, n_cols, &ids);
    }
}

#[test]
fn token_embedding_shapes_for_every_type() {
    // A 576-wide embedding (SmolLM2) for the 32-blocks, 512 for the 256-blocks.
    for ty in SUPPORTED {
        let n_cols = if ty.block_size() == 256 { 512 } else { 576 };
        let x: Vec<f32> = (0..3 * n_cols)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        check(ty, &x, 3, n_cols, &[2, 0, 2, 1]);
    }
}

#[test]
fn f32_rows_are_bit_copies() {
    let x = values_f32(2 * 300);
    let got = run(GgmlType::F32, bytemuck::cast_slice(&x), 2, 300, &[1, 0]);
    assert_eq!(&got[..300], &x[300..]);
    assert_eq!(&got[300..], &x[..300]);
}

fn values_f32(n: usize) -> Vec<f32> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    values(n, 1e30).new_tree(&mut runner).unwrap().current()
}

#[test]
fn get_rows_rejects_partial_blocks_and_short_weights() {
    let gpu = gpu();
    let kernel = GetRows::new(gpu, GgmlType::Q4_0).unwrap();
    let w = gpu.upload_bytes("weight", &[0; 36]).unwrap();
    let ids = gpu.upload_bytes("ids", &[0; 4]).unwrap();
    let out = poisoned_output(gpu, "dst", 64);
    let mut encoder = gpu.encoder("test.get_rows").unwrap();
    let err = kernel
        .encode(gpu, &mut encoder, &w, &ids, &out, 1, 48, 1)
        .unwrap_err();
    assert!(err.to_string().contains("whole Q4_0 blocks"), "{err}");
    let err = kernel
        .encode(gpu, &mut encoder, &w, &ids, &out, 2, 64, 1)
        .unwrap_err();
    assert!(err.to_string().contains("weight holds"), "{err}");
    assert!(GetRows::new(gpu, GgmlType::IQ2_XS).is_err());
}
