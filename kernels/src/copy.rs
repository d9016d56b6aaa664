//! `copy_vec4` (shaders/copy.wgsl): the bandwidth ceiling kernel.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, record, to_u32};
use crate::error::Result;
use crate::gpu::Gpu;

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "copy";
/// Invocations (vec4 elements) per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// Mirrors `CopyParams` in copy.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct CopyParams {
    /// Number of 16-byte elements to copy.
    pub n_vec4: u32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
}

/// The compiled copy kernel.
#[derive(Debug, Clone)]
pub struct CopyVec4 {
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl CopyVec4 {
    /// Compiles (or fetches from the cache) the pipeline.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            pipeline: gpu.pipeline(SHADER, "copy_vec4", &[])?,
        })
    }

    /// Records `dst[..n_vec4] = src[..n_vec4]` (16-byte elements) into `encoder`.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n_vec4: u64,
    ) -> Result<()> {
        let op = "copy_vec4";
        let floats = n_vec4.saturating_mul(4);
        check_f32_len(op, "src", src, floats)?;
        check_f32_len(op, "dst", dst, floats)?;
        let params = CopyParams {
            n_vec4: to_u32(op, "n_vec4", n_vec4)?,
            ..CopyParams::default()
        };
        let groups = gpu.workgroups(op, n_vec4, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(());
        }
        let params = gpu.uniform("copy_vec4.params", &params)?;
        let bind_group = gpu.bind_group(op, &self.pipeline, &[(0, src), (1, dst), (2, &params)])?;
        record(encoder, op, &self.pipeline, &bind_group, groups);
        Ok(())
    }
}

/// CPU reference: the first `n_vec4 * 4` values of `src`.
pub fn copy_reference(src: &[f32], n_vec4: usize) -> Vec<f32> {
    src.iter().take(n_vec4.saturating_mul(4)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(CopyParams, n_vec4, _pad0, _pad1, _pad2);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "CopyParams", size_of::<CopyParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
    }
}
