//! [`GgufWriter`]: builds GGUF files that [`GgufFile`](super::GgufFile) and
//! llama.cpp read back.
//!
//! Everything is validated when it is added, by the same rules the reader
//! applies, so writing itself can only fail on I/O.

use std::collections::HashSet;
use std::convert::Infallible;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::reader::check_alignment;
use super::tensor::{self, InfoOffsets};
use super::{
    Array, DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgufError, KEY_ALIGNMENT, MAX_ARRAY_DEPTH,
    MAX_ARRAY_LEN, MAX_KEY_LEN, MAX_STRING_LEN, Value,
};
use crate::GgmlType;

/// Zeros to copy padding from; padding never exceeds the 1 MiB alignment cap,
/// and is written in pieces of this size.
const ZEROS: [u8; 4096] = [0; 4096];

/// A tensor waiting to be written.
#[derive(Debug)]
struct PendingTensor {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes a GGUF file. Tensor data is laid
/// out in the order the tensors were added, each at a multiple of the
/// alignment, as llama.cpp expects.
#[derive(Debug)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// A writer for a version 3 file with the default alignment (32) until
    /// `general.alignment` is added.
    pub fn new() -> Self {
        Self {
            version: GGUF_VERSION,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// A writer for version 2 or 3 (same layout; 2 is for compatibility tests).
    pub fn with_version(version: u32) -> Result<Self, GgufError> {
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                version,
                hint: "; the writer writes versions 2 and 3",
            });
        }
        Ok(Self {
            version,
            ..Self::new()
        })
    }

    /// The version that will be written.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment that will be used.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Adds a key/value pair. `general.alignment` must be a u32 power of two of
    /// at most 1 MiB, and sets the alignment.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: Value) -> Result<(), GgufError> {
        let key = key.into();
        let key_len = key.len() as u64;
        if key_len > MAX_KEY_LEN {
            return Err(GgufError::StringTooLong {
                field: "key".to_owned(),
                offset: 0,
                len: key_len,
                max: MAX_KEY_LEN,
            });
        }
        if self.keys.contains(&key) {
            return Err(GgufError::DuplicateKey {
                key,
                offset: 0,
                first_offset: 0,
            });
        }
        check_value(&key, &value, 0)?;
        if key == KEY_ALIGNMENT {
            self.alignment = check_alignment(&value, 0)?;
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor. `dims` are in ggml order (ne0, the row length, first);
    /// `data` must be exactly the bytes `ty` takes for that many elements.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<(), GgufError> {
        let name = name.into();
        tensor::check_name_len(self.tensors.len() as u64, 0, name.len() as u64)?;
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensorName {
                name,
                offset: 0,
                first_offset: 0,
            });
        }
        let at = InfoOffsets {
            n_dims: 0,
            dims: 0,
            ty: 0,
        };
        let (_, n_bytes) = tensor::check_shape(&name, dims, ty, &at)?;
        if data.len() as u64 != n_bytes {
            return Err(GgufError::TensorDataLength {
                tensor: name,
                len: data.len() as u64,
                expected: n_bytes,
            });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            ty,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    /// Writes the file to `w`.
    pub fn write(&self, w: &mut impl Write) -> Result<(), GgufError> {
        self.for_each_chunk(|chunk| w.write_all(chunk))
            .map_err(GgufError::Write)
    }

    /// Writes the file to `path`, replacing what is there.
    pub fn write_to_path(&self, path: &Path) -> Result<(), GgufError> {
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut w = BufWriter::new(File::create(path).map_err(io_err)?);
        self.for_each_chunk(|chunk| w.write_all(chunk))
            .and_then(|()| w.flush())
            .map_err(io_err)
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let Ok(()) = self.for_each_chunk::<Infallible>(|chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        });
        out
    }

    /// Feeds the file to `sink` in order: the header, then each tensor's
    /// padding and data, then the final padding.
    fn for_each_chunk<E>(&self, mut sink: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let offsets = self.data_offsets();
        let mut pos = self.header(&offsets, &mut sink)?;
        // Offsets are relative to the data section, which starts aligned.
        let mut data_pos = 0u64;
        for (t, &offset) in self.tensors.iter().zip(&offsets) {
            pad(&mut sink, offset - data_pos)?;
            sink(&t.data)?;
            data_pos = offset + t.data.len() as u64;
        }
        pos += data_pos;
        pad(&mut sink, pos.next_multiple_of(self.alignment) - pos)
    }

    /// Each tensor's data offset: in add order, each aligned.
    fn data_offsets(&self) -> Vec<u64> {
        let mut next = 0u64;
        self.tensors
            .iter()
            .map(|t| {
                let offset = next.next_multiple_of(self.alignment);
                next = offset + t.data.len() as u64;
                offset
            })
            .collect()
    }

    /// Writes everything up to the data section, padding included, and returns
    /// its length.
    fn header<E>(
        &self,
        offsets: &[u64],
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, value);
        }
        for (t, offset) in self.tensors.iter().zip(offsets) {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let len = out.len() as u64;
        let padded = len.next_multiple_of(self.alignment);
        sink(&out)?;
        pad(sink, padded - len)?;
        Ok(padded)
    }
}

fn pad<E>(sink: &mut impl FnMut(&[u8]) -> Result<(), E>, mut n: u64) -> Result<(), E> {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64);
        sink(&ZEROS[..k as usize])?;
        n -= k;
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => {
            out.extend_from_slice(&a.elem_type.id().to_le_bytes());
            out.extend_from_slice(&(a.items.len() as u64).to_le_bytes());
            for item in &a.items {
                put_value(out, item);
            }
        }
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
    }
}

/// Applies the reader's caps to a value so that the writer never produces a
/// file the reader rejects; `depth` is the nesting depth of the array holding
/// `value` (0 at the top level).
fn check_value(key: &str, value: &Value, depth: usize) -> Result<(), GgufError> {
    match value {
        Value::String(s) if s.len() as u64 > MAX_STRING_LEN => Err(GgufError::StringTooLong {
            field: key.to_owned(),
            offset: 0,
            len: s.len() as u64,
            max: MAX_STRING_LEN,
        }),
        Value::Array(a) => check_array(key, a, depth + 1),
        _ => Ok(()),
    }
}

fn check_array(key: &str, a: &Array, depth: usize) -> Result<(), GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            field: key.to_owned(),
            offset: 0,
            depth,
            max: MAX_ARRAY_DEPTH,
        });
    }
    if a.items.len() as u64 > MAX_ARRAY_LEN {
        return Err(GgufError::ArrayTooLong {
            field: key.to_owned(),
            offset: 0,
            count: a.items.len() as u64,
            max: MAX_ARRAY_LEN,
        });
    }
    for (index, item) in a.items.iter().enumerate() {
        let found = item.value_type();
        if found != a.elem_type {
            return Err(GgufError::MixedArray {
                field: key.to_owned(),
                index,
                expected: a.elem_type,
                found,
            });
        }
        check_value(key, item, depth)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_rejects_what_the_reader_would() {
        let mut w = GgufWriter::new();
        w.add_metadata("a", Value::U8(1)).unwrap();
        assert!(matches!(
            w.add_metadata("a", Value::U8(2)),
            Err(GgufError::DuplicateKey { .. })
        ));
        assert!(matches!(
            w.add_metadata(KEY_ALIGNMENT, Value::U64(64)),
            Err(GgufError::AlignmentWrongType { .. })
        ));
        let mixed = Array::new(
            super::super::ValueType::U8,
            vec![Value::U8(1), Value::I8(1)],
        );
        assert!(matches!(
            w.add_metadata("m", Value::Array(mixed)),
            Err(GgufError::MixedArray { index: 1, .. })
        ));
        assert!(matches!(
            w.add_tensor("t", GgmlType::F32, &[4], vec![0; 15]),
            Err(GgufError::TensorDataLength {
                len: 15,
                expected: 16,
                ..
            })
        ));
        assert!(matches!(
            w.add_tensor("q", GgmlType::Q4_0, &[16], vec![0; 9]),
            Err(GgufError::RowNotBlockMultiple {
                ne0: 16,
                block_size: 32,
                ..
            })
        ));
        assert!(matches!(
            GgufWriter::with_version(1),
            Err(GgufError::UnsupportedVersion { version: 1, .. })
        ));
    }

    #[test]
    fn data_is_aligned_in_add_order() {
        let mut w = GgufWriter::new();
        w.add_metadata(KEY_ALIGNMENT, Value::U32(64)).unwrap();
        w.add_tensor("a", GgmlType::F32, &[3], vec![1; 12]).unwrap();
        w.add_tensor("b", GgmlType::F16, &[5], vec![2; 10]).unwrap();
        assert_eq!(w.data_offsets(), vec![0, 64]);
        let bytes = w.to_bytes();
        assert!(bytes.len().is_multiple_of(64));
    }
}
