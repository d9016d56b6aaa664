//! The GGUF error type: one variant per way a file can be malformed.
//!
//! Offsets are absolute byte offsets into the file of the field that broke a
//! rule. Errors raised by [`GgufWriter`](super::GgufWriter) before any file
//! exists report offset 0.

use std::io;
use std::path::PathBuf;

use super::ValueType;
use crate::GgmlType;

/// Errors from reading or writing GGUF.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, mapped, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing to a caller's writer failed.
    #[error("writing GGUF failed: {0}")]
    Write(#[source] io::Error),
    /// The file has no bytes at all.
    #[error("empty file: a GGUF file starts with the 4-byte magic \"GGUF\"")]
    Empty,
    /// The file ends inside a field.
    #[error("truncated file: {field} at offset {offset} needs {needed} bytes, {available} left")]
    Truncated {
        /// What was being read.
        field: String,
        /// Where it starts.
        offset: u64,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The first four bytes are not "GGUF".
    #[error("bad magic at offset 0: found {found:02x?}, expected \"GGUF\" [47, 47, 55, 46]")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// The version is not 2 or 3.
    #[error(
        "unsupported GGUF version {version} (0x{version:08x}) at offset 4: supported are 2 and 3{hint}"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u32,
        /// Why, when there is more to say (v1, big-endian).
        hint: &'static str,
    },
    /// The tensor or key/value count cannot fit in the bytes left.
    #[error(
        "{field} {count} at offset {offset} is too large: at most {max} fit in the {available} bytes left"
    )]
    CountTooLarge {
        /// "tensor_count" or "kv_count".
        field: &'static str,
        /// Where the count is.
        offset: u64,
        /// The count found.
        count: u64,
        /// The most that could fit.
        max: u64,
        /// Bytes left after the count.
        available: u64,
    },
    /// A string is longer than its cap.
    #[error("{field}: string length {len} at offset {offset} is over the cap of {max} bytes")]
    StringTooLong {
        /// Which string (a key, or the key whose value this is).
        field: String,
        /// Where its length is.
        offset: u64,
        /// The length found.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A string runs past the end of the file.
    #[error(
        "{field}: string length {len} at offset {offset} runs past the end of the file ({available} bytes left)"
    )]
    StringPastEnd {
        /// Which string.
        field: String,
        /// Where its length is.
        offset: u64,
        /// The length found.
        len: u64,
        /// Bytes left after the length.
        available: u64,
    },
    /// A key, string value or tensor name is not valid UTF-8.
    #[error(
        "{field}: string at offset {offset} is not valid UTF-8: bad byte 0x{byte:02x} at offset {bad_offset}"
    )]
    InvalidUtf8 {
        /// Which string.
        field: String,
        /// Where its bytes start.
        offset: u64,
        /// Where the first invalid byte is.
        bad_offset: u64,
        /// That byte.
        byte: u8,
    },
    /// An array has more elements than the cap.
    #[error("{field}: array count {count} at offset {offset} is over the cap of {max}")]
    ArrayTooLong {
        /// The key whose value this is.
        field: String,
        /// Where the count is.
        offset: u64,
        /// The count found.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// An array's elements cannot fit in the bytes left.
    #[error(
        "{field}: array of {count} {elem_type} at offset {offset} needs at least {min_elem_size} bytes each, past the end of the file ({available} bytes left)"
    )]
    ArrayPastEnd {
        /// The key whose value this is.
        field: String,
        /// Where the count is.
        offset: u64,
        /// The count found.
        count: u64,
        /// The element type.
        elem_type: ValueType,
        /// The fewest bytes one element takes.
        min_elem_size: u64,
        /// Bytes left after the count.
        available: u64,
    },
    /// A value type id is not one GGUF defines.
    #[error("{field}: unknown value type {value} at offset {offset} (largest known id is {max})")]
    UnknownValueType {
        /// The key whose value this is.
        field: String,
        /// Where the type id is.
        offset: u64,
        /// The id found.
        value: u32,
        /// The largest valid id.
        max: u32,
    },
    /// Arrays are nested deeper than the cap.
    #[error("{field}: array at offset {offset} is nested {depth} deep, over the cap of {max}")]
    NestingTooDeep {
        /// The key whose value this is.
        field: String,
        /// Where the nested array's element type is.
        offset: u64,
        /// Its depth (an array of scalars has depth 1).
        depth: usize,
        /// The cap.
        max: usize,
    },
    /// A bool byte is neither 0 nor 1 (the spec calls anything else invalid).
    #[error("{field}: bool at offset {offset} has byte {value}, expected 0 or 1")]
    InvalidBool {
        /// The key whose value this is.
        field: String,
        /// Where the byte is.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// A key appears twice.
    #[error("duplicate key {key:?} at offset {offset} (first at offset {first_offset})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where the second copy is.
        offset: u64,
        /// Where the first copy is.
        first_offset: u64,
    },
    /// `general.alignment` is not a u32.
    #[error("general.alignment at offset {offset} has type {found}, expected u32")]
    AlignmentWrongType {
        /// Where the value is.
        offset: u64,
        /// Its type.
        found: ValueType,
    },
    /// `general.alignment` is zero.
    #[error("general.alignment at offset {offset} is 0, expected a power of two")]
    AlignmentZero {
        /// Where the value is.
        offset: u64,
    },
    /// `general.alignment` is not a power of two.
    #[error("general.alignment {value} at offset {offset} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// Where the value is.
        offset: u64,
        /// The value found.
        value: u64,
    },
    /// `general.alignment` is over the cap.
    #[error("general.alignment {value} at offset {offset} is over the cap of {max}")]
    AlignmentTooLarge {
        /// Where the value is.
        offset: u64,
        /// The value found.
        value: u64,
        /// The cap.
        max: u64,
    },
    /// A tensor name is empty.
    #[error("tensor {index}: empty name at offset {offset}")]
    TensorNameEmpty {
        /// The tensor's index in the file.
        index: u64,
        /// Where its name is.
        offset: u64,
    },
    /// A tensor name is 64 bytes or longer (ggml's limit, NUL included).
    #[error("tensor {index}: name length {len} at offset {offset} is over the cap of {max} bytes")]
    TensorNameTooLong {
        /// The tensor's index in the file.
        index: u64,
        /// Where its name is.
        offset: u64,
        /// The length found.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Two tensors share a name.
    #[error("duplicate tensor name {name:?} at offset {offset} (first at offset {first_offset})")]
    DuplicateTensorName {
        /// The name.
        name: String,
        /// Where the second one is.
        offset: u64,
        /// Where the first one is.
        first_offset: u64,
    },
    /// A tensor has no dimensions or more than ggml's four.
    #[error("tensor {tensor:?}: {n_dims} dimensions at offset {offset}, expected 1 to {max}")]
    BadDimCount {
        /// The tensor.
        tensor: String,
        /// Where the count is.
        offset: u64,
        /// The count found.
        n_dims: u32,
        /// The most allowed.
        max: u32,
    },
    /// A tensor has a dimension of zero.
    #[error("tensor {tensor:?}: dimension {axis} at offset {offset} is 0")]
    ZeroDimension {
        /// The tensor.
        tensor: String,
        /// Where the dimension is.
        offset: u64,
        /// Which dimension (0 = ne0).
        axis: usize,
    },
    /// A tensor's element count is over what ggml can count.
    #[error(
        "tensor {tensor:?}: dimensions {dims:?} at offset {offset} give more than {max} elements"
    )]
    ElementCountOverflow {
        /// The tensor.
        tensor: String,
        /// Where the dimensions are.
        offset: u64,
        /// The dimensions found.
        dims: Vec<u64>,
        /// The most elements allowed.
        max: u64,
    },
    /// A tensor's ggml type id is unknown.
    #[error("tensor {tensor:?}: unknown ggml type {id} at offset {offset}")]
    UnknownGgmlType {
        /// The tensor.
        tensor: String,
        /// Where the type id is.
        offset: u64,
        /// The id found.
        id: u32,
    },
    /// A tensor's rows are not whole blocks of its type.
    #[error(
        "tensor {tensor:?}: row length ne0={ne0} at offset {offset} is not a multiple of {ty}'s block size {block_size}"
    )]
    RowNotBlockMultiple {
        /// The tensor.
        tensor: String,
        /// Where ne0 is.
        offset: u64,
        /// The row length.
        ne0: u64,
        /// The type.
        ty: GgmlType,
        /// Its block size.
        block_size: u64,
    },
    /// A tensor's byte size does not fit a u64.
    #[error(
        "tensor {tensor:?}: {n_elements} elements of {ty} at offset {offset} take more than {max} bytes"
    )]
    ByteSizeOverflow {
        /// The tensor.
        tensor: String,
        /// Where its type id is.
        offset: u64,
        /// Its element count.
        n_elements: u64,
        /// Its type.
        ty: GgmlType,
        /// The largest byte size representable.
        max: u64,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    #[error(
        "tensor {tensor:?}: data offset {value} at offset {offset} is not a multiple of the alignment {alignment}"
    )]
    TensorMisaligned {
        /// The tensor.
        tensor: String,
        /// Where its data offset is.
        offset: u64,
        /// The data offset found (relative to the data section).
        value: u64,
        /// The alignment.
        alignment: u64,
    },
    /// Two tensors' data overlap.
    #[error(
        "tensor {tensor:?}: data at file offset {offset} overlaps tensor {other:?}, which ends at {other_end}"
    )]
    TensorOverlap {
        /// The later tensor (by data offset).
        tensor: String,
        /// Its absolute data start.
        offset: u64,
        /// The tensor it overlaps.
        other: String,
        /// The absolute end of the other tensor's data.
        other_end: u64,
    },
    /// A tensor's data runs past the end of the file.
    #[error(
        "tensor {tensor:?}: data from file offset {offset} to {end} runs past the end of the file ({file_len} bytes)"
    )]
    TensorPastEnd {
        /// The tensor.
        tensor: String,
        /// Its absolute data start (saturated at u64::MAX).
        offset: u64,
        /// Its absolute data end (saturated at u64::MAX).
        end: u64,
        /// The file length.
        file_len: u64,
    },
    /// The writer was given an array whose items are not all of its type.
    #[error("{field}: array of {expected} has an item {index} of type {found}")]
    MixedArray {
        /// The key whose value this is.
        field: String,
        /// The first item of the wrong type.
        index: usize,
        /// The declared element type.
        expected: ValueType,
        /// That item's type.
        found: ValueType,
    },
    /// The writer was given tensor data of the wrong length.
    #[error("tensor {tensor:?}: {len} bytes of data, its shape and type need {expected}")]
    TensorDataLength {
        /// The tensor.
        tensor: String,
        /// The bytes given.
        len: u64,
        /// The bytes its shape and type take.
        expected: u64,
    },
}
