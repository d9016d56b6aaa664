//! The CPU reference forward pass: f32 activations, weights dequantized a few
//! rows at a time with seldon-formats (bit-exact with ggml), f64 sums, an f32
//! KV cache. It follows llama.cpp's graph for each architecture operation by
//! operation, and is the oracle the GPU path is checked against.

mod ops;

use std::sync::Arc;

use seldon_kernels::rope::{RopeConfig, RopeMode, RopeShape, rope_reference};
use seldon_kernels::swiglu::silu;

use super::weights::LayerWeights;
use super::{Forward, Logits, Model, ModelConfig, ModelError, check_call};

/// One layer's cached keys and values, `[position][n_head_kv][head_dim]`,
/// grown as positions are filled (a 4096-token context need not be paid for
/// up front by a 10-token test).
#[derive(Debug, Default, Clone)]
struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// A model on the CPU with the KV cache of one sequence.
#[derive(Debug)]
pub struct CpuModel {
    model: Arc<Model>,
    n_ctx: usize,
    cache: Vec<LayerCache>,
    /// Positions `0..cached` hold valid keys and values.
    cached: usize,
}

impl CpuModel {
    /// A CPU model with a context of `n_ctx` positions (at least 1).
    pub fn new(model: Arc<Model>, n_ctx: usize) -> Result<Self, ModelError> {
        if n_ctx == 0 {
            return Err(ModelError::Invalid(
                "the context size must be at least 1".into(),
            ));
        }
        let cache = vec![LayerCache::default(); model.config().n_layer];
        Ok(Self {
            model,
            n_ctx,
            cache,
            cached: 0,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn rope_config(&self) -> RopeConfig {
        let c = self.model.config();
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

    fn layer(
        &mut self,
        il: usize,
        x: &mut [f32],
        n: usize,
        pos0: usize,
        positions: &[i32],
    ) -> Result<(), ModelError> {
        let model = Arc::clone(&self.model);
        let (file, c) = (model.file(), model.config());
        let lw: &LayerWeights = model
            .weights()
            .layers
            .get(il)
            .ok_or_else(|| ModelError::Invalid(format!("no layer {il}")))?;
        let rope = self.rope_config();
        let freqs = model.weights().rope_freqs.as_deref();

        let mut cur = x.to_vec();
        ops::rms_norm(&mut cur, &lw.attn_norm, c.rms_eps);
        let mut q = ops::linear(file, &lw.wq, &cur, n)?;
        let mut k = ops::linear(file, &lw.wk, &cur, n)?;
        let v = ops::linear(file, &lw.wv, &cur, n)?;
        // Qwen3 normalises each head before rotating it.
        if let Some(w) = &lw.q_norm {
            ops::rms_norm(&mut q, w, c.rms_eps);
        }
        if let Some(w) = &lw.k_norm {
            ops::rms_norm(&mut k, w, c.rms_eps);
        }
        let shape = |heads: usize| RopeShape {
            n_tokens: n as u64,
            n_head: heads as u64,
            head_dim: c.head_dim_k as u64,
        };
        let q = rope_reference(&q, positions, freqs, shape(c.n_head), &rope);
        let k = rope_reference(&k, positions, freqs, shape(c.n_head_kv), &rope);

        let cache = self
            .cache
            .get_mut(il)
            .ok_or_else(|| ModelError::Invalid(format!("no cache for layer {il}")))?;
        let end = pos0 + n;
        cache.k.resize(end * c.k_dim(), 0.0);
        cache.v.resize(end * c.v_dim(), 0.0);
        cache.k[pos0 * c.k_dim()..].copy_from_slice(&k);
        cache.v[pos0 * c.v_dim()..].copy_from_slice(&v);

        let mut attn = ops::attention(
            &q,
            &cache.k,
            &cache.v,
            ops::AttnShape {
                n_tokens: n,
                pos0,
                n_head: c.n_head,
                n_head_kv: c.n_head_kv,
                head_dim_k: c.head_dim_k,
                head_dim_v: c.head_dim_v,
                scale: c.attention_scale,
            },
        );
        if let Some(w) = &lw.attn_sub_norm {
            ops::rms_norm(&mut attn, w, c.rms_eps);
        }
        let o = ops::linear(file, &lw.wo, &attn, n)?;
        x.iter_mut().zip(&o).for_each(|(a, &b)| *a += b);

        let mut cur = x.to_vec();
        ops::rms_norm(&mut cur, &lw.ffn_norm, c.rms_eps);
        let gate = ops::linear(file, &lw.gate, &cur, n)?;
        let up = ops::linear(file, &lw.up, &cur, n)?;
        let mut h: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| silu(g) * u).collect();
        if let Some(w) = &lw.ffn_sub_norm {
            ops::rms_norm(&mut h, w, c.rms_eps);
        }
        let down = ops::linear(file, &lw.down, &h, n)?;
        x.iter_mut().zip(&down).for_each(|(a, &b)| *a += b);
        Ok(())
    }
}

impl Forward for CpuModel {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn forward(
        &mut self,
        tokens: &[u32],
        pos0: usize,
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let model = Arc::clone(&self.model);
        let (file, c, w) = (model.file(), model.config(), model.weights());
        check_call(c, tokens, pos0, self.cached, self.n_ctx)?;
        let n = tokens.len();
        let positions = (pos0..pos0 + n)
            .map(|p| i32::try_from(p).map_err(|_| ModelError::Invalid(format!("position {p}"))))
            .collect::<Result<Vec<i32>, _>>()?;

        let mut x = Vec::with_capacity(n * c.n_embd);
        for &t in tokens {
            x.extend(ops::matrix_row(file, &w.token_embd, t as usize)?);
        }
        // Keys and values past pos0 are stale from here on, even if a layer fails.
        self.cached = pos0;
        for il in 0..c.n_layer {
            self.layer(il, &mut x, n, pos0, &positions)?;
        }
        self.cached = pos0 + n;

        let mut out = match logits {
            Logits::All => x,
            Logits::Last => x.split_off((n - 1) * c.n_embd),
        };
        let rows = out.len() / c.n_embd;
        ops::rms_norm(&mut out, &w.output_norm, c.rms_eps);
        ops::linear(file, &w.output, &out, rows)
    }

    fn backend(&self) -> String {
        "cpu".to_string()
    }
}
