//! `Dot4MatVec`: the decode product with activations quantized on the GPU
//! (shaders/quantize_q8.wgsl) to the 8-bit format ggml's CPU backend pairs
//! with the weight type ([`ActivationFormat`]: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1
//! for Q4_1/Q5_1, Q8_K for the k-quants and TQ types) and integer dot products
//! through `dot4I8Packed` (shaders/matvec_q8_dot4.wgsl), as ggml's
//! `ggml_vec_dot_<type>_q8_<x>` computes them. An opt-in variant of
//! [`super::MatMul`]'s f32 `matvec` for adapters with packed 4x8 dot
//! products; [`reference_dot4`] is its oracle.

use std::sync::Arc;

use seldon_formats::GgmlType;

use super::{
    MATVEC_MAX_COLS, MatMulParams, MatMulShape, check_activations, checked_mul, weight_params,
};
use crate::args::to_u32;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name of the matvec in [`crate::shaders::ALL`].
pub const SHADER: &str = "matvec_q8_dot4";
/// Shader name of the activation quantizers.
pub const QUANTIZE_SHADER: &str = "quantize_q8";
/// The weight types with a dot4 matvec, in ggml id order.
pub const DOT4_TYPES: &[GgmlType] = &[
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
/// Weight rows per `matvec` workgroup (one invocation each), `MV_ROWS`.
pub const DOT4_ROWS: u32 = 64;
/// Invocations per quantize workgroup: one 32-element block each (Q8_0,
/// Q8_1), or one 256-element block per workgroup (Q8_K).
const QUANTIZE_WORKGROUP: u32 = 64;

/// Whether [`Dot4MatVec`] multiplies weights of type `ty` (on an adapter
/// with packed dot products).
pub fn dot4_supported(ty: GgmlType) -> bool {
    DOT4_TYPES.contains(&ty)
}

/// The 8-bit format the activations are quantized to, as ggml's CPU
/// backend chooses it (`vec_dot_type` of the weight type).
#[allow(non_camel_case_types)] // ggml's names
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationFormat {
    /// 32 values, an f16 scale (stored as f32 bits in the GPU layout).
    Q8_0,
    /// 32 values, f16 scale and f16 `s = d * sum(q)`: ggml's 36-byte block.
    Q8_1,
    /// 256 values, f32 scale, per-16 sums: ggml's 292-byte block.
    Q8_K,
}

impl ActivationFormat {
    /// The format ggml quantizes activations to for weights of type `ty`.
    pub fn for_weights(ty: GgmlType) -> Option<Self> {
        use GgmlType::*;
        match ty {
            Q4_0 | Q5_0 | Q8_0 => Some(Self::Q8_0),
            Q4_1 | Q5_1 => Some(Self::Q8_1),
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | TQ1_0 | TQ2_0 => Some(Self::Q8_K),
            _ => None,
        }
    }

    /// The ggml type of the format.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q8_1 => GgmlType::Q8_1,
            Self::Q8_K => GgmlType::Q8_K,
        }
    }

    /// Elements per block.
    pub fn block_elements(self) -> u64 {
        self.ggml_type().block_size()
    }

    /// u32 words per block in the GPU layout.
    pub fn words_per_block(self) -> u64 {
        match self {
            Self::Q8_0 | Self::Q8_1 => 9,
            Self::Q8_K => 73,
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Self::Q8_0 => "quantize_q8_0",
            Self::Q8_1 => "quantize_q8_1",
            Self::Q8_K => "quantize_q8_k",
        }
    }

    /// Bytes of the quantized activations of `shape` in the GPU layout.
    pub fn scratch_bytes(self, shape: MatMulShape) -> Option<u64> {
        (shape.n_in / self.block_elements())
            .checked_mul(shape.n_cols)?
            .checked_mul(self.words_per_block() * 4)
    }
}

/// The compiled quantize and matvec pipelines for one weight type.
#[derive(Debug, Clone)]
pub struct Dot4MatVec {
    ty: GgmlType,
    format: ActivationFormat,
    quantize: Arc<wgpu::ComputePipeline>,
    matvec: Arc<wgpu::ComputePipeline>,
}

impl Dot4MatVec {
    /// Compiles the pipelines for weights of type `ty` (see
    /// [`dot4_supported`]); fails where the device lacks packed dot products.
    pub fn new(gpu: &Gpu, ty: GgmlType) -> Result<Self> {
        let op = "matvec_q8_dot4";
        let format = ActivationFormat::for_weights(ty)
            .filter(|_| dot4_supported(ty))
            .ok_or_else(|| Error::invalid(op, format!("no dot4 matvec for {ty}")))?;
        if !gpu.features().dot4_packed {
            return Err(Error::invalid(
                op,
                "the device lacks dot4I8Packed (or force_portable is set)",
            ));
        }
        let overrides = [("WEIGHT_TYPE", f64::from(ty.id()))];
        Ok(Self {
            ty,
            format,
            quantize: gpu.pipeline(QUANTIZE_SHADER, format.entry(), &[])?,
            matvec: gpu.pipeline(SHADER, "matvec", &overrides)?,
        })
    }

    /// The weight type these kernels multiply.
    pub fn weight_type(&self) -> GgmlType {
        self.ty
    }

    /// The format the activations are quantized to.
    pub fn activation_format(&self) -> ActivationFormat {
        self.format
    }

    /// Bytes of the scratch buffer that holds `shape`'s quantized activations.
    pub fn scratch_bytes(&self, shape: MatMulShape) -> Option<u64> {
        self.format.scratch_bytes(shape)
    }

    /// Records the quantization of `x` into `scratch` (at least
    /// [`Dot4MatVec::scratch_bytes`]) and then `y = W xq`, for at most
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
        self.prepare(gpu, weights, x, scratch, y, shape)?
            .encode(encoder);
        Ok(())
    }

    /// [`Dot4MatVec::encode`] built once, to be recorded into many steps:
    /// the quantize dispatch, then the matvec.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        scratch: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
    ) -> Result<Prepared> {
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
        let scratch_bytes = self
            .scratch_bytes(shape)
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
        to_u32(op, "scratch words", scratch_bytes / 4)?;
        let params = MatMulParams {
            n_cols: to_u32(op, "n_cols", shape.n_cols)?,
            ..params
        };
        if shape.n_out == 0 || shape.n_cols == 0 {
            return Ok(Prepared::none());
        }
        let label = format!("{op} {}", self.ty);
        let params = gpu.uniform(&format!("{label}.params"), &params)?;
        let blocks = checked_mul(
            op,
            "activation blocks",
            shape.n_in / self.format.block_elements(),
            shape.n_cols,
        )?;
        // Q8_K: one workgroup per block; Q8_0/Q8_1: one invocation per block.
        let per_group = match self.format {
            ActivationFormat::Q8_K => 1,
            ActivationFormat::Q8_0 | ActivationFormat::Q8_1 => QUANTIZE_WORKGROUP,
        };
        let mut prepared = Prepared::none();
        let groups = gpu.workgroups(op, blocks, per_group)?;
        if groups.total() > 0 {
            let entries = [(1, x), (2, scratch), (4, &params)];
            prepared.push(Dispatch::new(
                gpu,
                &label,
                &self.quantize,
                &entries,
                groups,
            )?);
        }
        let groups = gpu.workgroups(op, shape.n_out, DOT4_ROWS)?;
        let entries = [(0, weights), (2, scratch), (3, y), (4, &params)];
        prepared.push(Dispatch::new(gpu, &label, &self.matvec, &entries, groups)?);
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    fn source(name: &str) -> &'static str {
        find(name).map(|s| s.source).unwrap_or_default()
    }

    #[test]
    fn params_and_constants_match_wgsl() {
        let fields = crate::params_layout!(MatMulParams, n_in, n_out, n_cols, row_bytes);
        for name in [SHADER, QUANTIZE_SHADER] {
            assert_eq!(
                check_params_layout(
                    source(name),
                    "Dot4Params",
                    size_of::<MatMulParams>(),
                    &fields
                ),
                Ok(()),
                "{name}"
            );
            for format in [
                ActivationFormat::Q8_0,
                ActivationFormat::Q8_1,
                ActivationFormat::Q8_K,
            ] {
                let line = format!(
                    "const {}_WORDS: u32 = {}u;",
                    format.ggml_type().name(),
                    format.words_per_block()
                );
                assert!(source(name).contains(&line), "{name}: missing `{line}`");
            }
        }
        let matvec = source(SHADER);
        for line in [
            format!("const MV_ROWS: u32 = {DOT4_ROWS}u;"),
            format!("const MV_COLS: u32 = {MATVEC_MAX_COLS}u;"),
        ] {
            assert!(matvec.contains(&line), "missing `{line}`");
        }
        for entry in ["quantize_q8_0", "quantize_q8_1"] {
            let line = format!("@workgroup_size({QUANTIZE_WORKGROUP})\nfn {entry}(");
            assert!(source(QUANTIZE_SHADER).contains(&line), "missing `{line}`");
        }
        assert!(source(QUANTIZE_SHADER).contains("* 64u + lid;"));
        for ty in DOT4_TYPES {
            let id = format!("const {}: u32 = {}u;", ty.name(), ty.id());
            assert!(matvec.contains(&id), "{ty}: no `{id}`");
            let bytes = format!("* {}u;", ty.type_size());
            assert!(matvec.contains(&bytes), "{ty}: no block size `{bytes}`");
        }
    }

    #[test]
    fn formats_follow_ggml_vec_dot_types() {
        use GgmlType::*;
        for ty in DOT4_TYPES {
            let format = ActivationFormat::for_weights(*ty).unwrap();
            let qk = format.block_elements();
            assert_eq!(
                ty.block_size(),
                qk,
                "{ty}: weight and activation blocks differ"
            );
            // The GPU layout of Q8_1 and Q8_K is ggml's block itself.
            if format != ActivationFormat::Q8_0 {
                assert_eq!(format.words_per_block() * 4, format.ggml_type().type_size());
            }
        }
        assert_eq!(
            ActivationFormat::for_weights(Q4_1),
            Some(ActivationFormat::Q8_1)
        );
        assert_eq!(
            ActivationFormat::for_weights(TQ2_0),
            Some(ActivationFormat::Q8_K)
        );
        assert_eq!(ActivationFormat::for_weights(F16), None);
        assert!(!dot4_supported(F32) && dot4_supported(Q6_K));
    }

    #[test]
    fn scratch_size_counts_blocks() {
        let shape = MatMulShape {
            n_in: 768,
            n_out: 1,
            n_cols: 3,
        };
        assert_eq!(
            ActivationFormat::Q8_0.scratch_bytes(shape),
            Some(24 * 3 * 9 * 4)
        );
        assert_eq!(
            ActivationFormat::Q8_K.scratch_bytes(shape),
            Some(3 * 3 * 292)
        );
    }
}
