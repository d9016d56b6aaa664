#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Bit-exactness against vectors produced by ggml itself (formats/tests/golden,
//! written by formats/scripts from llama-cpp-python's ggml).

use std::path::PathBuf;

use bytemuck::Pod;

use super::tests::{KQuant, array_rmse, generate_data};
use super::*;

fn golden(ty: &str, file: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", ty, file]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn blocks<T: Pod>(bytes: &[u8]) -> Vec<T> {
    assert_eq!(bytes.len() % size_of::<T>(), 0);
    bytes
        .chunks_exact(size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

/// Index of the first differing bit pattern, if any (NaN-aware: compares bits).
fn first_bit_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits())
}

/// Checks one type against ggml's files and returns the fraction of quantized
/// blocks that are byte-identical to ggml's.
fn check<T: KQuant>() -> f64 {
    let ty = T::NAME;
    let input = f32s(&golden(ty, "input.f32"));
    let ours_input = generate_data(0.0, input.len());
    assert_eq!(
        first_bit_difference(&input, &ours_input),
        None,
        "{ty}: generate_data differs"
    );

    // Dequantization: bit-exact on ggml's own quants and on random blocks.
    let quant: Vec<T> = blocks(&golden(ty, "quant.bin"));
    assert_eq!(quant.len() * QK_K, input.len(), "{ty}: quant.bin size");
    let want = f32s(&golden(ty, "dequant.f32"));
    let mut got = vec![f32::NAN; want.len()];
    T::dequantize(&quant, &mut got);
    assert_eq!(
        first_bit_difference(&got, &want),
        None,
        "{ty}: dequant of quant.bin"
    );

    let random: Vec<T> = blocks(&golden(ty, "random.bin"));
    let want = f32s(&golden(ty, "random_dequant.f32"));
    assert_eq!(random.len() * QK_K, want.len(), "{ty}: random.bin size");
    let mut got = vec![f32::NAN; want.len()];
    T::dequantize(&random, &mut got);
    assert_eq!(
        first_bit_difference(&got, &want),
        None,
        "{ty}: dequant of random.bin"
    );

    // Quantization: test-quantize-fns' reference error, and identical bytes.
    let mut ours = vec![T::zeroed(); quant.len()];
    T::quantize(&input, &mut ours);
    let (mut ours_y, mut ggml_y) = (vec![0.0; input.len()], vec![0.0; input.len()]);
    T::dequantize(&ours, &mut ours_y);
    T::dequantize(&quant, &mut ggml_y);
    let reference_error = array_rmse(&ours_y, &ggml_y);
    assert!(
        reference_error < 1e-4,
        "{ty}: reference error {reference_error}"
    );
    let same = ours
        .iter()
        .zip(&quant)
        .filter(|(a, b)| bytemuck::bytes_of(*a) == bytemuck::bytes_of(*b))
        .count();
    same as f64 / quant.len() as f64
}

macro_rules! golden_test {
    ($name:ident, $block:ty) => {
        #[test]
        fn $name() {
            let identical = check::<$block>();
            assert_eq!(
                identical,
                1.0,
                "{}: identical block fraction",
                <$block>::NAME
            );
        }
    };
}

golden_test!(q2_k_matches_ggml, BlockQ2K);
golden_test!(q3_k_matches_ggml, BlockQ3K);
golden_test!(q4_k_matches_ggml, BlockQ4K);
golden_test!(q5_k_matches_ggml, BlockQ5K);
golden_test!(q6_k_matches_ggml, BlockQ6K);
golden_test!(q8_k_matches_ggml, BlockQ8K);
