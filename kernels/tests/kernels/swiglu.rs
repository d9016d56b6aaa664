use proptest::prelude::*;
use seldon_kernels::swiglu::{ReluSqr, Swiglu, relu_sqr_reference, swiglu_reference};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};

use crate::common::{awkward_len, gpu, gpu_cases, poisoned_output, read_output, values};

fn run(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let n = gate.len();
    let kernel = Swiglu::new(gpu).unwrap();
    let g = gpu.upload_f32("gate", gate).unwrap();
    let u = gpu.upload_f32("up", up).unwrap();
    let out = poisoned_output(gpu, "y", n);
    let mut encoder = gpu.encoder("test.swiglu").unwrap();
    kernel
        .encode(gpu, &mut encoder, &g, &u, &out, n as u64)
        .unwrap();
    gpu.submit_and_wait("test.swiglu", encoder).unwrap();
    read_output(gpu, "y", &out, n)
}

fn run_relu_sqr(x: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let n = x.len();
    let kernel = ReluSqr::new(gpu).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let out = poisoned_output(gpu, "y", n);
    let mut encoder = gpu.encoder("test.relu_sqr").unwrap();
    kernel
        .encode(gpu, &mut encoder, &xb, &out, n as u64)
        .unwrap();
    gpu.submit_and_wait("test.relu_sqr", encoder).unwrap();
    read_output(gpu, "y", &out, n)
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn relu_sqr_matches_reference(x in awkward_len().prop_flat_map(|n| values(n, 20.0))) {
        let got = run_relu_sqr(&x);
        let want = relu_sqr_reference(&x);
        let nmse = check_nmse(&want, &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
        // One multiply of the same f32: the GPU must agree bit for bit.
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert_eq!(g.to_bits(), w.to_bits(), "y[{}] for x = {}", i, x[i]);
        }
    }

    #[test]
    fn swiglu_matches_reference(
        (gate, up) in awkward_len().prop_flat_map(|n| (values(n, 20.0), values(n, 4.0))),
    ) {
        let got = run(&gate, &up);
        let want = swiglu_reference(&gate, &up);
        let nmse = check_nmse(&want, &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }
}

#[test]
fn swiglu_saturates_without_nan() {
    // exp(-x) overflows f32 for x < -88: the stable form must still give -0..0.
    let gate = [
        -200.0,
        -89.0,
        -30.0,
        0.0,
        30.0,
        89.0,
        200.0,
        f32::MIN_POSITIVE,
    ];
    let up = [1.0; 8];
    let got = run(&gate, &up);
    let want = swiglu_reference(&gate, &up);
    check_nmse(&want, &got, NMSE_ELEMENTWISE).unwrap();
}

#[test]
fn relu_sqr_edges() {
    let x = [
        f32::NEG_INFINITY,
        -1.0,
        -0.0,
        0.0,
        1e-30,
        2.0,
        1e20,
        f32::INFINITY,
    ];
    let got = run_relu_sqr(&x);
    assert_eq!(got, relu_sqr_reference(&x));
}
