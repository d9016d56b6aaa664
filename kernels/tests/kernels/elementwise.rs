use proptest::prelude::*;
use seldon_kernels::elementwise::{BinaryOp, Elementwise, binary_reference, scale_reference};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};

use crate::common::{gpu, gpu_cases, poisoned_output, read_output, values};

fn run_binary(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Elementwise::new(gpu).unwrap();
    let ab = gpu.upload_f32("a", a).unwrap();
    let bb = gpu.upload_f32("b", b).unwrap();
    let out = poisoned_output(gpu, "y", a.len());
    let mut encoder = gpu.encoder("test.binary").unwrap();
    let (n, nb) = (a.len() as u64, b.len() as u64);
    kernel
        .encode_binary(gpu, &mut encoder, op, &ab, &bb, &out, n, nb)
        .unwrap();
    gpu.submit_and_wait("test.binary", encoder).unwrap();
    read_output(gpu, "y", &out, a.len())
}

fn run_scale(a: &[f32], s: f32) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Elementwise::new(gpu).unwrap();
    let ab = gpu.upload_f32("a", a).unwrap();
    let out = poisoned_output(gpu, "y", a.len());
    let mut encoder = gpu.encoder("test.scale").unwrap();
    kernel
        .encode_scale(gpu, &mut encoder, &ab, &out, a.len() as u64, s)
        .unwrap();
    gpu.submit_and_wait("test.scale", encoder).unwrap();
    read_output(gpu, "y", &out, a.len())
}

/// (a, b) where b has `cols` values broadcast over `rows` rows of a.
fn broadcast_case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    let rows = prop_oneof![Just(1usize), Just(3), 1usize..20];
    let cols = prop_oneof![Just(1usize), Just(255), Just(257), 1usize..600];
    (rows, cols).prop_flat_map(|(r, c)| (values(r * c, 100.0), values(c, 100.0)))
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn add_matches_reference((a, b) in broadcast_case()) {
        let got = run_binary(BinaryOp::Add, &a, &b);
        let nmse = check_nmse(&binary_reference(BinaryOp::Add, &a, &b), &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }

    #[test]
    fn mul_matches_reference((a, b) in broadcast_case()) {
        let got = run_binary(BinaryOp::Mul, &a, &b);
        let nmse = check_nmse(&binary_reference(BinaryOp::Mul, &a, &b), &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }

    #[test]
    fn scale_matches_reference(
        a in crate::common::awkward_len().prop_flat_map(|n| values(n, 100.0)),
        s in -4.0f32..4.0,
    ) {
        let got = run_scale(&a, s);
        let nmse = check_nmse(&scale_reference(&a, s), &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }
}

#[test]
fn broadcast_length_must_divide() {
    let gpu = gpu();
    let kernel = Elementwise::new(gpu).unwrap();
    let a = gpu.upload_f32("a", &[1.0; 10]).unwrap();
    let b = gpu.upload_f32("b", &[1.0; 3]).unwrap();
    let out = poisoned_output(gpu, "y", 10);
    let mut encoder = gpu.encoder("test.binary").unwrap();
    let err = kernel
        .encode_binary(gpu, &mut encoder, BinaryOp::Add, &a, &b, &out, 10, 3)
        .unwrap_err();
    assert!(
        matches!(err, seldon_kernels::Error::InvalidArgument { .. }),
        "{err}"
    );
}
