//! safetensors loading over an mmap.
//!
//! The header is parsed by the `safetensors` crate (the reference
//! implementation); this module adds the mmap, absolute file offsets, error
//! messages that name the file, and f32 conversion for the float types seldon
//! accepts as weights (F32, F16, BF16). Tensors of other dtypes are listed so
//! that tools can show them, but asking for their values as f32 is an error.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{SafeTensorError, SafeTensors};

use crate::GgmlType;

pub use safetensors::Dtype;

/// Bytes of the little-endian u64 header length that opens every safetensors file.
const HEADER_LEN_BYTES: usize = 8;

/// Errors from opening or reading a safetensors file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file could not be opened, inspected or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is shorter than the 8-byte header length.
    #[error("{path}: not a safetensors file: {len} bytes, shorter than the 8-byte header length")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The header length points past the end of the file.
    #[error("{path}: header length {header_len} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd {
        /// The file.
        path: PathBuf,
        /// The header length as stored in the first 8 bytes.
        header_len: u64,
        /// The file length in bytes.
        file_len: u64,
    },
    /// The `safetensors` crate rejected the header or the layout it describes.
    #[error("{path}: invalid safetensors file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The crate's error.
        #[source]
        source: SafeTensorError,
    },
    /// No tensor of this name is in the file.
    #[error("{path}: no tensor named {name:?}")]
    TensorNotFound {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// The tensor's dtype cannot be used as weights (only F32, F16 and BF16 can).
    #[error("{path}: tensor {name:?} has dtype {dtype}, but only F32, F16 and BF16 are supported")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype as safetensors spells it.
        dtype: Dtype,
    },
}

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsTensor {
    /// The tensor name as stored in the header.
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The shape in safetensors (row-major, outermost first) order.
    pub shape: Vec<u64>,
    /// The absolute byte offset of the first element in the file.
    pub offset: u64,
    /// The number of bytes of data.
    pub n_bytes: u64,
}

impl SafetensorsTensor {
    /// Whether seldon accepts this dtype for weights (F32, F16, BF16).
    pub fn is_supported(&self) -> bool {
        dtype_is_supported(self.dtype)
    }

    /// The matching ggml type for the supported float dtypes, `None` otherwise.
    pub fn ggml_type(&self) -> Option<GgmlType> {
        match self.dtype {
            Dtype::F32 => Some(GgmlType::F32),
            Dtype::F16 => Some(GgmlType::F16),
            Dtype::BF16 => Some(GgmlType::BF16),
            _ => None,
        }
    }

    /// The shape in ggml order (innermost dimension first), i.e. reversed.
    pub fn ggml_dims(&self) -> Vec<u64> {
        self.shape.iter().rev().copied().collect()
    }

    /// The number of elements (1 for a scalar with an empty shape).
    pub fn n_elements(&self) -> u64 {
        // The crate already checked that the product fits a usize, so it fits a u64.
        self.shape.iter().product()
    }
}

/// Whether seldon accepts this dtype for weights.
pub fn dtype_is_supported(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// A memory-mapped safetensors file with its parsed header.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_offset: u64,
    tensors: Vec<SafetensorsTensor>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps `path` and parses its header, checking every tensor's extent.
    pub fn open(path: &Path) -> Result<Self, SafetensorsError> {
        let io_err = |source| SafetensorsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        // Checked before mapping: an empty file cannot be mapped on every
        // platform, and the crate reports both cases below without the numbers.
        if file_len < HEADER_LEN_BYTES as u64 {
            return Err(SafetensorsError::Truncated {
                path: path.to_path_buf(),
                len: file_len,
            });
        }
        // SAFETY: the map is read-only and private to this value. Another
        // process truncating or rewriting the file while it is mapped is outside
        // what any mmap-based loader can defend against; every offset used below
        // was checked against the length of this mapping.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        Self::from_mmap(path, mmap)
    }

    fn from_mmap(path: &Path, mmap: Mmap) -> Result<Self, SafetensorsError> {
        let file_len = mmap.len() as u64;
        let mut len_bytes = [0u8; HEADER_LEN_BYTES];
        if let Some(b) = mmap.get(..HEADER_LEN_BYTES) {
            len_bytes.copy_from_slice(b);
        }
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > file_len.saturating_sub(HEADER_LEN_BYTES as u64) {
            return Err(SafetensorsError::HeaderPastEnd {
                path: path.to_path_buf(),
                header_len,
                file_len,
            });
        }
        let (n, meta) =
            SafeTensors::read_metadata(&mmap).map_err(|source| SafetensorsError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let data_offset = (HEADER_LEN_BYTES + n) as u64;

        let mut tensors: Vec<SafetensorsTensor> = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| SafetensorsTensor {
                name,
                dtype: info.dtype,
                shape: info.shape.iter().map(|&d| d as u64).collect(),
                offset: data_offset + info.data_offsets.0 as u64,
                n_bytes: (info.data_offsets.1 - info.data_offsets.0) as u64,
            })
            .collect();
        // File order, with the name as a tie-break for zero-sized tensors, so
        // listings are stable across runs (the crate hands out a HashMap).
        tensors.sort_by(|a, b| a.offset.cmp(&b.offset).then_with(|| a.name.cmp(&b.name)));

        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();

        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            data_offset,
            tensors,
            metadata,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file length in bytes.
    pub fn file_len(&self) -> u64 {
        self.mmap.len() as u64
    }

    /// The absolute offset where tensor data starts (8 + header length).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[SafetensorsTensor] {
        &self.tensors
    }

    /// The tensor with this name, if present.
    pub fn tensor(&self, name: &str) -> Option<&SafetensorsTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The `__metadata__` string map of the header (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The raw little-endian bytes of a tensor, straight from the map.
    pub fn tensor_data(&self, tensor: &SafetensorsTensor) -> &[u8] {
        // Offsets were validated at open; a tensor from another file would be
        // caught here and yield an empty slice rather than a panic.
        let start = usize::try_from(tensor.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(tensor.n_bytes).unwrap_or(usize::MAX);
        start
            .checked_add(len)
            .and_then(|end| self.mmap.get(start..end))
            .unwrap_or(&[])
    }

    /// The tensor named `name` converted to f32 (from F32, F16 or BF16).
    pub fn to_f32_vec(&self, name: &str) -> Result<Vec<f32>, SafetensorsError> {
        let tensor = self
            .tensor(name)
            .ok_or_else(|| SafetensorsError::TensorNotFound {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        let bytes = self.tensor_data(tensor);
        let out = match tensor.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            dtype => {
                return Err(SafetensorsError::UnsupportedDtype {
                    path: self.path.clone(),
                    name: tensor.name.clone(),
                    dtype,
                });
            }
        };
        Ok(out)
    }
}
