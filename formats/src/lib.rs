//! seldon-formats: bytes on disk.
//!
//! GGUF reading and writing, safetensors loading, and the ggml quantization
//! block layouts with their CPU dequantizers and quantizers. This crate has no
//! GPU dependency; everything above it (kernels, engine) reads weights through it.

pub mod ggml_type;
pub mod gguf;
pub mod quant;
pub mod safetensors;

pub use ggml_type::{ALL_TYPES, GgmlType};
