//! ggml quantization block layouts with CPU dequantization and quantization.
//!
//! Each type has a `#[repr(C)]` block struct whose bytes are the file format
//! (ggml-common.h) and a pair of row functions, `dequantize_row_<type>` and
//! `quantize_row_<type>`, that mirror ggml's reference functions bit for bit.
//! [`dequantize`] and [`quantize`] dispatch on a [`GgmlType`] over raw bytes
//! as they come from a file (any alignment) and split large inputs over
//! rayon's pool; blocks are independent, so the split never changes a bit.

pub mod float;
pub mod kquants;
pub mod legacy;
pub mod ternary;

use bytemuck::Pod;
use rayon::prelude::*;

use crate::GgmlType;

pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
pub use ternary::{BlockTQ1_0, BlockTQ2_0};

/// Quantization error limits and metrics from ggml's `tests/test-quantize-fns.cpp`,
/// the one place seldon keeps them. The names are ggml's.
pub mod tolerance {
    use crate::GgmlType;

    /// Largest `array_rmse` between ggml's optimised and reference quantizers.
    pub const MAX_QUANTIZATION_REFERENCE_ERROR: f32 = 0.0001;
    /// Largest `array_rmse` of a quantize/dequantize round trip, by default.
    pub const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
    /// Round-trip limit for the ternary types TQ1_0 and TQ2_0.
    pub const MAX_QUANTIZATION_TOTAL_ERROR_TERNARY: f32 = 0.01;
    /// Round-trip limit for Q2_K and IQ2_S.
    pub const MAX_QUANTIZATION_TOTAL_ERROR_2BITS: f32 = 0.0075;
    /// Round-trip limit for Q3_K and IQ3_S.
    pub const MAX_QUANTIZATION_TOTAL_ERROR_3BITS: f32 = 0.0040;
    /// Round-trip limit for IQ3_XXS.
    pub const MAX_QUANTIZATION_TOTAL_ERROR_3BITS_XXS: f32 = 0.0050;
    /// Elements of the test data (ggml's `test_size = 32 * 128`).
    pub const TEST_SIZE: usize = 32 * 128;

    /// The round-trip limit test-quantize-fns applies to `ty`.
    pub fn max_total_error(ty: GgmlType) -> f32 {
        use GgmlType::*;
        match ty {
            TQ1_0 | TQ2_0 => MAX_QUANTIZATION_TOTAL_ERROR_TERNARY,
            Q2_K | IQ2_S => MAX_QUANTIZATION_TOTAL_ERROR_2BITS,
            Q3_K | IQ3_S => MAX_QUANTIZATION_TOTAL_ERROR_3BITS,
            IQ3_XXS => MAX_QUANTIZATION_TOTAL_ERROR_3BITS_XXS,
            _ => MAX_QUANTIZATION_TOTAL_ERROR,
        }
    }

    /// ggml's `generate_data`: `x[i] = 0.1 + 2*cosf(i + offset)`, where the
    /// sum is taken in double (0.1 is a double literal) and stored as float.
    pub fn generate_data(offset: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.1f64 + f64::from(2.0f32 * (i as f32 + offset).cos())) as f32)
            .collect()
    }

    /// ggml's `array_rmse`, which despite its name is `sqrt(sum d^2) / n`
    /// (not divided under the root): squares summed in double, the root
    /// taken in float. Thresholds above are in this unit. Pairs past the
    /// shorter slice are ignored; `n` is the shorter length.
    pub fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| {
                let diff = f64::from(x - y);
                diff * diff
            })
            .sum();
        (sum as f32).sqrt() / n as f32
    }
}

/// Why a (de)quantization call was refused. Lengths are checked before any
/// work, so a refused call leaves the output untouched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// seldon has no CPU (de)quantizer for this type.
    #[error("no CPU (de)quantization for type {ty}")]
    Unsupported {
        /// The type asked for.
        ty: GgmlType,
    },
    /// The output's length does not match the input's: f32 elements for
    /// [`dequantize`], bytes for [`quantize`].
    #[error("{ty}: output holds {actual}, the input needs {expected}")]
    LengthMismatch {
        /// The type being converted.
        ty: GgmlType,
        /// The length the input implies.
        expected: usize,
        /// The output's length.
        actual: usize,
    },
    /// The input is not a whole number of blocks: bytes for [`dequantize`]
    /// (a multiple of the type size), f32 elements for [`quantize`] (a
    /// multiple of the block size).
    #[error("{ty}: input length {len} is not a multiple of {multiple}")]
    NotBlockMultiple {
        /// The type being converted.
        ty: GgmlType,
        /// The input's length.
        len: usize,
        /// What it must be a multiple of.
        multiple: usize,
    },
    /// The output would not fit in memory's address space.
    #[error("{ty}: output for input length {len} overflows usize")]
    TooLarge {
        /// The type being converted.
        ty: GgmlType,
        /// The input's length.
        len: usize,
    },
}

/// Whether [`dequantize`] and [`quantize`] handle `ty`.
pub fn supports(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | Q8_K
            | TQ1_0
            | TQ2_0
    )
}

/// Elements and bytes per block, as `usize`, for a supported type.
fn geometry(ty: GgmlType) -> Result<(usize, usize), QuantError> {
    if !supports(ty) {
        return Err(QuantError::Unsupported { ty });
    }
    // Block sizes are at most 256 and type sizes at most 292.
    Ok((ty.block_size() as usize, ty.type_size() as usize))
}

/// Dequantizes `src`, whole blocks of `ty`, into `dst`, which must hold
/// exactly the elements those blocks encode. Bit-exact with ggml's `to_float`.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let (qk, size) = geometry(ty)?;
    if !src.len().is_multiple_of(size) {
        return Err(QuantError::NotBlockMultiple {
            ty,
            len: src.len(),
            multiple: size,
        });
    }
    let expected = (src.len() / size)
        .checked_mul(qk)
        .ok_or(QuantError::TooLarge { ty, len: src.len() })?;
    if dst.len() != expected {
        return Err(QuantError::LengthMismatch {
            ty,
            expected,
            actual: dst.len(),
        });
    }
    use GgmlType::*;
    match ty {
        F32 => dequant_blocks(src, dst, qk, float::dequantize_row_f32),
        F16 => dequant_blocks(src, dst, qk, float::dequantize_row_f16),
        BF16 => dequant_blocks(src, dst, qk, float::dequantize_row_bf16),
        Q4_0 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q4_0),
        Q4_1 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q4_1),
        Q5_0 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q5_0),
        Q5_1 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q5_1),
        Q8_0 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q8_0),
        Q8_1 => dequant_blocks(src, dst, qk, legacy::dequantize_row_q8_1),
        Q2_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q2_k),
        Q3_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q3_k),
        Q4_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q4_k),
        Q5_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q5_k),
        Q6_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q6_k),
        Q8_K => dequant_blocks(src, dst, qk, kquants::dequantize_row_q8_k),
        TQ1_0 => dequant_blocks(src, dst, qk, ternary::dequantize_row_tq1_0),
        TQ2_0 => dequant_blocks(src, dst, qk, ternary::dequantize_row_tq2_0),
        _ => return Err(QuantError::Unsupported { ty }),
    }
    Ok(())
}

/// Quantizes `src`, a whole number of `ty` blocks' worth of elements, into
/// `dst`, which must be exactly the size of those blocks. Byte-identical with
/// ggml's `ggml_quantize_chunk` without an importance matrix (for the
/// activation types Q8_1/Q8_K, with their `quantize_row_*_ref`).
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    let (qk, size) = geometry(ty)?;
    if !src.len().is_multiple_of(qk) {
        return Err(QuantError::NotBlockMultiple {
            ty,
            len: src.len(),
            multiple: qk,
        });
    }
    let expected = (src.len() / qk)
        .checked_mul(size)
        .ok_or(QuantError::TooLarge { ty, len: src.len() })?;
    if dst.len() != expected {
        return Err(QuantError::LengthMismatch {
            ty,
            expected,
            actual: dst.len(),
        });
    }
    use GgmlType::*;
    match ty {
        F32 => quant_blocks(src, dst, qk, float::quantize_row_f32),
        F16 => quant_blocks(src, dst, qk, float::quantize_row_f16),
        BF16 => quant_blocks(src, dst, qk, float::quantize_row_bf16),
        Q4_0 => quant_blocks(src, dst, qk, legacy::quantize_row_q4_0),
        Q4_1 => quant_blocks(src, dst, qk, legacy::quantize_row_q4_1),
        Q5_0 => quant_blocks(src, dst, qk, legacy::quantize_row_q5_0),
        Q5_1 => quant_blocks(src, dst, qk, legacy::quantize_row_q5_1),
        Q8_0 => quant_blocks(src, dst, qk, legacy::quantize_row_q8_0),
        Q8_1 => quant_blocks(src, dst, qk, legacy::quantize_row_q8_1),
        Q2_K => quant_blocks(src, dst, qk, kquants::quantize_row_q2_k),
        Q3_K => quant_blocks(src, dst, qk, kquants::quantize_row_q3_k),
        Q4_K => quant_blocks(src, dst, qk, kquants::quantize_row_q4_k),
        Q5_K => quant_blocks(src, dst, qk, kquants::quantize_row_q5_k),
        Q6_K => quant_blocks(src, dst, qk, kquants::quantize_row_q6_k),
        Q8_K => quant_blocks(src, dst, qk, kquants::quantize_row_q8_k),
        TQ1_0 => quant_blocks(src, dst, qk, ternary::quantize_row_tq1_0),
        TQ2_0 => quant_blocks(src, dst, qk, ternary::quantize_row_tq2_0),
        _ => return Err(QuantError::Unsupported { ty }),
    }
    Ok(())
}

/// [`dequantize`] into a new vector sized from `src`.
pub fn dequantize_to_vec(ty: GgmlType, src: &[u8]) -> Result<Vec<f32>, QuantError> {
    let (qk, size) = geometry(ty)?;
    let n = (src.len() / size)
        .checked_mul(qk)
        .ok_or(QuantError::TooLarge { ty, len: src.len() })?;
    let mut out = vec![0.0f32; n];
    dequantize(ty, src, &mut out)?;
    Ok(out)
}

/// [`quantize`] into a new byte vector sized from `src`.
pub fn quantize_to_vec(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>, QuantError> {
    let (qk, size) = geometry(ty)?;
    let n = (src.len() / qk)
        .checked_mul(size)
        .ok_or(QuantError::TooLarge { ty, len: src.len() })?;
    let mut out = vec![0u8; n];
    quantize(ty, src, &mut out)?;
    Ok(out)
}

/// Elements handed to one rayon task: large enough that scheduling costs
/// vanish, small enough that a 2-core machine gets both cores busy on a
/// 256x256 tensor and an unaligned input is copied in cache-sized pieces.
const ELEMENTS_PER_TASK: usize = 1 << 15;

/// Runs `row` over `src` split into tasks of whole blocks. File bytes may be
/// misaligned for `B` (an f16 at an odd offset); then each piece is copied
/// into an aligned buffer first.
fn dequant_blocks<B: Pod + Send + Sync>(
    src: &[u8],
    dst: &mut [f32],
    qk: usize,
    row: fn(&[B], &mut [f32]),
) {
    let blocks_per_task = (ELEMENTS_PER_TASK / qk).max(1);
    let run = |s: &[u8], d: &mut [f32]| match bytemuck::try_cast_slice::<u8, B>(s) {
        Ok(blocks) => row(blocks, d),
        Err(_) => {
            let mut blocks = vec![B::zeroed(); s.len() / size_of::<B>()];
            bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(s);
            row(&blocks, d);
        }
    };
    if dst.len() <= ELEMENTS_PER_TASK {
        run(src, dst);
        return;
    }
    src.par_chunks(blocks_per_task * size_of::<B>())
        .zip(dst.par_chunks_mut(blocks_per_task * qk))
        .for_each(|(s, d)| run(s, d));
}

/// The quantizing counterpart of [`dequant_blocks`].
fn quant_blocks<B: Pod + Send + Sync>(
    src: &[f32],
    dst: &mut [u8],
    qk: usize,
    row: fn(&[f32], &mut [B]),
) {
    let blocks_per_task = (ELEMENTS_PER_TASK / qk).max(1);
    let run = |s: &[f32], d: &mut [u8]| match bytemuck::try_cast_slice_mut::<u8, B>(d) {
        Ok(blocks) => row(s, blocks),
        Err(_) => {
            let mut blocks = vec![B::zeroed(); d.len() / size_of::<B>()];
            row(s, &mut blocks);
            d.copy_from_slice(bytemuck::cast_slice(&blocks));
        }
    };
    if src.len() <= ELEMENTS_PER_TASK {
        run(src, dst);
        return;
    }
    src.par_chunks(blocks_per_task * qk)
        .zip(dst.par_chunks_mut(blocks_per_task * size_of::<B>()))
        .for_each(|(s, d)| run(s, d));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ALL_TYPES;

    /// Deterministic pseudo-random values in [-3, 3).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 8) as f32 / (1u32 << 24) as f32 * 6.0 - 3.0
            })
            .collect()
    }

    #[test]
    fn lengths_are_checked_before_any_work() {
        let ty = GgmlType::Q8_0;
        let mut out = vec![7.0f32; 32];
        assert_eq!(
            dequantize(ty, &[0u8; 35], &mut out),
            Err(QuantError::NotBlockMultiple {
                ty,
                len: 35,
                multiple: 34
            })
        );
        assert_eq!(
            dequantize(ty, &[0u8; 68], &mut out),
            Err(QuantError::LengthMismatch {
                ty,
                expected: 64,
                actual: 32
            })
        );
        assert!(out.iter().all(|v| *v == 7.0));
        let mut bytes = vec![0u8; 34];
        assert_eq!(
            quantize(ty, &[0.0; 33], &mut bytes),
            Err(QuantError::NotBlockMultiple {
                ty,
                len: 33,
                multiple: 32
            })
        );
        assert_eq!(
            quantize(ty, &[0.0; 64], &mut bytes),
            Err(QuantError::LengthMismatch {
                ty,
                expected: 68,
                actual: 34
            })
        );
        assert_eq!(
            dequantize_to_vec(ty, &[0u8; 33]).map(|v| v.len()),
            Err(QuantError::NotBlockMultiple {
                ty,
                len: 33,
                multiple: 34
            })
        );
        assert_eq!(dequantize_to_vec(ty, &[]), Ok(vec![]));
    }

    #[test]
    fn unsupported_types_are_refused() {
        for ty in ALL_TYPES {
            let mut out = vec![0.0f32; 256];
            let src = vec![0u8; ty.type_size() as usize];
            let deq = dequantize_to_vec(ty, &src);
            let q = quantize_to_vec(ty, &out);
            if supports(ty) {
                assert_eq!(deq.map(|v| v.len()), Ok(ty.block_size() as usize), "{ty}");
                assert_eq!(
                    q.map(|v| v.len()),
                    Ok(256 / ty.block_size() as usize * src.len()),
                    "{ty}"
                );
            } else {
                assert_eq!(deq, Err(QuantError::Unsupported { ty }));
                assert_eq!(q, Err(QuantError::Unsupported { ty }));
                assert_eq!(
                    dequantize(ty, &src, &mut out),
                    Err(QuantError::Unsupported { ty })
                );
            }
        }
        assert!(!supports(GgmlType::IQ4_NL) && supports(GgmlType::TQ1_0));
    }

    #[test]
    fn misaligned_and_parallel_paths_agree_with_the_plain_row() {
        // 4 tasks' worth plus a partial one, so rayon splits the work.
        let n = 4 * ELEMENTS_PER_TASK + 512;
        let x = values(n, 7);
        for ty in [
            GgmlType::F16,
            GgmlType::Q4_1,
            GgmlType::Q8_0,
            GgmlType::TQ1_0,
            GgmlType::Q4_K,
        ] {
            let bytes = quantize_to_vec(ty, &x).unwrap();
            // Serial, through the typed row function on a small prefix.
            let serial = dequantize_to_vec(ty, &bytes[..ty.type_size() as usize * 4]).unwrap();
            let whole = dequantize_to_vec(ty, &bytes).unwrap();
            assert_eq!(&whole[..serial.len()], &serial[..], "{ty}");
            // One byte off alignment: the copies must give the same bits.
            let mut shifted = vec![0u8; bytes.len() + 1];
            shifted[1..].copy_from_slice(&bytes);
            let mut out = vec![0.0f32; n];
            dequantize(ty, &shifted[1..], &mut out).unwrap();
            assert!(
                out.iter()
                    .zip(&whole)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{ty}"
            );
            let mut requant = vec![0u8; bytes.len() + 1];
            quantize(ty, &x, &mut requant[1..]).unwrap();
            assert_eq!(&requant[1..], &bytes[..], "{ty}");
            // Quantizing block by block gives the same bytes as the parallel run.
            let qk = ty.block_size() as usize;
            let per_block: Vec<u8> = x
                .chunks(qk)
                .flat_map(|c| quantize_to_vec(ty, c).unwrap())
                .collect();
            assert_eq!(per_block, bytes, "{ty}");
        }
    }

    #[test]
    fn metric_is_ggml_array_rmse() {
        // sqrt(3^2 + 4^2) / 2, not sqrt((9 + 16) / 2).
        assert_eq!(tolerance::array_rmse(&[3.0, 4.0], &[0.0, 0.0]), 2.5);
        let data = tolerance::generate_data(0.0, 3);
        assert_eq!(data[0], 2.1);
        assert_eq!(data[1], (0.1f64 + f64::from(2.0 * 1.0f32.cos())) as f32);
        assert_eq!(tolerance::max_total_error(GgmlType::TQ2_0), 0.01);
        assert_eq!(tolerance::max_total_error(GgmlType::Q3_K), 0.004);
        assert_eq!(tolerance::max_total_error(GgmlType::Q4_0), 0.002);
    }
}
