use proptest::prelude::*;
use seldon_kernels::argmax::{Argmax, NO_INDEX, argmax_reference, top_k_reference};

use crate::common::{GUARD, POISON, awkward_len, gpu, gpu_cases, poisoned_output};

fn read_u32(buffer: &wgpu::Buffer, n: usize) -> Vec<u32> {
    let bytes = gpu().read_bytes("indices", buffer).unwrap();
    let all: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(
        all[n..n + GUARD].iter().all(|&v| v == POISON),
        "wrote past the end"
    );
    all[..n].to_vec()
}

fn run_argmax(x: &[f32], rows: usize, n: usize) -> Vec<u32> {
    let gpu = gpu();
    let kernel = Argmax::new(gpu).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let out = poisoned_output(gpu, "indices", rows);
    let mut encoder = gpu.encoder("test.argmax").unwrap();
    kernel
        .encode_argmax(gpu, &mut encoder, &xb, &out, rows as u64, n as u64)
        .unwrap();
    gpu.submit_and_wait("test.argmax", encoder).unwrap();
    read_u32(&out, rows)
}

fn run_top_k(x: &[f32], rows: usize, n: usize, k: usize) -> Vec<(u32, f32)> {
    let gpu = gpu();
    let kernel = Argmax::new(gpu).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let idx = poisoned_output(gpu, "indices", rows * k);
    let val = poisoned_output(gpu, "values", rows * k);
    let mut encoder = gpu.encoder("test.top_k").unwrap();
    kernel
        .encode_top_k(
            gpu,
            &mut encoder,
            &xb,
            &idx,
            &val,
            rows as u64,
            n as u64,
            k as u64,
        )
        .unwrap();
    gpu.submit_and_wait("test.top_k", encoder).unwrap();
    let indices = read_u32(&idx, rows * k);
    let values = gpu.read_f32("values", &val).unwrap();
    indices.into_iter().zip(values).collect()
}

/// Logits with many exact ties (values on a coarse grid), a few NaNs and -infs.
fn logits(n: usize) -> impl Strategy<Value = Vec<f32>> {
    let v = prop_oneof![
        20 => (-8i32..8).prop_map(|q| q as f32 * 0.5),
        10 => -30.0f32..30.0,
        1 => Just(f32::NAN),
        1 => Just(f32::NEG_INFINITY),
    ];
    proptest::collection::vec(v, n)
}

fn same_pairs(want: &[(u32, f32)], got: &[(u32, f32)]) -> bool {
    want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn argmax_is_exact(
        (rows, n, x) in (1usize..5, awkward_len())
            .prop_flat_map(|(r, n)| (Just(r), Just(n), logits(r * n))),
    ) {
        prop_assert_eq!(run_argmax(&x, rows, n), argmax_reference(&x, n));
    }

    #[test]
    fn top_k_is_exact(
        (rows, n, x) in (1usize..4, prop_oneof![Just(1usize), Just(5), Just(257), 1usize..1500])
            .prop_flat_map(|(r, n)| (Just(r), Just(n), logits(r * n))),
        k in prop_oneof![Just(1usize), Just(40), Just(64), 1usize..65],
    ) {
        let got = run_top_k(&x, rows, n, k);
        let want = top_k_reference(&x, n, k);
        prop_assert!(same_pairs(&want, &got), "want {:?}\n got {:?}", want, got);
    }
}

#[test]
fn argmax_over_a_real_vocabulary() {
    // 49152 logits (SmolLM2's vocabulary) with the maximum tied at two late indices.
    let n = 49_152;
    let mut x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
    x[40_000] = 5.0;
    x[45_000] = 5.0;
    assert_eq!(run_argmax(&x, 1, n), [40_000]);
    let top = run_top_k(&x, 1, n, 3);
    assert_eq!(&top[..2], &[(40_000, 5.0), (45_000, 5.0)]);
    assert!(same_pairs(&top_k_reference(&x, n, 3), &top));
}

#[test]
fn top_k_pads_rows_without_enough_values() {
    let x = [f32::NAN, 1.0, f32::NAN];
    let got = run_top_k(&x, 1, 3, 3);
    let want = [
        (1, 1.0),
        (NO_INDEX, f32::NEG_INFINITY),
        (NO_INDEX, f32::NEG_INFINITY),
    ];
    assert!(same_pairs(&want, &got), "{got:?}");
    assert_eq!(run_argmax(&[f32::NAN; 4], 1, 4), [0]);
}
