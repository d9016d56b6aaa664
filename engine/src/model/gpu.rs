//! The GPU forward pass. A plan is built at load ([`plan`]): kernels compiled,
//! weights uploaded once in their block format, activation buffers and an f16
//! (or f32) KV cache allocated. A step (a prompt micro-batch or one decode
//! token) is recorded into one command encoder, submitted once, and only the
//! logits (of the last token, or of every token) are read back.

mod plan;
mod readback;

use std::sync::Arc;

use seldon_kernels::Gpu;
use seldon_kernels::attention::{AttentionShape, KvSplit};
use seldon_kernels::elementwise::BinaryOp;
use seldon_kernels::kv_cache::{KvLayout, KvSource, KvType};
use seldon_kernels::matmul::MatMulShape;
use seldon_kernels::rms_norm::RmsNormShape;
use seldon_kernels::rope::{RopeConfig, RopeMode, RopeShape};

use plan::{Activations, GpuLayer, GpuLinear, GpuWeights, Kernels};
use readback::Readback;

use super::{Forward, Logits, Model, ModelConfig, ModelError, check_call};

/// How to build a [`GpuModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuModelOptions {
    /// Context size (KV cache positions).
    pub n_ctx: usize,
    /// Key cache element type (`-ctk`).
    pub kv_type_k: KvType,
    /// Value cache element type (`-ctv`).
    pub kv_type_v: KvType,
    /// The most tokens one step processes; longer calls are split.
    pub max_batch: usize,
}

impl Default for GpuModelOptions {
    fn default() -> Self {
        Self {
            n_ctx: 4096,
            kv_type_k: KvType::F16,
            kv_type_v: KvType::F16,
            max_batch: 512,
        }
    }
}

/// A model on the GPU with the KV cache of one sequence.
#[derive(Debug)]
pub struct GpuModel {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    options: GpuModelOptions,
    kernels: Kernels,
    weights: GpuWeights,
    acts: Activations,
    kv: (KvLayout, KvLayout),
    /// Logits of the last token (`n_vocab`).
    logits_last: Readback,
    /// Logits of every token of a step, allocated on first use.
    logits_all: Option<Readback>,
    /// Tokens per step in [`Logits::All`] mode: their logits must fit a binding.
    all_rows: u64,
    cached: usize,
}

impl GpuModel {
    /// Builds the plan for `model` on `gpu`: compiles kernels, uploads weights
    /// and allocates activations and the KV cache.
    pub fn new(gpu: Arc<Gpu>, model: &Model, options: GpuModelOptions) -> Result<Self, ModelError> {
        let c = model.config().clone();
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
        let layout = |ty, head_dim: usize| KvLayout {
            n_ctx,
            n_head_kv: c.n_head_kv as u64,
            head_dim: head_dim as u64,
            ty,
        };
        let kv = (
            layout(options.kv_type_k, c.head_dim_k),
            layout(options.kv_type_v, c.head_dim_v),
        );
        let kernels = Kernels::new(&gpu, model, options.kv_type_k)?;
        let weights = GpuWeights::upload(&gpu, model, n_ctx, kv)?;
        let rows = options.max_batch.min(options.n_ctx) as u64;
        let acts = Activations::new(&gpu, &c, rows, n_ctx)?;
        let logits_last = Readback::new(&gpu, "logits", c.n_vocab as u64)?;
        let row_bytes = c.n_vocab as u64 * 4;
        let all_rows = (gpu.limits().max_storage_buffer_binding_size / row_bytes).clamp(1, rows);
        Ok(Self {
            gpu,
            config: c,
            options,
            kernels,
            weights,
            acts,
            kv,
            logits_last,
            logits_all: None,
            all_rows,
            cached: 0,
        })
    }

    /// The GPU this model runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Records `dst = (W x) * scale + bias` for `n` tokens.
    fn linear(
        &self,
        enc: &mut wgpu::CommandEncoder,
        lin: &GpuLinear,
        x: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: u64,
    ) -> Result<(), ModelError> {
        let mm = self
            .kernels
            .matmul
            .get(&lin.ty)
            .ok_or_else(|| ModelError::Invalid(format!("no matmul compiled for {}", lin.ty)))?;
        let shape = MatMulShape {
            n_in: lin.n_in,
            n_out: lin.n_out,
            n_cols: n,
        };
        let len = n * lin.n_out;
        let ew = &self.kernels.elementwise;
        let tmp = &self.acts.lin_tmp;
        match (lin.scale, &lin.bias) {
            (None, None) => mm.encode(&self.gpu, enc, &lin.w, x, dst, shape)?,
            (Some(s), None) => {
                mm.encode(&self.gpu, enc, &lin.w, x, tmp, shape)?;
                ew.encode_scale(&self.gpu, enc, tmp, dst, len, s)?;
            }
            (None, Some(b)) => {
                mm.encode(&self.gpu, enc, &lin.w, x, tmp, shape)?;
                ew.encode_binary(&self.gpu, enc, BinaryOp::Add, tmp, b, dst, len, lin.n_out)?;
            }
            (Some(s), Some(b)) => {
                mm.encode(&self.gpu, enc, &lin.w, x, dst, shape)?;
                ew.encode_scale(&self.gpu, enc, dst, tmp, len, s)?;
                ew.encode_binary(&self.gpu, enc, BinaryOp::Add, tmp, b, dst, len, lin.n_out)?;
            }
        }
        Ok(())
    }

    fn rope_config(&self) -> RopeConfig {
        let c = &self.config;
        let mode = if c.arch.rope_neox() {
            RopeMode::Neox
        } else {
            RopeMode::Normal
        };
        RopeConfig {
            freq_scale: c.rope_freq_scale,
            ..RopeConfig::new(c.n_rot as u64, mode, c.rope_freq_base)
        }
    }

    /// Records q or k's optional per-head norm and its rotation, leaving the
    /// result in `x`.
    fn norm_and_rope(
        &self,
        enc: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        norm: Option<&wgpu::Buffer>,
        heads: usize,
        n: u64,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let k = &self.kernels;
        let shape = RopeShape {
            n_tokens: n,
            n_head: heads as u64,
            head_dim: c.head_dim_k as u64,
        };
        let freqs = self.weights.rope_freqs.as_ref();
        let (gpu, pos) = (&self.gpu, &self.acts.positions);
        match norm {
            Some(w) => {
                let tmp = &self.acts.norm_tmp;
                let ns = RmsNormShape::per_head(n, heads as u64, c.head_dim_k as u64)
                    .ok_or_else(|| ModelError::Invalid("per-head norm shape overflows".into()))?;
                k.rms_norm.encode(gpu, enc, x, w, tmp, ns, c.rms_eps)?;
                k.rope
                    .encode(gpu, enc, tmp, x, pos, freqs, shape, &self.rope_config())?;
            }
            None => k
                .rope
                .encode_in_place(gpu, enc, x, pos, freqs, shape, &self.rope_config())?,
        }
        Ok(())
    }

    /// Records one block; the residual moves from `x[*cur]` to the other buffer
    /// at each add, and `cur` follows it.
    fn layer(
        &self,
        enc: &mut wgpu::CommandEncoder,
        l: &GpuLayer,
        xi: &mut usize,
        n: u64,
        pos0: u64,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (gpu, k, a) = (&self.gpu, &self.kernels, &self.acts);
        let rows = |width: usize| RmsNormShape::rows(n, width as u64);
        k.rms_norm.encode(
            gpu,
            enc,
            &a.x[*xi],
            &l.attn_norm,
            &a.cur,
            rows(c.n_embd),
            c.rms_eps,
        )?;
        self.linear(enc, &l.wq, &a.cur, &a.q, n)?;
        self.linear(enc, &l.wk, &a.cur, &a.k, n)?;
        self.linear(enc, &l.wv, &a.cur, &a.v, n)?;
        self.norm_and_rope(enc, &a.q, l.q_norm.as_ref(), c.n_head, n)?;
        self.norm_and_rope(enc, &a.k, l.k_norm.as_ref(), c.n_head_kv, n)?;
        let (kl, vl) = self.kv;
        k.kv_write.encode(
            gpu,
            enc,
            &a.k,
            KvSource::contiguous(&kl),
            &l.k_cache,
            kl,
            n,
            pos0,
        )?;
        k.kv_write.encode(
            gpu,
            enc,
            &a.v,
            KvSource::contiguous(&vl),
            &l.v_cache,
            vl,
            n,
            pos0,
        )?;
        let shape = AttentionShape {
            n_tokens: n,
            n_head: c.n_head as u64,
            n_head_kv: c.n_head_kv as u64,
            head_dim: c.head_dim_k as u64,
            pos0,
        };
        k.attention.encode(
            gpu,
            enc,
            &a.q,
            &l.k_cache,
            &l.v_cache,
            &a.attn,
            &shape,
            c.attention_scale,
            KvSplit::Auto,
            Some(&a.scratch),
        )?;
        let attn_out = match &l.attn_sub_norm {
            Some(w) => {
                k.rms_norm.encode(
                    gpu,
                    enc,
                    &a.attn,
                    w,
                    &a.norm_tmp,
                    rows(c.attn_out_dim()),
                    c.rms_eps,
                )?;
                &a.norm_tmp
            }
            None => &a.attn,
        };
        self.linear(enc, &l.wo, attn_out, &a.o, n)?;
        let len = n * c.n_embd as u64;
        k.elementwise.encode_binary(
            gpu,
            enc,
            BinaryOp::Add,
            &a.x[*xi],
            &a.o,
            &a.x[1 - *xi],
            len,
            len,
        )?;
        *xi = 1 - *xi;

        k.rms_norm.encode(
            gpu,
            enc,
            &a.x[*xi],
            &l.ffn_norm,
            &a.cur,
            rows(c.n_embd),
            c.rms_eps,
        )?;
        self.linear(enc, &l.gate, &a.cur, &a.gate, n)?;
        self.linear(enc, &l.up, &a.cur, &a.up, n)?;
        k.swiglu
            .encode(gpu, enc, &a.gate, &a.up, &a.h, n * c.n_ff as u64)?;
        let ffn_in = match &l.ffn_sub_norm {
            Some(w) => {
                k.rms_norm
                    .encode(gpu, enc, &a.h, w, &a.norm_tmp, rows(c.n_ff), c.rms_eps)?;
                &a.norm_tmp
            }
            None => &a.h,
        };
        self.linear(enc, &l.down, ffn_in, &a.o, n)?;
        k.elementwise.encode_binary(
            gpu,
            enc,
            BinaryOp::Add,
            &a.x[*xi],
            &a.o,
            &a.x[1 - *xi],
            len,
            len,
        )?;
        *xi = 1 - *xi;
        Ok(())
    }

    /// One step of at most `acts.rows` tokens: one encoder, one submit, one readback.
    fn step(
        &mut self,
        tokens: &[u32],
        pos0: usize,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let c = self.config.clone();
        let n = tokens.len() as u64;
        let pos0_u = pos0 as u64;
        let positions = (pos0..pos0 + tokens.len())
            .map(|p| i32::try_from(p).map_err(|_| ModelError::Invalid(format!("position {p}"))))
            .collect::<Result<Vec<i32>, _>>()?;
        let gpu = Arc::clone(&self.gpu);
        gpu.write_bytes("ids", &self.acts.ids, 0, bytemuck_u32(tokens).as_slice())?;
        let pos_bytes: Vec<u8> = positions.iter().flat_map(|p| p.to_le_bytes()).collect();
        gpu.write_bytes("positions", &self.acts.positions, 0, &pos_bytes)?;
        if logits == Logits::All && self.logits_all.is_none() {
            self.logits_all = Some(Readback::new(
                &gpu,
                "logits_all",
                self.all_rows * c.n_vocab as u64,
            )?);
        }

        let mut enc = gpu.encoder("forward")?;
        let w = &self.weights;
        let a = &self.acts;
        self.kernels.get_rows.encode(
            &gpu,
            &mut enc,
            &w.token_embd,
            &a.ids,
            &a.x[0],
            c.n_vocab as u64,
            c.n_embd as u64,
            n,
        )?;
        let mut xi = 0;
        for l in &w.layers {
            self.layer(&mut enc, l, &mut xi, n, pos0_u)?;
        }
        let embd_bytes = c.n_embd as u64 * 4;
        let (rows, normed_in, out) = match logits {
            Logits::Last => {
                enc.copy_buffer_to_buffer(&a.x[xi], (n - 1) * embd_bytes, &a.last, 0, embd_bytes);
                (1, &a.last, &self.logits_last)
            }
            Logits::All => (
                n,
                &a.x[xi],
                self.logits_all
                    .as_ref()
                    .ok_or_else(|| ModelError::Invalid("no logits buffer".into()))?,
            ),
        };
        let shape = RmsNormShape::rows(rows, c.n_embd as u64);
        self.kernels.rms_norm.encode(
            &gpu,
            &mut enc,
            normed_in,
            &w.output_norm,
            &a.cur,
            shape,
            c.rms_eps,
        )?;
        self.linear(&mut enc, &w.output, &a.cur, &out.buffer, rows)?;
        out.submit_and_read(&gpu, enc, rows * c.n_vocab as u64)
    }
}

fn bytemuck_u32(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.to_le_bytes()).collect()
}

impl Forward for GpuModel {
    fn config(&self) -> &ModelConfig {
        &self.config
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
        check_call(&self.config, tokens, pos0, self.cached, self.options.n_ctx)?;
        // Positions past pos0 are stale from here on, even if a step fails.
        self.cached = pos0;
        let chunk = match logits {
            Logits::Last => self.acts.rows,
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
        let a = self.gpu.adapter_info();
        format!("{} ({:?})", a.name, a.backend)
    }
}
