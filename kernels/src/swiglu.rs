//! The feed-forward activations (shaders/swiglu.wgsl): `swiglu`, silu(gate) *
//! up (Llama), and `relu_sqr`, max(x, 0)^2 (BitNet's squared ReLU).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, to_u32};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "swiglu";
/// Elements per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// Mirrors `SwigluParams` in swiglu.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SwigluParams {
    /// Number of elements.
    pub n: u32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
}

/// The compiled SwiGLU kernel.
#[derive(Debug, Clone)]
pub struct Swiglu {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Swiglu {
    /// Compiles (or fetches from the cache) the pipeline.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            pipeline: gpu.pipeline(SHADER, "swiglu", &[])?,
        })
    }

    /// Records `y[i] = silu(gate[i]) * up[i]` for `i < n` into `encoder`.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        gate: &wgpu::Buffer,
        up: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
    ) -> Result<()> {
        self.prepare(gpu, gate, up, y, n)?.encode(encoder);
        Ok(())
    }

    /// [`Swiglu::encode`] built once, to be recorded into many steps.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        gate: &wgpu::Buffer,
        up: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
    ) -> Result<Prepared> {
        let op = "swiglu";
        check_f32_len(op, "gate", gate, n)?;
        check_f32_len(op, "up", up, n)?;
        check_f32_len(op, "y", y, n)?;
        let params = SwigluParams {
            n: to_u32(op, "n", n)?,
            ..SwigluParams::default()
        };
        let groups = gpu.workgroups(op, n, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("swiglu.params", &params)?;
        let entries = [(0, gate), (1, up), (2, y), (3, &params)];
        Ok(Dispatch::new(gpu, op, &self.pipeline, &entries, groups)?.into())
    }
}

/// The compiled squared-ReLU kernel: `y[i] = max(x[i], 0)^2`.
#[derive(Debug, Clone)]
pub struct ReluSqr {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl ReluSqr {
    /// Compiles (or fetches from the cache) the pipeline.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            pipeline: gpu.pipeline(SHADER, "relu_sqr", &[])?,
        })
    }

    /// Records `y[i] = max(x[i], 0)^2` for `i < n` into `encoder` (`x` and `y`
    /// may not be the same buffer: wgpu forbids binding it read and read-write).
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
    ) -> Result<()> {
        self.prepare(gpu, x, y, n)?.encode(encoder);
        Ok(())
    }

    /// [`ReluSqr::encode`] built once, to be recorded into many steps.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
    ) -> Result<Prepared> {
        let op = "relu_sqr";
        check_f32_len(op, "x", x, n)?;
        check_f32_len(op, "y", y, n)?;
        let params = SwigluParams {
            n: to_u32(op, "n", n)?,
            ..SwigluParams::default()
        };
        let groups = gpu.workgroups(op, n, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("relu_sqr.params", &params)?;
        // Binding 1 (up) is unused by `relu_sqr`, so the derived layout omits it.
        let entries = [(0, x), (2, y), (3, &params)];
        Ok(Dispatch::new(gpu, op, &self.pipeline, &entries, groups)?.into())
    }
}

/// ggml's relu then sqr: `r = x > 0 ? x : 0`, then `r * r` (a NaN gives 0).
pub fn relu_sqr(x: f32) -> f32 {
    let r = if x > 0.0 { x } else { 0.0 };
    r * r
}

/// CPU reference: `relu_sqr(x[i])` for every element.
pub fn relu_sqr_reference(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| relu_sqr(v)).collect()
}

/// ggml's silu: x / (1 + e^-x).
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// CPU reference: `silu(gate[i]) * up[i]` over the shorter of the two.
pub fn swiglu_reference(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter().zip(up).map(|(&g, &u)| silu(g) * u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(SwigluParams, n, _pad0, _pad1, _pad2);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "SwigluParams", size_of::<SwigluParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
    }

    #[test]
    fn silu_matches_known_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu(-1.0) + 0.268_941_43).abs() < 1e-6);
        // Large negative inputs underflow to -0, never NaN.
        assert_eq!(silu(-200.0), 0.0);
        assert_eq!(swiglu_reference(&[1.0, 2.0], &[2.0]), vec![2.0 * silu(1.0)]);
    }

    #[test]
    fn relu_sqr_matches_known_values() {
        assert_eq!(
            relu_sqr_reference(&[-2.0, -0.0, 0.0, 0.5, 3.0, f32::NAN]),
            vec![0.0, 0.0, 0.0, 0.25, 9.0, 0.0]
        );
        assert_eq!(relu_sqr(f32::MAX), f32::INFINITY);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})\nfn relu_sqr(")));
    }
}
