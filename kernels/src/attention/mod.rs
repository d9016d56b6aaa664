//! `attention`, `attention_split`, `attention_combine` (shaders/attention.wgsl):
//! causal grouped-query attention over a KV cache, flash-attention style.
//!
//! Layout (the engine follows it):
//! - `q` and `out`: `[n_tokens][n_head][head_dim]` f32, q after RoPE;
//! - K and V caches: one buffer each per layer, `[n_ctx][n_head_kv][head_dim]`
//!   of [`KvType`] as [`crate::kv_cache`] writes them, holding positions
//!   `0..pos0 + n_tokens` (this step's tokens included);
//! - token `t` is at position `pos0 + t` and attends to keys `0..=pos0 + t`;
//!   query head `h` reads KV head `h / (n_head / n_head_kv)`;
//! - `scale` multiplies the scores (`1 / sqrt(head_dim)` for these models).
//!
//! `head_dim` is any multiple of 16 up to 256, independent of the width and the
//! head counts. The direct path handles prefill and short contexts; decode at
//! long context splits the keys across workgroups ([`KvSplit`]) and needs an
//! [`AttentionScratch`].

mod reference;

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

pub use reference::attention_reference;

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Workgroups};
use crate::kv_cache::{KvLayout, KvType};
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "attention";
/// Invocations per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;
/// Query rows ((token, head) pairs of one KV head) per workgroup.
pub const ROWS: u64 = 16;
/// Floats of one key tile in workgroup memory.
pub const KV_TILE: u64 = 2048;
/// The most keys per tile (the score buffer's width).
pub const MAX_BC: u64 = 64;
/// The largest head dimension (16 accumulators per lane).
pub const MAX_HEAD_DIM: u64 = 256;

/// Mirrors `AttentionParams` in attention.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct AttentionParams {
    /// Query tokens of this step.
    pub n_tokens: u32,
    /// Query heads.
    pub n_head: u32,
    /// KV heads.
    pub n_head_kv: u32,
    /// `n_head / n_head_kv`.
    pub group: u32,
    /// Position of the first query token.
    pub pos0: u32,
    /// Keys per split (split path only).
    pub kv_chunk: u32,
    /// Number of splits (combine only).
    pub n_splits: u32,
    /// Score scale.
    pub scale: f32,
}

/// One attention call's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Query tokens of this step.
    pub n_tokens: u64,
    /// Query heads.
    pub n_head: u64,
    /// KV heads (divides `n_head`).
    pub n_head_kv: u64,
    /// Elements per head.
    pub head_dim: u64,
    /// Position of the first query token (the tokens already cached).
    pub pos0: u64,
}

impl AttentionShape {
    /// Keys attended to by the last token: `pos0 + n_tokens`.
    pub fn n_kv(&self) -> u64 {
        self.pos0.saturating_add(self.n_tokens)
    }

    /// Elements of `q` and `out`; `None` on overflow.
    pub fn q_elements(&self) -> Option<u64> {
        self.n_tokens
            .checked_mul(self.n_head)?
            .checked_mul(self.head_dim)
    }

    fn row_tiles(&self) -> u64 {
        (self.n_tokens * (self.n_head / self.n_head_kv.max(1))).div_ceil(ROWS)
    }
}

/// How the keys are divided among workgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSplit {
    /// One pass over all keys per workgroup (prefill).
    Off,
    /// Split when there are too few workgroups for the context length, as far
    /// as the scratch allows.
    Auto,
    /// Splits of this many keys each (needs scratch for `ceil(n_kv / chunk)`).
    Chunk(u64),
}

/// A checked attention call ([`Attention::plan_call`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionCall {
    /// What its dispatches read from their params uniform.
    pub params: AttentionParams,
    /// Key splits; `None` is the direct path.
    pub splits: Option<u64>,
}

/// The buffers one attention call binds.
#[derive(Debug, Clone, Copy)]
pub struct AttentionBuffers<'a> {
    /// Queries, `[n_tokens][n_head][head_dim]` f32.
    pub q: &'a wgpu::Buffer,
    /// This layer's key cache.
    pub k_cache: &'a wgpu::Buffer,
    /// This layer's value cache.
    pub v_cache: &'a wgpu::Buffer,
    /// The output, shaped as `q`.
    pub out: &'a wgpu::Buffer,
    /// Room for split partial results (needed when splitting).
    pub scratch: Option<&'a AttentionScratch>,
}

/// Partial results of the split path: `[splits][n_tokens * n_head][head_dim]`
/// accumulators and `[splits][n_tokens * n_head][2]` running max and sum.
#[derive(Debug)]
pub struct AttentionScratch {
    partial_o: wgpu::Buffer,
    partial_ml: wgpu::Buffer,
}

impl AttentionScratch {
    /// Scratch for up to `max_splits` splits of `rows` (= n_tokens * n_head) rows.
    pub fn new(gpu: &Gpu, rows: u64, head_dim: u64, max_splits: u64) -> Result<Self> {
        let slots = rows
            .checked_mul(max_splits)
            .ok_or_else(|| Error::invalid("attention", "scratch size overflows u64"))?;
        let o_bytes = slots
            .checked_mul(head_dim)
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| Error::invalid("attention", "scratch size overflows u64"))?;
        let usage = wgpu::BufferUsages::empty();
        Ok(Self {
            partial_o: gpu.storage_buffer("attention.partial_o", o_bytes, usage)?,
            partial_ml: gpu.storage_buffer(
                "attention.partial_ml",
                slots.saturating_mul(8),
                usage,
            )?,
        })
    }

    /// How many splits of a call with `rows` rows of `head_dim` fit.
    pub fn splits_for(&self, rows: u64, head_dim: u64) -> u64 {
        let o_floats = self.partial_o.size() / 4;
        let ml_floats = self.partial_ml.size() / 4;
        match (rows.checked_mul(head_dim), rows.checked_mul(2)) {
            (Some(per_o), Some(per_ml)) if per_o > 0 => (o_floats / per_o).min(ml_floats / per_ml),
            _ => 0,
        }
    }
}

/// The compiled attention kernels for one head dimension and cache type.
#[derive(Debug, Clone)]
pub struct Attention {
    head_dim: u64,
    kv: KvType,
    bc: u64,
    direct: Arc<wgpu::ComputePipeline>,
    split: Arc<wgpu::ComputePipeline>,
    combine: Arc<wgpu::ComputePipeline>,
}

impl Attention {
    /// Compiles (or fetches from the cache) the pipelines for `head_dim` (a
    /// multiple of 16, at most 256) and a cache of `kv`.
    pub fn new(gpu: &Gpu, head_dim: u64, kv: KvType) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(16) || head_dim > MAX_HEAD_DIM {
            return Err(Error::invalid(
                "attention",
                format!("head_dim = {head_dim} is not a multiple of 16 in 16..={MAX_HEAD_DIM}"),
            ));
        }
        let bc = (KV_TILE / head_dim).min(MAX_BC);
        let overrides = [
            ("HEAD_DIM", head_dim as f64),
            ("BC", bc as f64),
            ("KV_F16", if kv == KvType::F16 { 1.0 } else { 0.0 }),
        ];
        Ok(Self {
            head_dim,
            kv,
            bc,
            direct: gpu.pipeline(SHADER, "attention", &overrides)?,
            split: gpu.pipeline(SHADER, "attention_split", &overrides)?,
            combine: gpu.pipeline(SHADER, "attention_combine", &overrides)?,
        })
    }

    /// Keys per tile for this head dimension.
    pub fn keys_per_tile(&self) -> u64 {
        self.bc
    }

    /// The split the `Auto` policy picks for `shape` on `gpu`, as keys per
    /// split (a multiple of the tile), or `None` for the direct path. Aims at
    /// enough workgroups to fill a large GPU, each with at least 256 keys.
    pub fn auto_chunk(&self, shape: &AttentionShape) -> Option<u64> {
        const TARGET_WORKGROUPS: u64 = 256;
        const MIN_KEYS: u64 = 256;
        let direct = shape.row_tiles().saturating_mul(shape.n_head_kv);
        let n_kv = shape.n_kv();
        if direct >= TARGET_WORKGROUPS / 4 || n_kv < 2 * MIN_KEYS {
            return None;
        }
        let splits = TARGET_WORKGROUPS
            .div_ceil(direct.max(1))
            .min(n_kv / MIN_KEYS)
            .max(1);
        let chunk = n_kv.div_ceil(splits).next_multiple_of(self.bc);
        (chunk < n_kv).then_some(chunk)
    }

    /// Records `out = attention(q, K, V)` for `shape` (module docs: layouts).
    /// `k_cache` and `v_cache` must hold `pos0 + n_tokens` positions. With a
    /// split, `scratch` holds the partial results.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        q: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        out: &wgpu::Buffer,
        shape: &AttentionShape,
        scale: f32,
        split: KvSplit,
        scratch: Option<&AttentionScratch>,
    ) -> Result<()> {
        let call = self.plan_call(gpu, q, k_cache, v_cache, out, shape, scale, split, scratch)?;
        if shape.n_tokens == 0 || shape.n_head == 0 {
            return Ok(());
        }
        let params = gpu.uniform("attention.params", &call.params)?;
        let buffers = AttentionBuffers {
            q,
            k_cache,
            v_cache,
            out,
            scratch,
        };
        self.prepare(gpu, buffers, shape, scale, call.splits, &params)?
            .encode(encoder);
        Ok(())
    }

    /// Checks a call and chooses its path: the params its dispatches read
    /// and the number of key splits (`split` against the scratch's room).
    /// `k_cache` and `v_cache` must hold `pos0 + n_tokens` positions.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_call(
        &self,
        gpu: &Gpu,
        q: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        out: &wgpu::Buffer,
        shape: &AttentionShape,
        scale: f32,
        split: KvSplit,
        scratch: Option<&AttentionScratch>,
    ) -> Result<AttentionCall> {
        let op = "attention";
        let params = self.check(op, q, k_cache, v_cache, out, shape, scale)?;
        let max_dim = u64::from(gpu.limits().max_compute_workgroups_per_dimension);
        let n_kv = shape.n_kv();
        let rows = shape.n_tokens.saturating_mul(shape.n_head);
        let chunk = match split {
            KvSplit::Off => None,
            KvSplit::Auto => self.auto_chunk(shape).and_then(|chunk| {
                let fits = scratch.map_or(0, |s| s.splits_for(rows, self.head_dim));
                // Fewer, larger splits when the scratch is small.
                let splits = n_kv.div_ceil(chunk).min(fits).min(max_dim);
                (splits > 1).then(|| n_kv.div_ceil(splits))
            }),
            KvSplit::Chunk(0) => return Err(Error::invalid(op, "a split of zero keys")),
            KvSplit::Chunk(chunk) => Some(chunk.min(n_kv)),
        };
        let Some(chunk) = chunk.filter(|&c| c > 0) else {
            return Ok(AttentionCall {
                params,
                splits: None,
            });
        };
        let n_splits = n_kv.div_ceil(chunk);
        Ok(AttentionCall {
            params: AttentionParams {
                kv_chunk: to_u32(op, "kv_chunk", chunk)?,
                n_splits: to_u32(op, "n_splits", n_splits)?,
                ..params
            },
            splits: Some(n_splits),
        })
    }

    /// The dispatches of a call of `shape`'s token and head counts taking
    /// `splits` key splits (`None`: the direct path), built once to be
    /// recorded into many steps. They read their params from the uniform
    /// `params`, which the caller fills with [`Attention::plan_call`]'s before
    /// each submit, for calls with these counts and splits and a position up
    /// to `shape.pos0` (the caches must hold `shape.n_kv()` positions).
    pub fn prepare(
        &self,
        gpu: &Gpu,
        b: AttentionBuffers<'_>,
        shape: &AttentionShape,
        scale: f32,
        splits: Option<u64>,
        params: &wgpu::Buffer,
    ) -> Result<Prepared> {
        let op = "attention";
        self.check(op, b.q, b.k_cache, b.v_cache, b.out, shape, scale)?;
        if shape.n_tokens == 0 || shape.n_head == 0 {
            return Ok(Prepared::none());
        }
        if params.size() < size_of::<AttentionParams>() as u64 {
            return Err(Error::invalid(op, "params buffer too small"));
        }
        let max_dim = u64::from(gpu.limits().max_compute_workgroups_per_dimension);
        let tiles = shape.row_tiles();
        if tiles > max_dim || shape.n_head_kv > max_dim {
            return Err(Error::DispatchTooLarge {
                op: op.to_owned(),
                workgroups: tiles.saturating_mul(shape.n_head_kv),
                limit: max_dim,
            });
        }
        let rows = shape.n_tokens * shape.n_head;
        let groups = Workgroups {
            x: to_u32(op, "row tiles", tiles)?,
            y: to_u32(op, "n_head_kv", shape.n_head_kv)?,
            z: 1,
        };
        let Some(n_splits) = splits else {
            let entries = [
                (0, b.q),
                (1, b.k_cache),
                (2, b.v_cache),
                (3, b.out),
                (6, params),
            ];
            return Ok(Dispatch::new(gpu, op, &self.direct, &entries, groups)?.into());
        };
        let Some(scratch) = b
            .scratch
            .filter(|s| s.splits_for(rows, self.head_dim) >= n_splits)
        else {
            return Err(Error::invalid(
                op,
                format!("no scratch for {n_splits} splits of {rows} rows"),
            ));
        };
        if n_splits > max_dim {
            return Err(Error::DispatchTooLarge {
                op: op.to_owned(),
                workgroups: n_splits,
                limit: max_dim,
            });
        }
        // Slots of the scratch are indexed in u32 by the shader.
        to_u32(op, "scratch elements", n_splits * rows * self.head_dim)?;
        let (po, pml) = (&scratch.partial_o, &scratch.partial_ml);
        let entries = [
            (0, b.q),
            (1, b.k_cache),
            (2, b.v_cache),
            (4, po),
            (5, pml),
            (6, params),
        ];
        let split_groups = Workgroups {
            z: to_u32(op, "n_splits", n_splits)?,
            ..groups
        };
        let mut prepared: Prepared =
            Dispatch::new(gpu, op, &self.split, &entries, split_groups)?.into();
        let combine = "attention_combine";
        let entries = [(3, b.out), (4, po), (5, pml), (6, params)];
        let groups = gpu.workgroups(combine, rows, 1)?;
        prepared.push(Dispatch::new(
            gpu,
            combine,
            &self.combine,
            &entries,
            groups,
        )?);
        Ok(prepared)
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        op: &str,
        q: &wgpu::Buffer,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        out: &wgpu::Buffer,
        shape: &AttentionShape,
        scale: f32,
    ) -> Result<AttentionParams> {
        if shape.head_dim != self.head_dim {
            return Err(Error::invalid(
                op,
                format!(
                    "head_dim {} but the kernel was built for {}",
                    shape.head_dim, self.head_dim
                ),
            ));
        }
        if shape.n_head_kv == 0 || !shape.n_head.is_multiple_of(shape.n_head_kv) {
            return Err(Error::invalid(
                op,
                format!(
                    "n_head = {} is not a multiple of n_head_kv = {}",
                    shape.n_head, shape.n_head_kv
                ),
            ));
        }
        if !scale.is_finite() {
            return Err(Error::invalid(op, format!("scale = {scale}")));
        }
        let elements = shape
            .q_elements()
            .ok_or_else(|| Error::invalid(op, format!("{shape:?} overflows u64")))?;
        check_f32_len(op, "q", q, elements)?;
        check_f32_len(op, "out", out, elements)?;
        let layout = KvLayout {
            n_ctx: shape.n_kv(),
            n_head_kv: shape.n_head_kv,
            head_dim: shape.head_dim,
            ty: self.kv,
        };
        layout.check_buffer(op, "k_cache", k_cache, shape.n_kv())?;
        layout.check_buffer(op, "v_cache", v_cache, shape.n_kv())?;
        // The shader indexes q, out and the caches (in elements) in u32.
        to_u32(op, "q elements", elements)?;
        let kv_elements = shape
            .n_kv()
            .saturating_mul(shape.n_head_kv * shape.head_dim);
        to_u32(op, "cache elements", kv_elements.saturating_add(1))?;
        Ok(AttentionParams {
            n_tokens: to_u32(op, "n_tokens", shape.n_tokens)?,
            n_head: to_u32(op, "n_head", shape.n_head)?,
            n_head_kv: to_u32(op, "n_head_kv", shape.n_head_kv)?,
            group: to_u32(op, "group", shape.n_head / shape.n_head_kv)?,
            pos0: to_u32(op, "pos0", shape.pos0)?,
            kv_chunk: 0,
            n_splits: 1,
            scale,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(
            AttentionParams,
            n_tokens,
            n_head,
            n_head_kv,
            group,
            pos0,
            kv_chunk,
            n_splits,
            scale
        );
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(
                source,
                "AttentionParams",
                size_of::<AttentionParams>(),
                &fields
            ),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
        assert!(source.contains(&format!("const ROWS: u32 = {ROWS}u;")));
        assert!(source.contains(&format!("const KV_TILE: u32 = {KV_TILE}u;")));
        assert!(source.contains(&format!("const MAX_BC: u32 = {MAX_BC}u;")));
        assert!(source.contains(&format!(
            "const MAX_DIMS_PER_LANE: u32 = {}u;",
            MAX_HEAD_DIM / 16
        )));
    }
}
