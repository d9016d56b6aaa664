//! Synthetic models: a real model's exact shapes, tensor names, metadata and
//! per-tensor quantization types, with random weights, written as GGUF that
//! both seldon and llama.cpp load. They stand in for models that cannot be
//! downloaded, for benchmarks (same bytes to move as the real model) and for
//! conformance (same kernels to run).
//!
//! Each tensor's values come from its own random stream, seeded from the seed
//! and the tensor's name, so one seed gives the same f32 weights whatever the
//! file type: an F32 synth file quantized by `llama-quantize` to Q4_K_M gives
//! the bytes of the Q4_K_M synth file (the quantizers are ggml's, bit for bit).

mod ftype;
mod rng;
mod shapes;
mod vocab;

use std::path::Path;

use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufError, GgufWriter, Value};
use seldon_formats::quant::{self, QuantError};

pub use ftype::{FileType, UnknownFileType};
pub use shapes::{Arch, ModelShape, SHAPES, VocabStyle, shape, shape_names};

use ftype::RuleInput;
use rng::SplitMix64;

/// `general.quantization_version` as ggml writes it today.
const QUANTIZATION_VERSION: u32 = 2;

/// f32 values generated and quantized at a time, so that a tensor's f32 form
/// never sits in memory whole (the largest, llama3-8b's token_embd, is 2 GiB).
const SLAB_ELEMENTS: u64 = 1 << 22;

/// Why a synthetic model could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The GGUF writer refused a key or tensor, or writing the file failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A quantizer refused a tensor's data.
    #[error("quantizing {tensor}: {source}")]
    Quant {
        /// The tensor.
        tensor: String,
        /// The quantizer's error.
        source: QuantError,
    },
    /// A tensor is larger than this machine can address.
    #[error("tensor {0} is too large for this machine's address space")]
    TooLarge(String),
}

/// What kind of values a tensor holds, which sets how they are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRole {
    /// An RMSNorm weight: values near 1.
    Norm,
    /// The token embedding table.
    Embedding,
    /// A projection: values scaled by 1/sqrt(fan-in) so activations keep
    /// their size through the layers.
    Linear,
}

/// One tensor of a synthetic model, before its data exists.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    /// llama.cpp's name ("blk.0.attn_q.weight").
    pub name: String,
    /// ggml dims, row length first.
    pub dims: Vec<u64>,
    /// The type it is stored as.
    pub ty: GgmlType,
    /// How its values are drawn.
    pub role: TensorRole,
}

impl TensorPlan {
    /// Elements in the tensor.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of its data in the file.
    pub fn n_bytes(&self) -> u64 {
        self.ty.bytes_for(self.n_elements()).unwrap_or(u64::MAX)
    }
}

/// What to synthesize.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// The model shape.
    pub shape: &'static ModelShape,
    /// The file type (tensor type mix).
    pub ftype: FileType,
    /// Seed of the weights.
    pub seed: u64,
}

/// Where a synth run is, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Tensors finished.
    pub tensors_done: usize,
    /// Tensors in the model.
    pub tensors_total: usize,
    /// The tensor being made next (empty when all are done).
    pub name: &'a str,
    /// Data bytes finished.
    pub bytes_done: u64,
    /// Data bytes in the model.
    pub bytes_total: u64,
}

/// The tensors of `shape` under `ftype`, in the order llama.cpp's loader
/// and `llama-quantize` list them (non-block tensors, then block by block,
/// by name within each).
pub fn plan(shape: &ModelShape, ftype: FileType) -> Vec<TensorPlan> {
    let (e, ff, hd) = (shape.n_embd, shape.n_ff, shape.head_dim);
    let (q_out, kv_out) = (shape.n_head * hd, shape.n_head_kv * hd);
    let t = |name: String, dims: Vec<u64>, role| TensorPlan {
        name,
        dims,
        ty: GgmlType::F32,
        role,
    };
    let mut tensors = Vec::new();
    if !shape.tied_embeddings {
        tensors.push(t(
            "output.weight".into(),
            vec![e, shape.n_vocab],
            TensorRole::Linear,
        ));
    }
    tensors.push(t("output_norm.weight".into(), vec![e], TensorRole::Norm));
    tensors.push(t(
        "token_embd.weight".into(),
        vec![e, shape.n_vocab],
        TensorRole::Embedding,
    ));
    for i in 0..shape.n_layer {
        let mut layer = vec![
            t(
                format!("blk.{i}.attn_k.weight"),
                vec![e, kv_out],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.attn_norm.weight"),
                vec![e],
                TensorRole::Norm,
            ),
            t(
                format!("blk.{i}.attn_output.weight"),
                vec![q_out, e],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.attn_q.weight"),
                vec![e, q_out],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.attn_v.weight"),
                vec![e, kv_out],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.ffn_down.weight"),
                vec![ff, e],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.ffn_gate.weight"),
                vec![e, ff],
                TensorRole::Linear,
            ),
            t(
                format!("blk.{i}.ffn_norm.weight"),
                vec![e],
                TensorRole::Norm,
            ),
            t(
                format!("blk.{i}.ffn_up.weight"),
                vec![e, ff],
                TensorRole::Linear,
            ),
        ];
        if shape.arch == Arch::Qwen3 {
            layer.push(t(
                format!("blk.{i}.attn_k_norm.weight"),
                vec![hd],
                TensorRole::Norm,
            ));
            layer.push(t(
                format!("blk.{i}.attn_q_norm.weight"),
                vec![hd],
                TensorRole::Norm,
            ));
        }
        layer.sort_by(|a, b| a.name.cmp(&b.name));
        tensors.extend(layer);
    }
    let inputs: Vec<RuleInput<'_>> = tensors
        .iter()
        .map(|t| RuleInput {
            name: &t.name,
            ne0: t.dims[0],
            quantizable: t.dims.len() >= 2,
        })
        .collect();
    let types = ftype::tensor_types(ftype, shape.n_layer, &inputs);
    for (t, ty) in tensors.iter_mut().zip(types) {
        t.ty = ty;
    }
    tensors
}

/// The metadata of a synthetic model, in the order it is written.
pub fn metadata(opts: &SynthOptions) -> Vec<(String, Value)> {
    let s = opts.shape;
    let arch = s.arch.name();
    let k = |key: &str| format!("{arch}.{key}");
    let u32_of = |v: u64| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.type".into(), Value::String("model".into())),
        (
            "general.name".into(),
            Value::String(format!(
                "seldon synth {} (random weights, seed {})",
                s.real_name, opts.seed
            )),
        ),
        (k("block_count"), Value::U32(s.n_layer)),
        (k("context_length"), Value::U32(s.n_ctx)),
        (k("embedding_length"), u32_of(s.n_embd)),
        (k("feed_forward_length"), u32_of(s.n_ff)),
        (k("attention.head_count"), u32_of(s.n_head)),
        (k("attention.head_count_kv"), u32_of(s.n_head_kv)),
        (k("rope.freq_base"), Value::F32(s.rope_base)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(s.rms_eps)),
    ];
    match s.arch {
        Arch::Llama => {
            kv.push((k("vocab_size"), u32_of(s.n_vocab)));
            kv.push((k("rope.dimension_count"), u32_of(s.head_dim)));
        }
        Arch::Qwen3 => {
            kv.push((k("attention.key_length"), u32_of(s.head_dim)));
            kv.push((k("attention.value_length"), u32_of(s.head_dim)));
        }
    }
    kv.push(("general.file_type".into(), Value::U32(opts.ftype.id())));
    kv.push((
        "general.quantization_version".into(),
        Value::U32(QUANTIZATION_VERSION),
    ));
    kv.extend(vocab::tokenizer_metadata(s));
    kv
}

/// Builds the whole model in a [`GgufWriter`], calling `progress` before each
/// tensor and once at the end. The writer holds all tensor data until it is
/// written, so this needs about the file's size in memory.
pub fn build(
    opts: &SynthOptions,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<GgufWriter, SynthError> {
    let mut writer = GgufWriter::new();
    for (key, value) in metadata(opts) {
        writer.add_metadata(key, value)?;
    }
    let tensors = plan(opts.shape, opts.ftype);
    let bytes_total: u64 = tensors.iter().map(TensorPlan::n_bytes).sum();
    let mut bytes_done = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        progress(&Progress {
            tensors_done: i,
            tensors_total: tensors.len(),
            name: &t.name,
            bytes_done,
            bytes_total,
        });
        let data = tensor_data(t, opts.seed)?;
        bytes_done += data.len() as u64;
        writer.add_tensor(t.name.clone(), t.ty, &t.dims, data)?;
    }
    progress(&Progress {
        tensors_done: tensors.len(),
        tensors_total: tensors.len(),
        name: "",
        bytes_done,
        bytes_total,
    });
    Ok(writer)
}

/// [`build`], then writes the file to `path`.
pub fn write(
    opts: &SynthOptions,
    path: &Path,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<(), SynthError> {
    build(opts, progress)?.write_to_path(path)?;
    Ok(())
}

/// The tensor's data: values drawn row slab by row slab from the tensor's own
/// stream and quantized into place.
fn tensor_data(t: &TensorPlan, seed: u64) -> Result<Vec<u8>, SynthError> {
    let too_large = || SynthError::TooLarge(t.name.clone());
    let ne0 = t.dims[0];
    let n_rows = t.n_elements() / ne0.max(1);
    let row_bytes = t.ty.bytes_for(ne0).ok_or_else(too_large)?;
    let total = usize::try_from(t.n_bytes()).map_err(|_| too_large())?;
    let mut out = vec![0u8; total];
    let rows_per_slab = (SLAB_ELEMENTS / ne0.max(1)).max(1);
    let mut rng = SplitMix64::new(tensor_seed(seed, &t.name));
    let (center, half_width) = match t.role {
        TensorRole::Norm => (1.0, 0.1),
        TensorRole::Embedding => (0.0, 0.1),
        // Uniform on [-a, a] has variance a^2/3: a = sqrt(3/fan_in) gives 1/fan_in.
        TensorRole::Linear => (0.0, (3.0 / ne0 as f32).sqrt()),
    };
    let mut values = Vec::new();
    let mut row = 0u64;
    while row < n_rows {
        let rows = rows_per_slab.min(n_rows - row);
        let n = usize::try_from(rows * ne0).map_err(|_| too_large())?;
        values.clear();
        values.extend((0..n).map(|_| center + half_width * rng.next_symmetric()));
        let start = usize::try_from(row * row_bytes).map_err(|_| too_large())?;
        let len = usize::try_from(rows * row_bytes).map_err(|_| too_large())?;
        let dst = out.get_mut(start..start + len).ok_or_else(too_large)?;
        quant::quantize(t.ty, &values, dst).map_err(|source| SynthError::Quant {
            tensor: t.name.clone(),
            source,
        })?;
        row += rows;
    }
    Ok(out)
}

/// The seed of one tensor's stream: the run's seed mixed with a hash of the
/// name (FNV-1a), so streams differ per tensor and do not depend on order.
fn tensor_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix64::new(seed ^ h).next_u64()
}
