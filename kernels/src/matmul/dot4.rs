//! `matvec_q8_dot4` (shaders/matvec_q8_dot4.wgsl): the decode product with
//! activations quantized to Q8_0 on the GPU and integer dot products through
//! `dot4I8Packed`, as ggml's CPU backend computes Q8_0 and Q4_0 products. An
//! opt-in variant of [`super::MatMul`]'s f32 `matvec` for adapters with packed
//! 4x8 dot products; [`reference_q8_activations`] is its oracle.

use std::sync::Arc;

use seldon_formats::GgmlType;
use seldon_formats::quant::{dequantize_to_vec, quantize_to_vec};

use super::{
    MATVEC_MAX_COLS, MATVEC_ROWS, MatMulShape, check_activations, checked_mul, reference,
    weight_params,
};
use crate::args::{record, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "matvec_q8_dot4";
/// The weight types this variant multiplies.
pub const Q8_DOT4_TYPES: &[GgmlType] = &[GgmlType::Q4_0, GgmlType::Q8_0];
/// u32 words per 32-element block of quantized activations (`XQ_WORDS`): the
/// f16-rounded scale as f32 bits, then 32 quants packed 4 per word.
pub const XQ_WORDS_PER_BLOCK: u64 = 9;
/// Invocations per `quantize_q8_0` workgroup (one block each).
const QUANTIZE_WORKGROUP: u32 = 64;
/// Elements per Q8_0 block.
const QK: u64 = 32;

/// The compiled quantize and matvec pipelines for one weight type.
#[derive(Debug, Clone)]
pub struct MatVecQ8Dot4 {
    ty: GgmlType,
    quantize: Arc<wgpu::ComputePipeline>,
    matvec: Arc<wgpu::ComputePipeline>,
}

impl MatVecQ8Dot4 {
    /// Compiles the pipelines for weights of type `ty` (one of
    /// [`Q8_DOT4_TYPES`]); fails where the device lacks packed dot products.
    pub fn new(gpu: &Gpu, ty: GgmlType) -> Result<Self> {
        let op = "matvec_q8_dot4";
        if !Q8_DOT4_TYPES.contains(&ty) {
            return Err(Error::invalid(op, format!("no Q8 dot4 matvec for {ty}")));
        }
        if !gpu.features().dot4_packed {
            return Err(Error::invalid(
                op,
                "the device lacks dot4I8Packed (or force_portable is set)",
            ));
        }
        let overrides = [("WEIGHT_TYPE", f64::from(ty.id()))];
        Ok(Self {
            ty,
            quantize: gpu.pipeline(SHADER, "quantize_q8_0", &overrides)?,
            matvec: gpu.pipeline(SHADER, "matvec", &overrides)?,
        })
    }

    /// The weight type these kernels multiply.
    pub fn weight_type(&self) -> GgmlType {
        self.ty
    }

    /// Bytes of the scratch buffer that holds `shape`'s quantized activations.
    pub fn scratch_bytes(shape: MatMulShape) -> Option<u64> {
        (shape.n_in / QK)
            .checked_mul(shape.n_cols)?
            .checked_mul(XQ_WORDS_PER_BLOCK * 4)
    }

    /// Records the quantization of `x` into `scratch` (at least
    /// [`MatVecQ8Dot4::scratch_bytes`]) and then `y = W xq`, for at most
    /// [`MATVEC_MAX_COLS`] columns.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        scratch: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
    ) -> Result<()> {
        let op = "matvec_q8_dot4";
        if shape.n_cols > MATVEC_MAX_COLS {
            return Err(Error::invalid(
                op,
                format!(
                    "{} columns, matvec takes at most {MATVEC_MAX_COLS}",
                    shape.n_cols
                ),
            ));
        }
        let params = weight_params(gpu, op, self.ty, weights, shape.n_in, shape.n_out)?;
        check_activations(gpu, op, x, y, shape)?;
        let scratch_bytes = Self::scratch_bytes(shape)
            .ok_or_else(|| Error::invalid(op, "quantized activations overflow u64"))?;
        if scratch.size() < scratch_bytes {
            return Err(Error::invalid(
                op,
                format!(
                    "scratch holds {} bytes, the quantized activations need {scratch_bytes}",
                    scratch.size()
                ),
            ));
        }
        gpu.check_binding("matvec_q8_dot4 scratch", scratch.size())?;
        let params = super::MatMulParams {
            n_cols: to_u32(op, "n_cols", shape.n_cols)?,
            ..params
        };
        if shape.n_out == 0 || shape.n_cols == 0 {
            return Ok(());
        }
        let label = format!("{op} {}", self.ty);
        let params = gpu.uniform(&format!("{label}.params"), &params)?;
        let blocks = checked_mul(op, "activation blocks", shape.n_in / QK, shape.n_cols)?;
        let groups = gpu.workgroups(op, blocks, QUANTIZE_WORKGROUP)?;
        if groups.total() > 0 {
            let bind_group = gpu.bind_group(
                &label,
                &self.quantize,
                &[(1, x), (2, scratch), (4, &params)],
            )?;
            record(encoder, &label, &self.quantize, &bind_group, groups);
        }
        let groups = gpu.workgroups(op, shape.n_out, MATVEC_ROWS)?;
        let bind_group = gpu.bind_group(
            &label,
            &self.matvec,
            &[(0, weights), (2, scratch), (3, y), (4, &params)],
        )?;
        record(encoder, &label, &self.matvec, &bind_group, groups);
        Ok(())
    }
}

/// What `quantize_q8_0` writes for `x` (`n_cols` columns of `n_in`, a
/// multiple of 32): seldon-formats' Q8_0 blocks (bit-exact with ggml) in the
/// GPU layout of [`XQ_WORDS_PER_BLOCK`] words per block.
pub fn quantize_activations_reference(x: &[f32], n_in: u64, n_cols: u64) -> Result<Vec<u32>> {
    let op = "matvec_q8_dot4 reference";
    let len = usize::try_from(checked_mul(op, "n_cols * n_in", n_cols, n_in)?)
        .map_err(|_| Error::invalid(op, "activations exceed usize"))?;
    let Some(x) = x.get(..len) else {
        return Err(Error::invalid(
            op,
            format!("x holds {} values, the shape needs {len}", x.len()),
        ));
    };
    if !n_in.is_multiple_of(QK) {
        return Err(Error::invalid(
            op,
            format!("n_in = {n_in} is not a multiple of 32"),
        ));
    }
    let bytes =
        quantize_to_vec(GgmlType::Q8_0, x).map_err(|e| Error::invalid(op, e.to_string()))?;
    let mut words = Vec::with_capacity(bytes.len() / 34 * 9);
    for block in bytes.chunks_exact(34) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        words.push(d.to_bits());
        words.extend(
            block[2..]
                .chunks_exact(4)
                .map(|q| u32::from_le_bytes([q[0], q[1], q[2], q[3]])),
        );
    }
    Ok(words)
}

/// The product the variant computes: `x` quantized to Q8_0 by seldon-formats
/// and dequantized again, times the weights, summed in f64 (ggml sums the
/// same integer products per block; only the f32 rounding differs).
pub fn reference_q8_activations(
    ty: GgmlType,
    weights: &[u8],
    x: &[f32],
    shape: MatMulShape,
) -> Result<Vec<f32>> {
    let op = "matvec_q8_dot4 reference";
    let words = quantize_activations_reference(x, shape.n_in, shape.n_cols)?;
    let mut bytes = Vec::with_capacity(words.len() / 9 * 34);
    for block in words.chunks_exact(9) {
        let d = half::f16::from_f32(f32::from_bits(block[0]));
        bytes.extend(d.to_le_bytes());
        bytes.extend(block[1..].iter().flat_map(|w| w.to_le_bytes()));
    }
    let xq =
        dequantize_to_vec(GgmlType::Q8_0, &bytes).map_err(|e| Error::invalid(op, e.to_string()))?;
    reference(ty, weights, &xq, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::MatMulParams;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_and_constants_match_wgsl() {
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        let fields = crate::params_layout!(MatMulParams, n_in, n_out, n_cols, row_bytes);
        assert_eq!(
            check_params_layout(source, "Dot4Params", size_of::<MatMulParams>(), &fields),
            Ok(())
        );
        for line in [
            format!("const XQ_WORDS: u32 = {XQ_WORDS_PER_BLOCK}u;"),
            format!("const MV_ROWS: u32 = {MATVEC_ROWS}u;"),
            format!("const MV_COLS: u32 = {MATVEC_MAX_COLS}u;"),
            format!("@workgroup_size({QUANTIZE_WORKGROUP})\nfn quantize_q8_0("),
            format!("* {QUANTIZE_WORKGROUP}u + lid;"),
        ] {
            assert!(source.contains(&line), "missing `{line}`");
        }
        for ty in Q8_DOT4_TYPES {
            let id = format!("const {}: u32 = {}u;", ty.name(), ty.id());
            assert!(source.contains(&id), "{ty}: no `{id}`");
        }
    }

    #[test]
    fn reference_layout_holds_scale_then_packed_quants() {
        // One block: x = j - 16 for j in 0..32, so amax = 16, d = 16/127 and
        // q = round(x * 127 / 16); x[0] = -16 -> -127 (0x81), x[16] = 0.
        let x: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
        let words = quantize_activations_reference(&x, 32, 1).unwrap();
        assert_eq!(words.len(), 9);
        let d = f32::from_bits(words[0]);
        assert_eq!(d, half::f16::from_f32(16.0 / 127.0).to_f32());
        assert_eq!(words[1] & 0xFF, 0x81);
        assert_eq!(words[5] & 0xFF, 0);
        assert!(quantize_activations_reference(&x, 31, 1).is_err());
        assert!(quantize_activations_reference(&x, 32, 2).is_err());
    }

    #[test]
    fn scratch_size_counts_blocks() {
        let shape = MatMulShape {
            n_in: 576,
            n_out: 1,
            n_cols: 3,
        };
        assert_eq!(MatVecQ8Dot4::scratch_bytes(shape), Some(18 * 3 * 9 * 4));
    }
}
