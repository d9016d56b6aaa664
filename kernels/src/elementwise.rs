//! `add`, `mul`, `scale` (shaders/elementwise.wgsl): elementwise f32 ops, with
//! `b` broadcast along the rows of `a` for add and mul.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "elementwise";
/// Elements per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// Mirrors `ElementwiseParams` in elementwise.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct ElementwiseParams {
    /// Elements of `a` and `y`.
    pub n: u32,
    /// Elements of `b` (divides `n`; unused by scale).
    pub nb: u32,
    /// The factor of scale (unused by add and mul).
    pub scale: f32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
}

/// A binary elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a * b`.
    Mul,
}

impl BinaryOp {
    fn entry(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Mul => "mul",
        }
    }

    /// The operation on one pair of values.
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Self::Add => a + b,
            Self::Mul => a * b,
        }
    }
}

/// The compiled elementwise kernels.
#[derive(Debug, Clone)]
pub struct Elementwise {
    add: Arc<wgpu::ComputePipeline>,
    mul: Arc<wgpu::ComputePipeline>,
    scale: Arc<wgpu::ComputePipeline>,
}

impl Elementwise {
    /// Compiles (or fetches from the cache) the three pipelines.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            add: gpu.pipeline(SHADER, "add", &[])?,
            mul: gpu.pipeline(SHADER, "mul", &[])?,
            scale: gpu.pipeline(SHADER, "scale", &[])?,
        })
    }

    /// Records `y[i] = a[i] op b[i % nb]` for `i < n` into `encoder`; `nb` must
    /// divide `n` (`nb == n` is the same-shape case).
    #[allow(clippy::too_many_arguments)]
    pub fn encode_binary(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        op: BinaryOp,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
        nb: u64,
    ) -> Result<()> {
        self.prepare_binary(gpu, op, a, b, y, n, nb)?
            .encode(encoder);
        Ok(())
    }

    /// [`Elementwise::encode_binary`] built once, to be recorded into many steps.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare_binary(
        &self,
        gpu: &Gpu,
        op: BinaryOp,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
        nb: u64,
    ) -> Result<Prepared> {
        let name = op.entry();
        if nb == 0 || !n.is_multiple_of(nb) {
            return Err(Error::invalid(
                name,
                format!("nb = {nb} does not divide n = {n}"),
            ));
        }
        check_f32_len(name, "a", a, n)?;
        check_f32_len(name, "b", b, nb)?;
        check_f32_len(name, "y", y, n)?;
        let params = ElementwiseParams {
            n: to_u32(name, "n", n)?,
            nb: to_u32(name, "nb", nb)?,
            ..ElementwiseParams::default()
        };
        let pipeline = match op {
            BinaryOp::Add => &self.add,
            BinaryOp::Mul => &self.mul,
        };
        let groups = gpu.workgroups(name, n, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("elementwise.params", &params)?;
        let entries = [(0, a), (1, b), (2, y), (3, &params)];
        Ok(Dispatch::new(gpu, name, pipeline, &entries, groups)?.into())
    }

    /// Records `y[i] = a[i] * scale` for `i < n` into `encoder`.
    pub fn encode_scale(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        a: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
        scale: f32,
    ) -> Result<()> {
        self.prepare_scale(gpu, a, y, n, scale)?.encode(encoder);
        Ok(())
    }

    /// [`Elementwise::encode_scale`] built once, to be recorded into many steps.
    pub fn prepare_scale(
        &self,
        gpu: &Gpu,
        a: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n: u64,
        scale: f32,
    ) -> Result<Prepared> {
        let name = "scale";
        check_f32_len(name, "a", a, n)?;
        check_f32_len(name, "y", y, n)?;
        let params = ElementwiseParams {
            n: to_u32(name, "n", n)?,
            nb: 1,
            scale,
            _pad0: 0,
        };
        let groups = gpu.workgroups(name, n, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("elementwise.params", &params)?;
        // Binding 1 (b) is unused by `scale`, so the derived layout omits it.
        let entries = [(0, a), (2, y), (3, &params)];
        Ok(Dispatch::new(gpu, name, &self.scale, &entries, groups)?.into())
    }
}

/// CPU reference of [`Elementwise::encode_binary`]: `b` repeats along `a`.
pub fn binary_reference(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f32> {
    if b.is_empty() {
        return Vec::new();
    }
    a.iter()
        .zip(b.iter().cycle())
        .map(|(&x, &y)| op.apply(x, y))
        .collect()
}

/// CPU reference of [`Elementwise::encode_scale`].
pub fn scale_reference(a: &[f32], scale: f32) -> Vec<f32> {
    a.iter().map(|&x| x * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(ElementwiseParams, n, nb, scale, _pad0);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(
                source,
                "ElementwiseParams",
                size_of::<ElementwiseParams>(),
                &fields
            ),
            Ok(())
        );
        assert_eq!(
            source
                .matches(&format!("@workgroup_size({WORKGROUP})"))
                .count(),
            3
        );
    }

    #[test]
    fn reference_broadcasts_b_along_rows() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            binary_reference(BinaryOp::Add, &a, &[10.0, 20.0]),
            [11.0, 22.0, 13.0, 24.0]
        );
        assert_eq!(
            binary_reference(BinaryOp::Mul, &a, &[2.0]),
            [2.0, 4.0, 6.0, 8.0]
        );
        assert_eq!(scale_reference(&a, -0.5), [-0.5, -1.0, -1.5, -2.0]);
    }
}
