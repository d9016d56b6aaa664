//! The GPU forward pass, in two parts:
//! - [`GpuModel`], loaded once and shared (`Arc`, `Send + Sync`): kernels
//!   compiled and weights uploaded in their block format;
//! - [`GpuSession`], one per sequence: activation buffers, an f16 (or f32) KV
//!   cache, logits readbacks and the step plans ([`step`]) built over them.
//!
//! A step (a prompt micro-batch or one decode token) writes its token ids,
//! positions and two small params uniforms, records its prepared dispatches
//! into one command encoder, submits once, and reads back only the logits
//! (of the last token, or of every token).

mod plan;
mod readback;
mod step;

use std::sync::Arc;

use seldon_kernels::Gpu;
use seldon_kernels::Prepared;
use seldon_kernels::attention::{Attention, AttentionParams, AttentionShape, KvSplit};
use seldon_kernels::kv_cache::{KvLayout, KvSource, KvType, KvWrite, KvWriteParams};

use plan::{Activations, GpuWeights, Kernels, KvCache};
use readback::Readback;
use step::{Builder, Op, StepPlan, prepare_attention};

use super::{Forward, Logits, Model, ModelConfig, ModelError, check_call};

/// How to open a [`GpuSession`]: its context and cache types and its largest step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Context size (KV cache positions).
    pub n_ctx: usize,
    /// Key cache element type (`-ctk`).
    pub kv_type_k: KvType,
    /// Value cache element type (`-ctv`).
    pub kv_type_v: KvType,
    /// The most tokens one step processes; longer calls are split.
    pub max_batch: usize,
}

/// The name [`SessionOptions`] had when a GPU model held one sequence.
pub type GpuModelOptions = SessionOptions;

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            n_ctx: 4096,
            kv_type_k: KvType::F16,
            kv_type_v: KvType::F16,
            max_batch: 512,
        }
    }
}

/// A model on the GPU: compiled kernels and uploaded weights, immutable once
/// loaded and shared by any number of [`GpuSession`]s (on any threads).
#[derive(Debug)]
pub struct GpuModel {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    kernels: Kernels,
    weights: GpuWeights,
}

// Sessions on several threads share one model.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<GpuModel>();
};

impl GpuModel {
    /// Compiles the kernels `model` needs on `gpu` and uploads its weights.
    pub fn load(gpu: Arc<Gpu>, model: &Model) -> Result<Arc<Self>, ModelError> {
        let kernels = Kernels::new(&gpu, model)?;
        let weights = GpuWeights::upload(&gpu, model)?;
        Ok(Arc::new(Self {
            gpu,
            config: model.config().clone(),
            kernels,
            weights,
        }))
    }

    /// Opens a sequence on this model: allocates its activations and KV cache
    /// and prepares its decode step.
    pub fn session(self: &Arc<Self>, options: SessionOptions) -> Result<GpuSession, ModelError> {
        GpuSession::new(Arc::clone(self), options)
    }

    /// The GPU this model lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// The hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}

/// A session's buffers that its step plans bind.
#[derive(Debug)]
struct SessionBuffers {
    acts: Activations,
    kv: KvCache,
    attention: Attention,
    /// [`KvWriteParams`] of the current step, shared by every layer's writes.
    kv_params: wgpu::Buffer,
    /// [`AttentionParams`] of the current step, shared by every layer.
    attn_params: wgpu::Buffer,
}

/// Steps of this many tokens taking this many key splits (`None`: direct).
type AttentionKey = (u64, Option<u64>);

/// Plans kept besides the decode plan (the full micro-batch, the last partial one, ...).
const MAX_PLANS: usize = 4;
/// Attention variants kept (token counts times split counts).
const MAX_ATTENTION_VARIANTS: usize = 32;

/// One sequence on a shared [`GpuModel`]: activations, KV cache, logits
/// readbacks and prepared step plans. Implements [`Forward`].
#[derive(Debug)]
pub struct GpuSession {
    model: Arc<GpuModel>,
    options: SessionOptions,
    bufs: SessionBuffers,
    /// Logits of the last token (`n_vocab`).
    logits_last: Readback,
    /// Logits of every token of a step, allocated on first use.
    logits_all: Option<Readback>,
    /// Tokens per step in [`Logits::All`] mode: their logits must fit a binding.
    all_rows: u64,
    /// The one-token decode plan first, then the most recently built others.
    plans: Vec<StepPlan>,
    /// Every layer's attention per (tokens, splits).
    attention: Vec<(AttentionKey, Vec<Prepared>)>,
    cached: usize,
}

impl GpuSession {
    /// Loads `model` on `gpu` and opens one session on it (for callers that
    /// need a single sequence; others use [`GpuModel::load`] and
    /// [`GpuModel::session`]).
    pub fn load(gpu: Arc<Gpu>, model: &Model, options: SessionOptions) -> Result<Self, ModelError> {
        GpuModel::load(gpu, model)?.session(options)
    }

    fn new(model: Arc<GpuModel>, options: SessionOptions) -> Result<Self, ModelError> {
        let c = &model.config;
        let gpu = &model.gpu;
        if options.n_ctx == 0 || options.max_batch == 0 {
            return Err(ModelError::Invalid(
                "the context and batch sizes must be at least 1".into(),
            ));
        }
        if options.kv_type_k != options.kv_type_v {
            // One attention pipeline reads both caches.
            return Err(ModelError::Unsupported(
                "different key and value cache types on the GPU".into(),
            ));
        }
        let n_ctx = options.n_ctx as u64;
        // Kernels::new checked that keys and values have one head length.
        let layout = KvLayout {
            n_ctx,
            n_head_kv: c.n_head_kv as u64,
            head_dim: c.head_dim_k as u64,
            ty: options.kv_type_k,
        };
        let rows = options.max_batch.min(options.n_ctx) as u64;
        let bufs = SessionBuffers {
            acts: Activations::new(gpu, c, rows, n_ctx)?,
            kv: KvCache::new(gpu, c.n_layer, layout)?,
            attention: Attention::new(gpu, c.head_dim_k as u64, options.kv_type_k)?,
            kv_params: gpu.uniform("kv_write.params", &KvWriteParams::default())?,
            attn_params: gpu.uniform("attention.params", &AttentionParams::default())?,
        };
        let logits_last = Readback::new(gpu, "logits", c.n_vocab as u64)?;
        let row_bytes = c.n_vocab as u64 * 4;
        let all_rows = (gpu.limits().max_storage_buffer_binding_size / row_bytes).clamp(1, rows);
        let mut session = Self {
            options,
            bufs,
            logits_last,
            logits_all: None,
            all_rows,
            plans: Vec::new(),
            attention: Vec::new(),
            cached: 0,
            model,
        };
        // The decode step is prepared up front; it is the one that repeats.
        session.plan_index(1, Logits::Last)?;
        Ok(session)
    }

    /// The shared model.
    pub fn model(&self) -> &Arc<GpuModel> {
        &self.model
    }

    /// The options this session was opened with.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// Positions `0..cached_len()` of the KV cache hold valid keys and values.
    pub fn cached_len(&self) -> usize {
        self.cached
    }

    /// The GPU this session runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.model.gpu
    }

    /// The index in `plans` of the plan for `n` tokens returning `logits`,
    /// built if absent.
    fn plan_index(&mut self, n: u64, logits: Logits) -> Result<usize, ModelError> {
        if let Some(i) = self
            .plans
            .iter()
            .position(|p| p.n == n && p.logits == logits)
        {
            return Ok(i);
        }
        let out = match logits {
            Logits::Last => &self.logits_last,
            Logits::All => {
                if self.logits_all.is_none() {
                    let floats = self.all_rows * self.model.config.n_vocab as u64;
                    let r = Readback::new(&self.model.gpu, "logits_all", floats)?;
                    self.logits_all = Some(r);
                }
                self.logits_all
                    .as_ref()
                    .ok_or_else(|| ModelError::Invalid("no logits buffer".into()))?
            }
        };
        let builder = Builder {
            model: &self.model,
            bufs: &self.bufs,
            n,
            body: Vec::new(),
        };
        let plan = builder.plan(logits, &out.buffer)?;
        if self.plans.len() > MAX_PLANS {
            // Keep the decode plan (index 0); drop the oldest other one.
            self.plans.remove(1);
        }
        self.plans.push(plan);
        Ok(self.plans.len() - 1)
    }

    /// The index in `attention` of the variant for `n` tokens and `splits`.
    fn attention_index(&mut self, n: u64, splits: Option<u64>) -> Result<usize, ModelError> {
        let key = (n, splits);
        if let Some(i) = self.attention.iter().position(|(k, _)| *k == key) {
            return Ok(i);
        }
        let prepared = prepare_attention(&self.model, &self.bufs, n, splits)?;
        if self.attention.len() >= MAX_ATTENTION_VARIANTS {
            self.attention.remove(0);
        }
        self.attention.push((key, prepared));
        Ok(self.attention.len() - 1)
    }

    /// Writes the per-step uniforms and returns the attention variant to record.
    fn write_step_params(&mut self, n: u64, pos0: u64) -> Result<usize, ModelError> {
        let gpu = Arc::clone(&self.model.gpu);
        let c = &self.model.config;
        let b = &self.bufs;
        let layout = b.kv.layout;
        let kv = KvWrite::params(KvSource::contiguous(&layout), layout, n, pos0)?;
        gpu.write_bytes("kv_write.params", &b.kv_params, 0, bytemuck::bytes_of(&kv))?;
        let (k_cache, v_cache) =
            b.kv.layers
                .first()
                .ok_or_else(|| ModelError::Invalid("a model without layers".into()))?;
        let shape = AttentionShape {
            n_tokens: n,
            n_head: c.n_head as u64,
            n_head_kv: c.n_head_kv as u64,
            head_dim: c.head_dim_k as u64,
            pos0,
        };
        let call = b.attention.plan_call(
            &gpu,
            &b.acts.q,
            k_cache,
            v_cache,
            &b.acts.attn,
            &shape,
            c.attention_scale,
            KvSplit::Auto,
            Some(&b.acts.scratch),
        )?;
        let params = bytemuck::bytes_of(&call.params);
        gpu.write_bytes("attention.params", &b.attn_params, 0, params)?;
        self.attention_index(n, call.splits)
    }

    /// One step of at most `acts.rows` tokens: one encoder, one submit, one readback.
    fn step(
        &mut self,
        tokens: &[u32],
        pos0: usize,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let n = tokens.len() as u64;
        let positions = (pos0..pos0 + tokens.len())
            .map(|p| i32::try_from(p).map_err(|_| ModelError::Invalid(format!("position {p}"))))
            .collect::<Result<Vec<i32>, _>>()?;
        let plan = self.plan_index(n, logits)?;
        let attention = self.write_step_params(n, pos0 as u64)?;
        let gpu = Arc::clone(&self.model.gpu);
        let a = &self.bufs.acts;
        gpu.write_bytes("ids", &a.ids, 0, bytemuck::cast_slice(tokens))?;
        gpu.write_bytes(
            "positions",
            &a.positions,
            0,
            bytemuck::cast_slice(&positions),
        )?;

        let plan = &self.plans[plan];
        let attention = &self.attention[attention].1;
        let mut enc = gpu.encoder("forward")?;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("layers"),
                timestamp_writes: None,
            });
            for op in &plan.body {
                match op {
                    Op::Fixed(p) => p.record(&mut pass),
                    Op::Attention(l) => {
                        let p = attention.get(*l).ok_or_else(|| {
                            ModelError::Invalid(format!("no attention for layer {l}"))
                        })?;
                        p.record(&mut pass);
                    }
                }
            }
        }
        let out = match logits {
            Logits::Last => {
                let embd_bytes = self.model.config.n_embd as u64 * 4;
                let x = &a.x[plan.x_out];
                enc.copy_buffer_to_buffer(x, (n - 1) * embd_bytes, &a.last, 0, embd_bytes);
                &self.logits_last
            }
            Logits::All => self
                .logits_all
                .as_ref()
                .ok_or_else(|| ModelError::Invalid("no logits buffer".into()))?,
        };
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("logits"),
                timestamp_writes: None,
            });
            plan.head.record(&mut pass);
        }
        let rows = match logits {
            Logits::Last => 1,
            Logits::All => n,
        };
        out.submit_and_read(&gpu, enc, rows * self.model.config.n_vocab as u64)
    }
}

impl Forward for GpuSession {
    fn config(&self) -> &ModelConfig {
        &self.model.config
    }

    fn n_ctx(&self) -> usize {
        self.options.n_ctx
    }

    fn forward(
        &mut self,
        tokens: &[u32],
        pos0: usize,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        check_call(
            &self.model.config,
            tokens,
            pos0,
            self.cached,
            self.options.n_ctx,
        )?;
        // Positions past pos0 are stale from here on, even if a step fails.
        self.cached = pos0;
        let chunk = match logits {
            Logits::Last => self.bufs.acts.rows,
            Logits::All => self.all_rows,
        } as usize;
        let mut out = Vec::new();
        for (i, part) in tokens.chunks(chunk).enumerate() {
            let start = pos0 + i * chunk;
            let last_part = start + part.len() == pos0 + tokens.len();
            let mode = if logits == Logits::Last && !last_part {
                // Earlier micro-batches only fill the cache; their logits are dropped.
                Logits::Last
            } else {
                logits
            };
            let l = self.step(part, start, mode)?;
            self.cached = start + part.len();
            if logits == Logits::All || last_part {
                out.extend(l);
            }
        }
        Ok(out)
    }

    fn backend(&self) -> String {
        let a = self.model.gpu.adapter_info();
        format!("{} ({:?})", a.name, a.backend)
    }
}
