//! `argmax`, `top_k` (shaders/argmax.wgsl): the best entries of each row of
//! `[rows][n]` f32 logits, for greedy decoding and top-k sampling.
//!
//! Order: larger value first, lower index first among equal values (so argmax
//! matches ggml's `ARGMAX`, which keeps the first maximum). NaNs are skipped;
//! -inf is an ordinary value. Outputs: argmax writes one u32 per row; top-k
//! writes `[rows][k]` u32 indices and `[rows][k]` f32 values, best first, padded
//! with index [`NO_INDEX`] and value -inf when a row has fewer than `k` non-NaN
//! values.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, record, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "argmax";
/// Invocations per workgroup (one workgroup per row), as in the WGSL.
pub const WORKGROUP: u32 = 256;
/// The largest `k` top-k accepts.
pub const MAX_K: u64 = 64;
/// The index top-k pads with.
pub const NO_INDEX: u32 = u32::MAX;

/// Mirrors `ArgmaxParams` in argmax.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ArgmaxParams {
    /// Elements per row.
    pub n: u32,
    /// Rows.
    pub rows: u32,
    /// Entries per row (top-k only).
    pub k: u32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
}

/// The compiled argmax and top-k kernels.
#[derive(Debug, Clone)]
pub struct Argmax {
    argmax: Arc<wgpu::ComputePipeline>,
    top_k: Arc<wgpu::ComputePipeline>,
}

impl Argmax {
    /// Compiles (or fetches from the cache) both pipelines.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            argmax: gpu.pipeline(SHADER, "argmax", &[])?,
            top_k: gpu.pipeline(SHADER, "top_k", &[])?,
        })
    }

    /// Records `indices[r] = argmax(x[r])` (u32) for each of `rows` rows of `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_argmax(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        indices: &wgpu::Buffer,
        rows: u64,
        n: u64,
    ) -> Result<()> {
        let op = "argmax";
        let params = check(op, x, rows, n, 1)?;
        check_f32_len(op, "indices", indices, rows)?;
        let groups = gpu.workgroups(op, rows, 1)?;
        if groups.total() == 0 {
            return Ok(());
        }
        let params = gpu.uniform("argmax.params", &params)?;
        let bind_group = gpu.bind_group(op, &self.argmax, &[(0, x), (1, indices), (3, &params)])?;
        record(encoder, op, &self.argmax, &bind_group, groups);
        Ok(())
    }

    /// Records the `k` best entries of each row: `indices` (u32) and `values`
    /// (f32), both `[rows][k]`, best first.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_top_k(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        indices: &wgpu::Buffer,
        values: &wgpu::Buffer,
        rows: u64,
        n: u64,
        k: u64,
    ) -> Result<()> {
        let op = "top_k";
        if k == 0 || k > MAX_K {
            return Err(Error::invalid(op, format!("k = {k} is not in 1..={MAX_K}")));
        }
        let params = check(op, x, rows, n, k)?;
        let outputs = rows.saturating_mul(k);
        check_f32_len(op, "indices", indices, outputs)?;
        check_f32_len(op, "values", values, outputs)?;
        to_u32(op, "rows * k", outputs)?;
        let groups = gpu.workgroups(op, rows, 1)?;
        if groups.total() == 0 {
            return Ok(());
        }
        let params = gpu.uniform("top_k.params", &params)?;
        let bind_group = gpu.bind_group(
            op,
            &self.top_k,
            &[(0, x), (1, indices), (2, values), (3, &params)],
        )?;
        record(encoder, op, &self.top_k, &bind_group, groups);
        Ok(())
    }
}

fn check(op: &str, x: &wgpu::Buffer, rows: u64, n: u64, k: u64) -> Result<ArgmaxParams> {
    if n == 0 {
        return Err(Error::invalid(op, "rows of zero elements have no maximum"));
    }
    let elements = rows
        .checked_mul(n)
        .ok_or_else(|| Error::invalid(op, "rows * n overflows u64"))?;
    check_f32_len(op, "x", x, elements)?;
    to_u32(op, "rows * n", elements)?;
    Ok(ArgmaxParams {
        n: to_u32(op, "n", n)?,
        rows: to_u32(op, "rows", rows)?,
        k: to_u32(op, "k", k)?,
        _pad0: 0,
    })
}

/// Whether `(v, i)` comes before `(w, j)`: larger value, then lower index.
fn before(v: f32, i: usize, w: f32, j: usize) -> bool {
    v > w || (v == w && i < j)
}

/// CPU reference of argmax: per row of `n`, the first index of the largest
/// non-NaN value (0 when there is none).
pub fn argmax_reference(x: &[f32], n: usize) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    x.chunks_exact(n)
        .map(|row| {
            let mut best: Option<(f32, usize)> = None;
            for (i, &v) in row.iter().enumerate() {
                if !v.is_nan() && best.is_none_or(|(bv, bi)| before(v, i, bv, bi)) {
                    best = Some((v, i));
                }
            }
            best.map_or(0, |(_, i)| i as u32)
        })
        .collect()
}

/// CPU reference of top-k: per row of `n`, the `k` best `(index, value)` pairs
/// in order, padded with `(NO_INDEX, -inf)`.
pub fn top_k_reference(x: &[f32], n: usize, k: usize) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for row in x.chunks_exact(n) {
        let mut order: Vec<usize> = (0..n).filter(|&i| !row[i].is_nan()).collect();
        // NaNs are gone, so partial_cmp always answers (and -0 equals 0).
        order.sort_by(|&i, &j| {
            row[j]
                .partial_cmp(&row[i])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(i.cmp(&j))
        });
        for r in 0..k {
            out.push(
                order
                    .get(r)
                    .map_or((NO_INDEX, f32::NEG_INFINITY), |&i| (i as u32, row[i])),
            );
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
        let fields = crate::params_layout!(ArgmaxParams, n, rows, k, _pad0);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "ArgmaxParams", size_of::<ArgmaxParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
        assert!(source.contains(&format!("const NONE: u32 = 0x{NO_INDEX:X}u;")));
    }

    #[test]
    fn references_prefer_the_first_maximum_and_skip_nan() {
        let x = [1.0, 3.0, f32::NAN, 3.0, -0.0, 0.0];
        assert_eq!(argmax_reference(&x, 6), [1]);
        assert_eq!(argmax_reference(&[f32::NAN, f32::NEG_INFINITY], 2), [1]);
        assert_eq!(argmax_reference(&[f32::NAN; 3], 3), [0]);
        assert_eq!(
            top_k_reference(&x, 6, 4),
            [(1, 3.0), (3, 3.0), (0, 1.0), (4, -0.0)]
        );
        assert_eq!(
            top_k_reference(&[f32::NAN, 2.0], 2, 2),
            [(1, 2.0), (NO_INDEX, f32::NEG_INFINITY)]
        );
    }
}
