//! seldon-formats: bytes on disk.
//!
//! GGUF reading and writing, safetensors loading, and the ggml quantization
//! block layouts with their CPU dequantizers and quantizers. This crate has no
//! GPU dependency; everything above it (kernels, engine) reads weights through it.
