//! `softmax` (shaders/softmax.wgsl): a scaled softmax over each row, ggml's
//! `SOFT_MAX` without a mask. `x` and `y` are `[rows][n]` f32.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, record, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "softmax";
/// Invocations per workgroup (one workgroup per row), as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// Mirrors `SoftmaxParams` in softmax.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct SoftmaxParams {
    /// Elements per row.
    pub n: u32,
    /// Rows.
    pub rows: u32,
    /// Multiplies `x` before the softmax.
    pub scale: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
}

/// The compiled softmax kernel.
#[derive(Debug, Clone)]
pub struct Softmax {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Softmax {
    /// Compiles (or fetches from the cache) the pipeline.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            pipeline: gpu.pipeline(SHADER, "softmax", &[])?,
        })
    }

    /// Records `y = softmax(scale * x)` over each of `rows` rows of `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: u64,
        n: u64,
        scale: f32,
    ) -> Result<()> {
        let op = "softmax";
        if !scale.is_finite() {
            return Err(Error::invalid(op, format!("scale = {scale}")));
        }
        let elements = rows
            .checked_mul(n)
            .ok_or_else(|| Error::invalid(op, "rows * n overflows u64"))?;
        check_f32_len(op, "x", x, elements)?;
        check_f32_len(op, "y", y, elements)?;
        to_u32(op, "rows * n", elements)?;
        let params = SoftmaxParams {
            n: to_u32(op, "n", n)?,
            rows: to_u32(op, "rows", rows)?,
            scale,
            _pad0: 0,
        };
        let groups = gpu.workgroups(op, rows, 1)?;
        if n == 0 || groups.total() == 0 {
            return Ok(());
        }
        let params = gpu.uniform("softmax.params", &params)?;
        let bind_group = gpu.bind_group(op, &self.pipeline, &[(0, x), (1, y), (2, &params)])?;
        record(encoder, op, &self.pipeline, &bind_group, groups);
        Ok(())
    }
}

/// CPU reference in f64: `x.len()` is a multiple of `n`; a trailing partial
/// row is ignored.
pub fn softmax_reference(x: &[f32], n: usize, scale: f32) -> Vec<f32> {
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(n) {
        let scaled: Vec<f64> = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(scale))
            .collect();
        let m = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scaled.iter().map(|&v| (v - m).exp()).collect();
        let sum: f64 = exps.iter().sum();
        out.extend(exps.iter().map(|&e| (e / sum) as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(SoftmaxParams, n, rows, scale, _pad0);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "SoftmaxParams", size_of::<SoftmaxParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
    }

    #[test]
    fn reference_sums_to_one_and_survives_large_inputs() {
        let y = softmax_reference(&[0.0, 0.0, 1e30, 1e30, f32::NEG_INFINITY, 0.0], 2, 1.0);
        assert_eq!(y, [0.5, 0.5, 0.5, 0.5, 0.0, 1.0]);
        let y = softmax_reference(&[1.0, 2.0], 2, 2.0);
        let e = (-2.0f64).exp();
        assert!((f64::from(y[0]) - e / (1.0 + e)).abs() < 1e-7);
    }
}
