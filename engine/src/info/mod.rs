//! `seldon info`: what a model file holds, without touching the GPU.
//!
//! [`inspect`] opens a GGUF or safetensors file and gathers everything the
//! command reports into [`ModelInfo`], which serializes to the `--json` output
//! and renders as text through [`ModelInfo::render_text`]. Keeping this in the
//! library (not the binary) lets tests and other tools reuse it.

mod metadata;
mod text;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use seldon_formats::gguf::{GgufError, GgufFile};
use seldon_formats::safetensors::{SafetensorsError, SafetensorsFile};
use serde::Serialize;

pub use metadata::{ARRAY_INLINE_MAX, Hyperparameters, TokenizerSummary};

/// Errors from [`inspect`].
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Neither the GGUF magic nor a safetensors header was found.
    #[error("{path}: not a GGUF or safetensors file (starts with {magic})")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first bytes, escaped for printing.
        magic: String,
    },
    /// The GGUF reader rejected the file.
    #[error("{path}: {source}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: GgufError,
    },
    /// The safetensors reader rejected the file (its message names the file).
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
}

/// The on-disk format of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// GGUF (v2 or v3).
    Gguf,
    /// safetensors.
    Safetensors,
}

/// One tensor as `seldon info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorEntry {
    /// The tensor name.
    pub name: String,
    /// The type as llama.cpp spells it ("Q4_1", "F32"); safetensors dtypes that
    /// have no ggml equivalent keep the safetensors spelling ("I32").
    #[serde(rename = "type")]
    pub ty: String,
    /// The shape in ggml order (ne0, the innermost dimension, first).
    pub shape: Vec<u64>,
    /// The absolute byte offset of the data in the file.
    pub offset: u64,
    /// The size of the data in bytes.
    pub bytes: u64,
    /// The number of elements.
    pub elements: u64,
}

/// Tensor count, bytes and elements of one type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeTotal {
    /// Number of tensors of this type.
    pub count: u64,
    /// Their data bytes.
    pub bytes: u64,
    /// Their elements (parameters).
    pub elements: u64,
}

/// Everything `seldon info` reports about one file.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The path as given.
    pub path: String,
    /// The file format.
    pub format: FileFormat,
    /// The GGUF version (`None` for safetensors).
    pub version: Option<u32>,
    /// The file length in bytes.
    pub file_bytes: u64,
    /// The absolute offset where tensor data starts.
    pub data_offset: u64,
    /// `general.architecture` (`None` for safetensors).
    pub architecture: Option<String>,
    /// Every metadata key in file order. Arrays longer than
    /// [`ARRAY_INLINE_MAX`] appear as `{"array_of": TYPE, "len": N}`.
    #[serde(serialize_with = "metadata::serialize_ordered")]
    pub metadata: Vec<(String, serde_json::Value)>,
    /// The `<arch>.*` keys, prefix removed.
    pub hyperparameters: Hyperparameters,
    /// The tokenizer keys summarized (`None` when the file has no tokenizer).
    pub tokenizer: Option<TokenizerSummary>,
    /// Whether `tokenizer.chat_template` is present.
    pub chat_template: bool,
    /// The tensors in file order.
    pub tensors: Vec<TensorEntry>,
    /// Totals per tensor type, keyed by type name.
    pub totals_by_type: BTreeMap<String, TypeTotal>,
    /// Totals over all tensors.
    pub totals: TypeTotal,
}

/// Opens `path` (GGUF or safetensors, detected by magic, then extension) and
/// gathers its summary. Never touches the GPU.
pub fn inspect(path: &Path) -> Result<ModelInfo, InfoError> {
    match detect_format(path)? {
        FileFormat::Gguf => inspect_gguf(path),
        FileFormat::Safetensors => inspect_safetensors(path),
    }
}

/// Reads the first bytes of `path` to tell GGUF from safetensors.
pub fn detect_format(path: &Path) -> Result<FileFormat, InfoError> {
    let io_err = |source| InfoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = Vec::with_capacity(9);
    File::open(path)
        .map_err(io_err)?
        .take(9)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    if head.starts_with(b"GGUF") {
        return Ok(FileFormat::Gguf);
    }
    // safetensors has no magic: an 8-byte header length then a JSON object.
    if head.get(8) == Some(&b'{') {
        return Ok(FileFormat::Safetensors);
    }
    // A damaged file with a known extension goes to its reader, whose error
    // says what is wrong more precisely than "unknown format".
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("gguf") {
        return Ok(FileFormat::Gguf);
    }
    if ext.eq_ignore_ascii_case("safetensors") {
        return Ok(FileFormat::Safetensors);
    }
    Err(InfoError::UnknownFormat {
        path: path.to_path_buf(),
        magic: format!("\"{}\"", head.get(..4).unwrap_or(&head).escape_ascii()),
    })
}

fn totals_of(tensors: &[TensorEntry]) -> (BTreeMap<String, TypeTotal>, TypeTotal) {
    let mut by_type: BTreeMap<String, TypeTotal> = BTreeMap::new();
    let mut all = TypeTotal::default();
    for t in tensors {
        for total in [by_type.entry(t.ty.clone()).or_default(), &mut all] {
            total.count += 1;
            total.bytes = total.bytes.saturating_add(t.bytes);
            total.elements = total.elements.saturating_add(t.elements);
        }
    }
    (by_type, all)
}

fn inspect_gguf(path: &Path) -> Result<ModelInfo, InfoError> {
    let gguf = GgufFile::open(path).map_err(|e| match e {
        // The reader's I/O errors already carry the path.
        GgufError::Io { path, source } => InfoError::Io { path, source },
        source => InfoError::Gguf {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let file_bytes = gguf.bytes().len() as u64;
    let data_offset = gguf.data_offset();
    let tensors: Vec<TensorEntry> = gguf
        .tensors()
        .iter()
        .map(|t| TensorEntry {
            name: t.name.clone(),
            ty: t.ty.name().to_string(),
            shape: t.dims.clone(),
            offset: data_offset.saturating_add(t.offset),
            bytes: t.n_bytes,
            elements: t.n_elements,
        })
        .collect();
    let (totals_by_type, totals) = totals_of(&tensors);
    let architecture = gguf.architecture().map(str::to_string);
    let md = gguf.metadata();
    Ok(ModelInfo {
        path: path.display().to_string(),
        format: FileFormat::Gguf,
        version: Some(gguf.version()),
        file_bytes,
        data_offset,
        metadata: md
            .iter()
            .map(|(k, v)| (k.clone(), metadata::gguf_value_to_json(v)))
            .collect(),
        hyperparameters: metadata::hyperparameters(md, architecture.as_deref()),
        tokenizer: metadata::tokenizer_summary(md),
        chat_template: gguf.get("tokenizer.chat_template").is_some(),
        architecture,
        tensors,
        totals_by_type,
        totals,
    })
}

fn inspect_safetensors(path: &Path) -> Result<ModelInfo, InfoError> {
    let st = SafetensorsFile::open(path)?;
    let tensors: Vec<TensorEntry> = st
        .tensors()
        .iter()
        .map(|t| TensorEntry {
            name: t.name.clone(),
            ty: t
                .ggml_type()
                .map_or_else(|| t.dtype.to_string(), |g| g.name().to_string()),
            shape: t.ggml_dims(),
            offset: t.offset,
            bytes: t.n_bytes,
            elements: t.n_elements(),
        })
        .collect();
    let (totals_by_type, totals) = totals_of(&tensors);
    Ok(ModelInfo {
        path: path.display().to_string(),
        format: FileFormat::Safetensors,
        version: None,
        file_bytes: st.file_len(),
        data_offset: st.data_offset(),
        architecture: None,
        metadata: st
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        hyperparameters: Hyperparameters::default(),
        tokenizer: None,
        chat_template: false,
        tensors,
        totals_by_type,
        totals,
    })
}
