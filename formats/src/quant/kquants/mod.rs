//! k-quants: ggml's 256-weight super-block formats Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
//! and the Q8_K activation type.
//!
//! Each submodule holds one `#[repr(C)]` block layout (byte-identical to
//! `block_qN_K` in ggml's `ggml-common.h`), its dequantizer and its reference
//! quantizer. Dequantization is bit-exact with ggml's `dequantize_row_*`;
//! quantization mirrors `quantize_row_*_ref` (what `ggml_quantize_chunk` does
//! without an importance matrix) operation by operation, so that it produces
//! the same bytes as a non-FMA build of ggml.

mod helpers;
pub mod q2_k;
pub mod q3_k;
pub mod q4_k;
pub mod q5_k;
pub mod q6_k;
pub mod q8_k;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_golden;
#[cfg(test)]
mod tests_layout;

pub use helpers::{get_scale_min_k4, nearest_int};
pub use q2_k::{BlockQ2K, dequantize_row_q2_k, quantize_row_q2_k};
pub use q3_k::{BlockQ3K, dequantize_row_q3_k, quantize_row_q3_k, unpack_q3_k_scales};
pub use q4_k::{BlockQ4K, dequantize_row_q4_k, quantize_row_q4_k};
pub use q5_k::{BlockQ5K, dequantize_row_q5_k, quantize_row_q5_k};
pub use q6_k::{BlockQ6K, dequantize_row_q6_k, quantize_row_q6_k};
pub use q8_k::{BlockQ8K, dequantize_row_q8_k, quantize_row_q8_k};

/// Weights per k-quant super-block (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K (ggml's `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;
