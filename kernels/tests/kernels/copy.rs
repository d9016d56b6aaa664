use proptest::prelude::*;
use seldon_kernels::copy::{CopyVec4, copy_reference};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};

use crate::common::{awkward_len, gpu, gpu_cases, poisoned_output, read_output, values};

fn run(src: &[f32]) -> Vec<f32> {
    let gpu = gpu();
    let n_vec4 = src.len() / 4;
    let kernel = CopyVec4::new(gpu).unwrap();
    let input = gpu.upload_f32("src", src).unwrap();
    let out = poisoned_output(gpu, "dst", n_vec4 * 4);
    let mut encoder = gpu.encoder("test.copy").unwrap();
    kernel
        .encode(gpu, &mut encoder, &input, &out, n_vec4 as u64)
        .unwrap();
    gpu.submit_and_wait("test.copy", encoder).unwrap();
    read_output(gpu, "dst", &out, n_vec4 * 4)
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn copy_vec4_matches_reference(
        src in awkward_len().prop_flat_map(|n_vec4| values(n_vec4 * 4, 1e6)),
    ) {
        let got = run(&src);
        let want = copy_reference(&src, src.len() / 4);
        // A copy must be exact, not merely within tolerance.
        prop_assert_eq!(&got, &want);
        let nmse = check_nmse(&want, &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}", nmse);
    }
}

#[test]
fn copy_checks_buffer_sizes() {
    let gpu = gpu();
    let kernel = CopyVec4::new(gpu).unwrap();
    let small = gpu.upload_f32("small", &[0.0; 4]).unwrap();
    let out = poisoned_output(gpu, "dst", 8);
    let mut encoder = gpu.encoder("test.copy").unwrap();
    let err = kernel
        .encode(gpu, &mut encoder, &small, &out, 2)
        .unwrap_err();
    assert!(err.to_string().contains("src holds 16 bytes"), "{err}");
}
