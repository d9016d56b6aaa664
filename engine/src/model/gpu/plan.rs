//! What the GPU path holds: shared by every session of a model, the compiled
//! kernels and the weights uploaded once in their GGUF block format; per
//! session, the activation buffers sized for its largest micro-batch and its
//! KV cache.

use std::collections::HashMap;

use seldon_formats::GgmlType;
use seldon_kernels::Gpu;
use seldon_kernels::attention::AttentionScratch;
use seldon_kernels::elementwise::Elementwise;
use seldon_kernels::get_rows::GetRows;
use seldon_kernels::kv_cache::{KvLayout, KvWrite};
use seldon_kernels::matmul::{MatMul, matvec_input_buffer};
use seldon_kernels::rms_norm::RmsNorm;
use seldon_kernels::rope::Rope;
use seldon_kernels::swiglu::Swiglu;

use super::super::weights::{Linear, Matrix};
use super::super::{Model, ModelConfig, ModelError};

/// Buffer usages for everything the step reads or writes on the GPU and the
/// host fills or copies.
pub(super) fn usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// The compiled kernels, one matmul per weight type present. Attention is
/// compiled per KV cache type, by each session.
#[derive(Debug)]
pub(super) struct Kernels {
    pub matmul: HashMap<GgmlType, MatMul>,
    pub get_rows: GetRows,
    pub rms_norm: RmsNorm,
    pub rope: Rope,
    pub kv_write: KvWrite,
    pub elementwise: Elementwise,
    pub swiglu: Swiglu,
}

impl Kernels {
    pub(super) fn new(gpu: &Gpu, model: &Model) -> Result<Self, ModelError> {
        let c = model.config();
        let w = model.weights();
        let mut matmul = HashMap::new();
        let mut matrices: Vec<&Matrix> = vec![&w.output.w];
        for l in &w.layers {
            for lin in [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down] {
                matrices.push(&lin.w);
            }
        }
        for m in matrices {
            if let std::collections::hash_map::Entry::Vacant(e) = matmul.entry(m.ty()) {
                e.insert(
                    MatMul::new(gpu, m.ty()).map_err(|_| ModelError::UnsupportedType {
                        name: m.name().to_string(),
                        ty: m.ty(),
                    })?,
                );
            }
        }
        let embd = &w.token_embd;
        let get_rows = GetRows::new(gpu, embd.ty()).map_err(|_| ModelError::UnsupportedType {
            name: embd.name().to_string(),
            ty: embd.ty(),
        })?;
        if c.head_dim_k != c.head_dim_v {
            return Err(ModelError::Unsupported(format!(
                "GPU attention with key length {} != value length {}",
                c.head_dim_k, c.head_dim_v
            )));
        }
        Ok(Self {
            matmul,
            get_rows,
            rms_norm: RmsNorm::new(gpu)?,
            rope: Rope::new(gpu)?,
            kv_write: KvWrite::new(gpu)?,
            elementwise: Elementwise::new(gpu)?,
            swiglu: Swiglu::new(gpu)?,
        })
    }
}

/// A weight matrix on the GPU (raw block bytes) with its bias and scale.
#[derive(Debug)]
pub(super) struct GpuLinear {
    pub w: wgpu::Buffer,
    pub ty: GgmlType,
    pub n_in: u64,
    pub n_out: u64,
    pub bias: Option<wgpu::Buffer>,
    pub scale: Option<f32>,
}

fn upload_matrix(gpu: &Gpu, model: &Model, m: &Matrix) -> Result<wgpu::Buffer, ModelError> {
    Ok(gpu.upload_bytes(m.name(), m.data(model.file()))?)
}

fn upload_linear(gpu: &Gpu, model: &Model, lin: &Linear) -> Result<GpuLinear, ModelError> {
    Ok(GpuLinear {
        w: upload_matrix(gpu, model, &lin.w)?,
        ty: lin.w.ty(),
        n_in: lin.w.n_in as u64,
        n_out: lin.w.n_out as u64,
        bias: match &lin.bias {
            Some(b) => Some(gpu.upload_f32(&format!("{}.bias", lin.w.name()), b)?),
            None => None,
        },
        scale: lin.scale,
    })
}

fn upload_vec(
    gpu: &Gpu,
    name: &str,
    v: &Option<Vec<f32>>,
) -> Result<Option<wgpu::Buffer>, ModelError> {
    match v {
        Some(v) => Ok(Some(gpu.upload_f32(name, v)?)),
        None => Ok(None),
    }
}

/// One block's weights on the GPU.
#[derive(Debug)]
pub(super) struct GpuLayer {
    pub attn_norm: wgpu::Buffer,
    pub wq: GpuLinear,
    pub wk: GpuLinear,
    pub wv: GpuLinear,
    pub wo: GpuLinear,
    pub q_norm: Option<wgpu::Buffer>,
    pub k_norm: Option<wgpu::Buffer>,
    pub attn_sub_norm: Option<wgpu::Buffer>,
    pub ffn_norm: wgpu::Buffer,
    pub gate: GpuLinear,
    pub up: GpuLinear,
    pub down: GpuLinear,
    pub ffn_sub_norm: Option<wgpu::Buffer>,
}

/// All weights on the GPU.
#[derive(Debug)]
pub(super) struct GpuWeights {
    pub token_embd: wgpu::Buffer,
    pub output_norm: wgpu::Buffer,
    pub output: GpuLinear,
    pub rope_freqs: Option<wgpu::Buffer>,
    pub layers: Vec<GpuLayer>,
}

impl GpuWeights {
    pub(super) fn upload(gpu: &Gpu, model: &Model) -> Result<Self, ModelError> {
        let w = model.weights();
        let token_embd = upload_matrix(gpu, model, &w.token_embd)?;
        let output = if w.tied_output {
            // One copy serves the lookup and the logits.
            GpuLinear {
                w: token_embd.clone(),
                ty: w.token_embd.ty(),
                n_in: w.token_embd.n_in as u64,
                n_out: w.token_embd.n_out as u64,
                bias: upload_vec(gpu, "output.bias", &w.output.bias)?,
                scale: None,
            }
        } else {
            upload_linear(gpu, model, &w.output)?
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for (i, l) in w.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(GpuLayer {
                attn_norm: gpu.upload_f32(&n("attn_norm.weight"), &l.attn_norm)?,
                wq: upload_linear(gpu, model, &l.wq)?,
                wk: upload_linear(gpu, model, &l.wk)?,
                wv: upload_linear(gpu, model, &l.wv)?,
                wo: upload_linear(gpu, model, &l.wo)?,
                q_norm: upload_vec(gpu, &n("attn_q_norm.weight"), &l.q_norm)?,
                k_norm: upload_vec(gpu, &n("attn_k_norm.weight"), &l.k_norm)?,
                attn_sub_norm: upload_vec(gpu, &n("attn_sub_norm.weight"), &l.attn_sub_norm)?,
                ffn_norm: gpu.upload_f32(&n("ffn_norm.weight"), &l.ffn_norm)?,
                gate: upload_linear(gpu, model, &l.gate)?,
                up: upload_linear(gpu, model, &l.up)?,
                down: upload_linear(gpu, model, &l.down)?,
                ffn_sub_norm: upload_vec(gpu, &n("ffn_sub_norm.weight"), &l.ffn_sub_norm)?,
            });
        }
        Ok(Self {
            token_embd,
            output_norm: gpu.upload_f32("output_norm.weight", &w.output_norm)?,
            output,
            rope_freqs: upload_vec(gpu, "rope_freqs.weight", &w.rope_freqs)?,
            layers,
        })
    }
}

/// Activation buffers for up to `rows` tokens per step.
#[derive(Debug)]
pub(super) struct Activations {
    pub rows: u64,
    /// The residual stream, ping-ponged: an add cannot read and write one buffer.
    pub x: [wgpu::Buffer; 2],
    pub cur: wgpu::Buffer,
    pub q: wgpu::Buffer,
    pub k: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub attn: wgpu::Buffer,
    pub o: wgpu::Buffer,
    pub gate: wgpu::Buffer,
    pub up: wgpu::Buffer,
    pub h: wgpu::Buffer,
    /// Per-head and sub-norm outputs.
    pub norm_tmp: wgpu::Buffer,
    /// A linear layer's product before its scale and bias.
    pub lin_tmp: wgpu::Buffer,
    /// The last token's residual row (for last-token logits).
    pub last: wgpu::Buffer,
    pub ids: wgpu::Buffer,
    pub positions: wgpu::Buffer,
    pub scratch: AttentionScratch,
}

impl Activations {
    pub(super) fn new(
        gpu: &Gpu,
        c: &ModelConfig,
        rows: u64,
        n_ctx: u64,
    ) -> Result<Self, ModelError> {
        let buf = |name: &str, width: usize| -> Result<wgpu::Buffer, ModelError> {
            let bytes = (width as u64)
                .checked_mul(rows)
                .and_then(|v| v.checked_mul(4))
                .ok_or_else(|| ModelError::Invalid(format!("{name}: buffer size overflows")))?;
            // Every activation may be a matvec input: let it be read as a uniform.
            Ok(matvec_input_buffer(gpu, name, bytes, usage())?)
        };
        let widest = c
            .q_dim()
            .max(c.k_dim())
            .max(c.v_dim())
            .max(c.attn_out_dim())
            .max(c.n_ff);
        let widest_out = widest.max(c.n_embd);
        // Decode at long context splits the keys: one slot per 256 keys at most.
        let max_splits = n_ctx.div_ceil(256).max(1);
        Ok(Self {
            rows,
            x: [buf("x0", c.n_embd)?, buf("x1", c.n_embd)?],
            cur: buf("cur", c.n_embd)?,
            q: buf("q", c.q_dim())?,
            k: buf("k", c.k_dim())?,
            v: buf("v", c.v_dim())?,
            attn: buf("attn", c.attn_out_dim())?,
            o: buf("o", c.n_embd)?,
            gate: buf("gate", c.n_ff)?,
            up: buf("up", c.n_ff)?,
            h: buf("h", c.n_ff)?,
            norm_tmp: buf("norm_tmp", widest)?,
            lin_tmp: buf("lin_tmp", widest_out)?,
            last: gpu.storage_buffer("last", c.n_embd as u64 * 4, usage())?,
            ids: buf("ids", 1)?,
            positions: buf("positions", 1)?,
            scratch: AttentionScratch::new(gpu, c.n_head as u64, c.head_dim_k as u64, max_splits)?,
        })
    }
}

/// One sequence's KV cache: a key and a value buffer per layer, both of one
/// layout (the GPU path needs equal key and value lengths and types).
#[derive(Debug)]
pub(super) struct KvCache {
    pub layout: KvLayout,
    pub layers: Vec<(wgpu::Buffer, wgpu::Buffer)>,
}

impl KvCache {
    pub(super) fn new(gpu: &Gpu, n_layer: usize, layout: KvLayout) -> Result<Self, ModelError> {
        let bytes = layout.bytes().ok_or_else(|| {
            ModelError::Invalid(format!(
                "a KV cache of {} positions overflows",
                layout.n_ctx
            ))
        })?;
        let layers = (0..n_layer)
            .map(|i| {
                Ok((
                    gpu.storage_buffer(&format!("blk.{i}.cache_k"), bytes, usage())?,
                    gpu.storage_buffer(&format!("blk.{i}.cache_v"), bytes, usage())?,
                ))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self { layout, layers })
    }
}
