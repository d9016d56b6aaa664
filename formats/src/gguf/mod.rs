//! GGUF v2/v3 reader (on memmap2) and writer.
//!
//! The layout follows ggml's `docs/gguf.md`: the magic "GGUF", a u32 version,
//! u64 tensor and key/value counts, the key/value pairs, the tensor infos, then
//! padding to `general.alignment` and the tensor data. Only little-endian files
//! are read.
//!
//! Every file is treated as hostile. Nothing is allocated from a count read
//! from the file before that count is checked against a cap and against the
//! bytes left (each element takes at least its minimum encoded size), so a
//! small file can only make the reader allocate a small multiple of its own
//! size. Each way a file can be malformed has its own [`GgufError`] variant
//! that names the field, the offset, the value found and the limit broken.

mod cursor;
mod error;
mod reader;
mod tensor;
mod value;
mod writer;

pub use error::GgufError;
pub use reader::GgufFile;
pub use tensor::TensorInfo;
pub use value::{ALL_VALUE_TYPES, Array, Value, ValueType};
pub use writer::GgufWriter;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// The version [`GgufWriter::new`] writes. Versions 2 and 3 share one layout
/// (3 only allowed big-endian files, which seldon does not read).
pub const GGUF_VERSION: u32 = 3;

/// The key that sets the data alignment; it must hold a u32.
pub const KEY_ALIGNMENT: &str = "general.alignment";

/// The key naming the model architecture ("llama", "qwen2", ...).
pub const KEY_ARCHITECTURE: &str = "general.architecture";

/// Data alignment when `general.alignment` is absent (ggml's default).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Largest accepted `general.alignment`. ggml never uses more than a page;
/// a huge value would only serve to push the data section out of bounds.
pub const MAX_ALIGNMENT: u64 = 1 << 20;

/// Longest key in bytes (the GGUF spec's 2^16-1).
pub const MAX_KEY_LEN: u64 = 65_535;

/// Longest string value in bytes. Chat templates, the largest strings real
/// models carry, are tens of KiB; 16 MiB leaves ample room.
pub const MAX_STRING_LEN: u64 = 16 << 20;

/// Most elements in one array. Vocabularies hold ~50k-260k tokens and merge
/// lists up to ~300k-1M entries; 16 Mi elements leaves room for any of them.
pub const MAX_ARRAY_LEN: u64 = 16 << 20;

/// Deepest array nesting (an array of scalars has depth 1). Real files use
/// depth 1; the cap keeps the recursive reader's stack bounded.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Longest tensor name in bytes: ggml's `GGML_MAX_NAME` is 64 including the
/// terminating NUL.
pub const MAX_TENSOR_NAME_LEN: u64 = 63;

/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Largest element count of a tensor: ggml counts elements in an `int64_t`.
pub const MAX_ELEMENTS: u64 = i64::MAX as u64;
