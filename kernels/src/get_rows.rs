//! `get_rows` (shaders/get_rows.wgsl): rows of a weight matrix picked by id and
//! dequantized to f32 (the token embedding lookup, `token_embd.weight`).
//!
//! Layout: the weight is `n_rows` rows of `n_cols` elements in any type of
//! [`SUPPORTED`], in its GGUF block format (rows are `ty.bytes_for(n_cols)`
//! bytes, back to back), uploaded as raw bytes padded to 4; `ids` holds u32;
//! `dst` is `[n_ids][n_cols]` f32. An id past the last row gives a row of zeros.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use seldon_formats::GgmlType;

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "get_rows";
/// Invocations per workgroup (one workgroup per output row), as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// The weight types the shader dequantizes.
pub const SUPPORTED: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// Mirrors `GetRowsParams` in get_rows.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GetRowsParams {
    /// Elements per row.
    pub n_cols: u32,
    /// Rows to fetch.
    pub n_ids: u32,
    /// Rows of the weight.
    pub n_rows: u32,
    /// Bytes per weight row.
    pub row_bytes: u32,
}

/// The compiled lookup for one weight type.
#[derive(Debug, Clone)]
pub struct GetRows {
    ty: GgmlType,
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl GetRows {
    /// Compiles (or fetches from the cache) the pipeline for weights of `ty`.
    pub fn new(gpu: &Gpu, ty: GgmlType) -> Result<Self> {
        if !SUPPORTED.contains(&ty) {
            return Err(Error::invalid(
                "get_rows",
                format!("no GPU dequantization for {ty}"),
            ));
        }
        Ok(Self {
            ty,
            pipeline: gpu.pipeline(SHADER, "get_rows", &[("TYPE", f64::from(ty.id()))])?,
        })
    }

    /// Records `dst[r] = dequantize(weight[ids[r]])` for `r < n_ids`, where the
    /// weight has `n_rows` rows of `n_cols` elements.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        weight: &wgpu::Buffer,
        ids: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n_rows: u64,
        n_cols: u64,
        n_ids: u64,
    ) -> Result<()> {
        self.prepare(gpu, weight, ids, dst, n_rows, n_cols, n_ids)?
            .encode(encoder);
        Ok(())
    }

    /// [`GetRows::encode`] built once, to be recorded into many steps (the
    /// ids are read from `ids` when the step runs).
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &self,
        gpu: &Gpu,
        weight: &wgpu::Buffer,
        ids: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n_rows: u64,
        n_cols: u64,
        n_ids: u64,
    ) -> Result<Prepared> {
        let op = "get_rows";
        let ty = self.ty;
        if !n_cols.is_multiple_of(ty.block_size()) {
            return Err(Error::invalid(
                op,
                format!("{n_cols} columns are not whole {ty} blocks"),
            ));
        }
        let row_bytes = ty
            .bytes_for(n_cols)
            .ok_or_else(|| Error::invalid(op, format!("{n_cols} columns of {ty} overflow")))?;
        let weight_bytes = row_bytes
            .checked_mul(n_rows)
            .ok_or_else(|| Error::invalid(op, "weight size overflows u64"))?;
        if weight.size() < weight_bytes {
            return Err(Error::invalid(
                op,
                format!(
                    "weight holds {} bytes, {n_rows} rows of {n_cols} {ty} need {weight_bytes}",
                    weight.size()
                ),
            ));
        }
        let out = n_ids
            .checked_mul(n_cols)
            .ok_or_else(|| Error::invalid(op, "n_ids * n_cols overflows u64"))?;
        check_f32_len(op, "ids", ids, n_ids)?;
        check_f32_len(op, "dst", dst, out)?;
        // The shader addresses weight bytes and dst elements in u32.
        to_u32(op, "weight bytes", weight_bytes)?;
        to_u32(op, "dst elements", out)?;
        let params = GetRowsParams {
            n_cols: to_u32(op, "n_cols", n_cols)?,
            n_ids: to_u32(op, "n_ids", n_ids)?,
            n_rows: to_u32(op, "n_rows", n_rows)?,
            row_bytes: to_u32(op, "row_bytes", row_bytes)?,
        };
        let groups = gpu.workgroups(op, n_ids, 1)?;
        if groups.total() == 0 || n_cols == 0 {
            return Ok(Prepared::none());
        }
        let params = gpu.uniform("get_rows.params", &params)?;
        let entries = [(0, weight), (1, ids), (2, dst), (3, &params)];
        Ok(Dispatch::new(gpu, op, &self.pipeline, &entries, groups)?.into())
    }
}

/// CPU reference: each id's row of `weight` (raw `ty` bytes, rows of `n_cols`)
/// through seldon-formats' dequantizer, zeros for an id past the last row.
pub fn get_rows_reference(
    ty: GgmlType,
    weight: &[u8],
    n_cols: usize,
    ids: &[u32],
) -> std::result::Result<Vec<f32>, seldon_formats::quant::QuantError> {
    let row_bytes = ty.bytes_for(n_cols as u64).unwrap_or(0) as usize;
    let n_rows = weight.len().checked_div(row_bytes).unwrap_or(0);
    let mut out = vec![0.0f32; ids.len() * n_cols];
    for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(n_cols.max(1))) {
        let id = id as usize;
        if id < n_rows {
            let row = &weight[id * row_bytes..(id + 1) * row_bytes];
            seldon_formats::quant::dequantize(ty, row, dst)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(GetRowsParams, n_cols, n_ids, n_rows, row_bytes);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "GetRowsParams", size_of::<GetRowsParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
    }

    #[test]
    fn every_supported_type_has_a_case_with_its_block_size() {
        // Each quantized case steps through blocks of the type's byte size.
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        for ty in SUPPORTED {
            assert!(seldon_formats::quant::supports(ty), "{ty}");
            let case = format!("case {}u: {{", ty.id());
            let line = source.lines().find(|l| l.contains(&case));
            let Some(line) = line else {
                panic!("no case for {ty}");
            };
            if ty.block_size() > 1 {
                let step = format!("{}u * (e / {}u)", ty.type_size(), ty.block_size());
                assert!(line.contains(&step), "{ty}: {line}");
            }
        }
    }

    #[test]
    fn reference_zeroes_rows_past_the_end() {
        let w: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = get_rows_reference(GgmlType::F32, &w, 2, &[1, 5, 0]);
        assert_eq!(out, Ok(vec![3.0, 4.0, 0.0, 0.0, 1.0, 2.0]));
    }
}
