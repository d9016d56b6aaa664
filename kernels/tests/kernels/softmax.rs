use proptest::prelude::*;
use seldon_kernels::softmax::{Softmax, softmax_reference};
use seldon_kernels::tolerance::{NMSE_SOFTMAX, check_nmse};

use crate::common::{awkward_len, gpu, gpu_cases, poisoned_output, read_output, values};

fn run(x: &[f32], rows: usize, n: usize, scale: f32) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Softmax::new(gpu).unwrap();
    let xb = gpu.upload_f32("x", x).unwrap();
    let out = poisoned_output(gpu, "y", x.len());
    let mut encoder = gpu.encoder("test.softmax").unwrap();
    kernel
        .encode(gpu, &mut encoder, &xb, &out, rows as u64, n as u64, scale)
        .unwrap();
    gpu.submit_and_wait("test.softmax", encoder).unwrap();
    read_output(gpu, "y", &out, x.len())
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn softmax_matches_reference(
        (rows, n, x) in (1usize..6, awkward_len())
            .prop_flat_map(|(r, n)| (Just(r), Just(n), values(r * n, 30.0))),
        scale in prop_oneof![Just(1.0f32), Just(0.125), 0.01f32..4.0],
    ) {
        let got = run(&x, rows, n, scale);
        let want = softmax_reference(&x, n, scale);
        let nmse = check_nmse(&want, &got, NMSE_SOFTMAX);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }
}

#[test]
fn masked_and_huge_logits() {
    // -inf (masked) entries get zero weight; 1e30 * 1 does not overflow the exps.
    let n = 300;
    let mut x: Vec<f32> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                f32::NEG_INFINITY
            } else {
                i as f32 * 0.01
            }
        })
        .collect();
    x.extend((0..n).map(|i| if i == 7 { 1e30 } else { -1e30 }));
    let got = run(&x, 2, n, 1.0);
    let want = softmax_reference(&x, n, 1.0);
    check_nmse(&want, &got, NMSE_SOFTMAX).unwrap();
    assert_eq!(got[0], 0.0);
    assert_eq!(got[n + 7], 1.0);
}
