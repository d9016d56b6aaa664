//! A session's step plans: every dispatch of a step of `n` tokens prepared
//! once (bind groups, params uniforms), so that running a step only writes
//! the token ids, their positions and two small params uniforms, then records
//! the prepared dispatches into one compute pass (two when the last row is
//! copied out) and submits once.
//!
//! The position a step starts at changes the KV-cache writes and attention:
//! their params live in two uniforms of the session that every layer shares,
//! rewritten before each submit. Attention's dispatch count also depends on
//! how many key splits a call takes (decode at long context splits the keys),
//! so its dispatches are prepared per (tokens, splits) and cached separately.

use seldon_kernels::Prepared;
use seldon_kernels::attention::{AttentionBuffers, AttentionShape};
use seldon_kernels::elementwise::BinaryOp;
use seldon_kernels::kv_cache::KvSource;
use seldon_kernels::matmul::MatMulShape;
use seldon_kernels::rms_norm::RmsNormShape;
use seldon_kernels::rope::{RopeConfig, RopeMode, RopeShape};

use super::plan::{GpuLayer, GpuLinear};
use super::{GpuModel, SessionBuffers};
use crate::model::{Logits, ModelError};

/// One piece of a step, in order.
#[derive(Debug)]
pub(super) enum Op {
    /// Dispatches prepared with the plan.
    Fixed(Prepared),
    /// Layer `l`'s attention, prepared per split count.
    Attention(usize),
}

/// Every dispatch of a step of `n` tokens returning `logits`.
#[derive(Debug)]
pub(super) struct StepPlan {
    pub n: u64,
    pub logits: Logits,
    /// The layers, up to the final residual.
    pub body: Vec<Op>,
    /// Which residual buffer holds the final residual.
    pub x_out: usize,
    /// The output norm and the logits product (after the last-row copy for
    /// [`Logits::Last`]).
    pub head: Prepared,
}

/// Builds plans against one session's buffers.
pub(super) struct Builder<'a> {
    pub model: &'a GpuModel,
    pub bufs: &'a SessionBuffers,
    pub n: u64,
    pub body: Vec<Op>,
}

impl Builder<'_> {
    fn push(&mut self, p: Prepared) {
        if !p.is_empty() {
            self.body.push(Op::Fixed(p));
        }
    }

    /// The plan for a step of `n` tokens; `logits_out` receives the logits.
    pub(super) fn plan(
        mut self,
        logits: Logits,
        logits_out: &wgpu::Buffer,
    ) -> Result<StepPlan, ModelError> {
        let (m, a, n) = (self.model, &self.bufs.acts, self.n);
        let (gpu, c, w) = (&*m.gpu, &m.config, &m.weights);
        let embd = m.kernels.get_rows.prepare(
            gpu,
            &w.token_embd,
            &a.ids,
            &a.x[0],
            c.n_vocab as u64,
            c.n_embd as u64,
            n,
        )?;
        self.push(embd);
        let mut xi = 0;
        for (il, l) in w.layers.iter().enumerate() {
            self.layer(il, l, &mut xi)?;
        }
        let (rows, normed_in) = match logits {
            Logits::Last => (1, &a.last),
            Logits::All => (n, &a.x[xi]),
        };
        let shape = RmsNormShape::rows(rows, c.n_embd as u64);
        let mut head =
            m.kernels
                .rms_norm
                .prepare(gpu, normed_in, &w.output_norm, &a.cur, shape, c.rms_eps)?;
        head.append(self.linear(&w.output, &a.cur, logits_out, rows)?);
        Ok(StepPlan {
            n,
            logits,
            body: self.body,
            x_out: xi,
            head,
        })
    }

    /// `dst = (W x) * scale + bias` for `n` tokens.
    fn linear(
        &self,
        lin: &GpuLinear,
        x: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: u64,
    ) -> Result<Prepared, ModelError> {
        let m = self.model;
        let gpu = &*m.gpu;
        let mm = m
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
        let ew = &m.kernels.elementwise;
        let tmp = &self.bufs.acts.lin_tmp;
        let mut p;
        match (lin.scale, &lin.bias) {
            (None, None) => p = mm.prepare(gpu, &lin.w, x, dst, shape)?,
            (Some(s), None) => {
                p = mm.prepare(gpu, &lin.w, x, tmp, shape)?;
                p.append(ew.prepare_scale(gpu, tmp, dst, len, s)?);
            }
            (None, Some(b)) => {
                p = mm.prepare(gpu, &lin.w, x, tmp, shape)?;
                p.append(ew.prepare_binary(gpu, BinaryOp::Add, tmp, b, dst, len, lin.n_out)?);
            }
            (Some(s), Some(b)) => {
                p = mm.prepare(gpu, &lin.w, x, dst, shape)?;
                p.append(ew.prepare_scale(gpu, dst, tmp, len, s)?);
                p.append(ew.prepare_binary(gpu, BinaryOp::Add, tmp, b, dst, len, lin.n_out)?);
            }
        }
        Ok(p)
    }

    /// q or k's optional per-head norm and its rotation, leaving the result in `x`.
    fn norm_and_rope(
        &self,
        x: &wgpu::Buffer,
        norm: Option<&wgpu::Buffer>,
        heads: usize,
    ) -> Result<Prepared, ModelError> {
        let m = self.model;
        let (gpu, c, k, n) = (&*m.gpu, &m.config, &m.kernels, self.n);
        let shape = RopeShape {
            n_tokens: n,
            n_head: heads as u64,
            head_dim: c.head_dim_k as u64,
        };
        let freqs = m.weights.rope_freqs.as_ref();
        let pos = &self.bufs.acts.positions;
        let rope = m.rope_config();
        Ok(match norm {
            Some(w) => {
                let tmp = &self.bufs.acts.norm_tmp;
                let ns = RmsNormShape::per_head(n, heads as u64, c.head_dim_k as u64)
                    .ok_or_else(|| ModelError::Invalid("per-head norm shape overflows".into()))?;
                let mut p = k.rms_norm.prepare(gpu, x, w, tmp, ns, c.rms_eps)?;
                p.append(k.rope.prepare(gpu, tmp, x, pos, freqs, shape, &rope)?);
                p
            }
            None => k.rope.prepare_in_place(gpu, x, pos, freqs, shape, &rope)?,
        })
    }

    /// One block; the residual moves from `x[*xi]` to the other buffer at
    /// each add, and `xi` follows it.
    fn layer(&mut self, il: usize, l: &GpuLayer, xi: &mut usize) -> Result<(), ModelError> {
        let m = self.model;
        let (gpu, c, k, n) = (&*m.gpu, &m.config, &m.kernels, self.n);
        let a = &self.bufs.acts;
        let rows = |width: usize| RmsNormShape::rows(n, width as u64);
        let mut p = k.rms_norm.prepare(
            gpu,
            &a.x[*xi],
            &l.attn_norm,
            &a.cur,
            rows(c.n_embd),
            c.rms_eps,
        )?;
        p.append(self.linear(&l.wq, &a.cur, &a.q, n)?);
        p.append(self.linear(&l.wk, &a.cur, &a.k, n)?);
        p.append(self.linear(&l.wv, &a.cur, &a.v, n)?);
        p.append(self.norm_and_rope(&a.q, l.q_norm.as_ref(), c.n_head)?);
        p.append(self.norm_and_rope(&a.k, l.k_norm.as_ref(), c.n_head_kv)?);
        let kv = &self.bufs.kv;
        let (k_cache, v_cache) = kv
            .layers
            .get(il)
            .ok_or_else(|| ModelError::Invalid(format!("no KV cache for layer {il}")))?;
        let layout = kv.layout;
        let source = KvSource::contiguous(&layout);
        let params = &self.bufs.kv_params;
        let kw = &k.kv_write;
        p.append(kw.prepare(gpu, &a.k, source, k_cache, layout, n, params)?);
        p.append(kw.prepare(gpu, &a.v, source, v_cache, layout, n, params)?);
        self.push(p);
        self.body.push(Op::Attention(il));

        let attn_out = match &l.attn_sub_norm {
            Some(w) => {
                let shape = rows(c.attn_out_dim());
                let norm = k
                    .rms_norm
                    .prepare(gpu, &a.attn, w, &a.norm_tmp, shape, c.rms_eps)?;
                self.push(norm);
                &a.norm_tmp
            }
            None => &a.attn,
        };
        let mut p = self.linear(&l.wo, attn_out, &a.o, n)?;
        let len = n * c.n_embd as u64;
        let ew = &k.elementwise;
        let (x0, x1) = (&a.x[*xi], &a.x[1 - *xi]);
        p.append(ew.prepare_binary(gpu, BinaryOp::Add, x0, &a.o, x1, len, len)?);
        *xi = 1 - *xi;

        let x0 = &a.x[*xi];
        p.append(
            k.rms_norm
                .prepare(gpu, x0, &l.ffn_norm, &a.cur, rows(c.n_embd), c.rms_eps)?,
        );
        p.append(self.linear(&l.gate, &a.cur, &a.gate, n)?);
        p.append(self.linear(&l.up, &a.cur, &a.up, n)?);
        p.append(
            k.swiglu
                .prepare(gpu, &a.gate, &a.up, &a.h, n * c.n_ff as u64)?,
        );
        let ffn_in = match &l.ffn_sub_norm {
            Some(w) => {
                let shape = rows(c.n_ff);
                p.append(
                    k.rms_norm
                        .prepare(gpu, &a.h, w, &a.norm_tmp, shape, c.rms_eps)?,
                );
                &a.norm_tmp
            }
            None => &a.h,
        };
        p.append(self.linear(&l.down, ffn_in, &a.o, n)?);
        let x1 = &a.x[1 - *xi];
        p.append(ew.prepare_binary(gpu, BinaryOp::Add, x0, &a.o, x1, len, len)?);
        *xi = 1 - *xi;
        self.push(p);
        Ok(())
    }
}

/// Every layer's attention dispatches for steps of `n` tokens taking
/// `splits` key splits, valid for any start position.
pub(super) fn prepare_attention(
    model: &GpuModel,
    bufs: &SessionBuffers,
    n: u64,
    splits: Option<u64>,
) -> Result<Vec<Prepared>, ModelError> {
    let c = &model.config;
    let layout = bufs.kv.layout;
    let shape = AttentionShape {
        n_tokens: n,
        n_head: c.n_head as u64,
        n_head_kv: c.n_head_kv as u64,
        head_dim: c.head_dim_k as u64,
        // The largest start: the caches are checked to hold every position.
        pos0: layout.n_ctx.saturating_sub(n),
    };
    let a = &bufs.acts;
    bufs.kv
        .layers
        .iter()
        .map(|(k_cache, v_cache)| {
            let b = AttentionBuffers {
                q: &a.q,
                k_cache,
                v_cache,
                out: &a.attn,
                scratch: Some(&a.scratch),
            };
            Ok(bufs.attention.prepare(
                &model.gpu,
                b,
                &shape,
                c.attention_scale,
                splits,
                &bufs.attn_params,
            )?)
        })
        .collect()
}

impl GpuModel {
    pub(super) fn rope_config(&self) -> RopeConfig {
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
}
