//! `rms_norm` (shaders/rms_norm.wgsl): RMSNorm times the norm weight, per row,
//! and the per-head form that Qwen3's q_norm/k_norm use.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "rms_norm";
/// Invocations per workgroup (one workgroup per row), as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// Mirrors `RmsNormParams` in rms_norm.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct RmsNormParams {
    /// Elements per row (the weight's length).
    pub n: u32,
    /// Number of rows.
    pub rows: u32,
    /// Added to the mean square (llama.cpp's `f_norm_rms_eps`).
    pub eps: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
}

/// What gets normalized: `rows` contiguous rows of `n` values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmsNormShape {
    /// Number of rows.
    pub rows: u64,
    /// Elements per row.
    pub n: u64,
}

impl RmsNormShape {
    /// `tokens` rows of width `n` (attn_norm, ffn_norm, output_norm).
    pub fn rows(tokens: u64, n: u64) -> Self {
        Self { rows: tokens, n }
    }

    /// Qwen3's q_norm/k_norm: every head of every token normalized on its own
    /// with a weight of `head_dim` values. Heads of a token are contiguous, so
    /// this is `tokens * heads` rows of `head_dim`.
    pub fn per_head(tokens: u64, heads: u64, head_dim: u64) -> Option<Self> {
        Some(Self {
            rows: tokens.checked_mul(heads)?,
            n: head_dim,
        })
    }

    fn elements(&self) -> Option<u64> {
        self.rows.checked_mul(self.n)
    }
}

/// The compiled RMSNorm kernel.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl RmsNorm {
    /// Compiles (or fetches from the cache) the pipeline.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            pipeline: gpu.pipeline(SHADER, "rms_norm", &[])?,
        })
    }

    /// Records `y = x / sqrt(mean(x^2) + eps) * weight` for every row of `shape`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: RmsNormShape,
        eps: f32,
    ) -> Result<()> {
        self.prepare(gpu, x, weight, y, shape, eps)?.encode(encoder);
        Ok(())
    }

    /// [`RmsNorm::encode`] built once, to be recorded into many steps.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: RmsNormShape,
        eps: f32,
    ) -> Result<Prepared> {
        let op = "rms_norm";
        let elements = shape
            .elements()
            .ok_or_else(|| Error::invalid(op, format!("{shape:?} overflows u64")))?;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::invalid(op, format!("eps = {eps}")));
        }
        check_f32_len(op, "x", x, elements)?;
        check_f32_len(op, "weight", weight, shape.n)?;
        check_f32_len(op, "y", y, elements)?;
        // The shader indexes with row * n in u32.
        to_u32(op, "rows * n", elements)?;
        let params = RmsNormParams {
            n: to_u32(op, "n", shape.n)?,
            rows: to_u32(op, "rows", shape.rows)?,
            eps,
            _pad0: 0,
        };
        if shape.n == 0 {
            return Ok(Prepared::none());
        }
        let groups = gpu.workgroups(op, shape.rows, 1)?;
        if groups.total() == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("rms_norm.params", &params)?;
        let entries = [(0, x), (1, weight), (2, y), (3, &params)];
        Ok(Dispatch::new(gpu, op, &self.pipeline, &entries, groups)?.into())
    }
}

/// CPU reference, computed as ggml does: the sum of squares in f64, then
/// `1 / sqrt(mean + eps)` in f32, times the weight. `x.len()` must be a multiple
/// of `weight.len()`; a trailing partial row is ignored.
pub fn rms_norm_reference(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let n = weight.len();
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(n) {
        let sum: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        out.extend(row.iter().zip(weight).map(|(&v, &w)| v * scale * w));
    }
    out
}

/// CPU reference of the per-head form, written head by head (independently of
/// [`RmsNormShape::per_head`]'s reshape): `x` is `[tokens][heads][head_dim]`.
pub fn rms_norm_per_head_reference(x: &[f32], weight: &[f32], heads: usize, eps: f32) -> Vec<f32> {
    let head_dim = weight.len();
    let Some(token_len) = heads.checked_mul(head_dim).filter(|&l| l > 0) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(x.len());
    for token in x.chunks_exact(token_len) {
        for h in 0..heads {
            let head = &token[h * head_dim..(h + 1) * head_dim];
            out.extend(rms_norm_reference(head, weight, eps));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(RmsNormParams, n, rows, eps, _pad0);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "RmsNormParams", size_of::<RmsNormParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
    }

    #[test]
    fn reference_normalizes_each_row() {
        // Row [3, 4]: mean square 12.5; a zero row stays zero when eps > 0.
        let y = rms_norm_reference(&[3.0, 4.0, 0.0, 0.0], &[1.0, 2.0], 1e-6);
        let s = 1.0 / (12.5f32 + 1e-6).sqrt();
        assert_eq!(y, [3.0 * s, 8.0 * s, 0.0, 0.0]);
    }

    #[test]
    fn per_head_matches_reshaped_rows() {
        let x: Vec<f32> = (0..24).map(|i| (i as f32 - 11.5) * 0.3).collect();
        let w = [0.5, 1.0, 1.5, 2.0];
        let per_head = rms_norm_per_head_reference(&x, &w, 3, 1e-6);
        assert_eq!(per_head, rms_norm_reference(&x, &w, 1e-6));
        assert_eq!(
            RmsNormShape::per_head(2, 3, 4),
            Some(RmsNormShape { rows: 6, n: 4 })
        );
    }
}
