//! `rope`, `rope_in_place` (shaders/rope.wgsl): rotary position embedding with
//! ggml's semantics (`ggml_rope_ext` with `ext_factor = 0`).
//!
//! Layout: `x` is `[n_tokens][n_head][head_dim]` f32 (q or k straight from their
//! projections); `positions` holds one i32 per token (any values, not
//! necessarily consecutive); `freq_factors`, when given, holds `n_dims / 2` f32
//! (llama 3.1's `rope_freqs.weight`). The first `n_dims` elements of each head
//! are rotated, the rest copied.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "rope";
/// Invocations per workgroup (one workgroup per token), as in the WGSL.
pub const WORKGROUP: u32 = 128;
/// The most rotated dimensions the shader's cos/sin table holds.
pub const MAX_N_DIMS: u64 = 512;

/// Which elements form a rotated pair (ggml's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// Mode 0, `GGML_ROPE_TYPE_NORMAL` (llama): pairs `(2i, 2i + 1)`.
    Normal,
    /// Mode 2, `GGML_ROPE_TYPE_NEOX` (qwen2, qwen3): pairs `(i, i + n_dims/2)`.
    Neox,
}

impl RopeMode {
    /// ggml's mode number.
    pub fn ggml_mode(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::Neox => 2,
        }
    }
}

/// The rotation's hyperparameters (from the GGUF's `<arch>.rope.*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// Rotated dimensions per head (`rope.dimension_count`, even, <= head_dim).
    pub n_dims: u64,
    /// Pair layout.
    pub mode: RopeMode,
    /// `rope.freq_base` (10000 for llama 2, 500000 for llama 3, ...).
    pub freq_base: f32,
    /// Linear scaling: `1 / rope.scaling.factor`, 1 when unscaled.
    pub freq_scale: f32,
    /// Multiplies cos and sin (ggml's `attn_factor`; 1 for these models).
    pub attn_factor: f32,
    /// Applies the inverse rotation (the backward pass).
    pub backward: bool,
}

impl RopeConfig {
    /// An unscaled forward rotation of `n_dims` dimensions.
    pub fn new(n_dims: u64, mode: RopeMode, freq_base: f32) -> Self {
        Self {
            n_dims,
            mode,
            freq_base,
            freq_scale: 1.0,
            attn_factor: 1.0,
            backward: false,
        }
    }

    /// `freq_base^(-2 / n_dims)` in f32, as ggml computes it (`powf`).
    pub fn theta_scale(&self) -> f32 {
        self.freq_base.powf(-2.0 / self.n_dims as f32)
    }

    fn sin_sign(&self) -> f32 {
        if self.backward { -1.0 } else { 1.0 }
    }
}

/// What gets rotated: `[n_tokens][n_head][head_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RopeShape {
    /// Tokens (one position each).
    pub n_tokens: u64,
    /// Heads per token.
    pub n_head: u64,
    /// Elements per head.
    pub head_dim: u64,
}

impl RopeShape {
    fn elements(&self) -> Option<u64> {
        self.n_tokens
            .checked_mul(self.n_head)?
            .checked_mul(self.head_dim)
    }
}

/// Mirrors `RopeParams` in rope.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Pod, Zeroable)]
pub struct RopeParams {
    /// Tokens.
    pub n_tokens: u32,
    /// Heads per token.
    pub n_head: u32,
    /// Elements per head.
    pub head_dim: u32,
    /// Rotated elements per head.
    pub n_dims: u32,
    /// ggml's mode (0 or 2).
    pub mode: u32,
    /// 1 when `freq_factors` is bound with real factors.
    pub has_freq_factors: u32,
    /// `freq_base^(-2 / n_dims)`.
    pub theta_scale: f32,
    /// Linear position scaling.
    pub freq_scale: f32,
    /// Multiplies cos and sin.
    pub attn_factor: f32,
    /// -1 for the backward pass, else 1.
    pub sin_sign: f32,
    /// Padding.
    pub _pad0: u32,
    /// Padding to 48 bytes.
    pub _pad1: u32,
}

/// The compiled RoPE kernels.
#[derive(Debug, Clone)]
pub struct Rope {
    out_of_place: Arc<wgpu::ComputePipeline>,
    in_place: Arc<wgpu::ComputePipeline>,
}

impl Rope {
    /// Compiles (or fetches from the cache) both pipelines.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            out_of_place: gpu.pipeline(SHADER, "rope", &[])?,
            in_place: gpu.pipeline(SHADER, "rope_in_place", &[])?,
        })
    }

    /// Records `dst = rope(src)`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        freq_factors: Option<&wgpu::Buffer>,
        shape: RopeShape,
        config: &RopeConfig,
    ) -> Result<()> {
        self.prepare(gpu, src, dst, positions, freq_factors, shape, config)?
            .encode(encoder);
        Ok(())
    }

    /// [`Rope::encode`] built once, to be recorded into many steps (the
    /// positions are read from `positions` when the step runs).
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &self,
        gpu: &Gpu,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        freq_factors: Option<&wgpu::Buffer>,
        shape: RopeShape,
        config: &RopeConfig,
    ) -> Result<Prepared> {
        let op = "rope";
        let params = params(op, shape, config)?;
        let elements = shape.elements().unwrap_or(u64::MAX);
        check_f32_len(op, "src", src, elements)?;
        self.build(
            gpu,
            op,
            &self.out_of_place,
            Some(src),
            dst,
            positions,
            freq_factors,
            params,
        )
    }

    /// Records `x = rope(x)` in place.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_in_place(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        freq_factors: Option<&wgpu::Buffer>,
        shape: RopeShape,
        config: &RopeConfig,
    ) -> Result<()> {
        self.prepare_in_place(gpu, x, positions, freq_factors, shape, config)?
            .encode(encoder);
        Ok(())
    }

    /// [`Rope::encode_in_place`] built once, to be recorded into many steps.
    pub fn prepare_in_place(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        freq_factors: Option<&wgpu::Buffer>,
        shape: RopeShape,
        config: &RopeConfig,
    ) -> Result<Prepared> {
        let op = "rope_in_place";
        let params = params(op, shape, config)?;
        self.build(
            gpu,
            op,
            &self.in_place,
            None,
            x,
            positions,
            freq_factors,
            params,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        gpu: &Gpu,
        op: &str,
        pipeline: &Arc<wgpu::ComputePipeline>,
        src: Option<&wgpu::Buffer>,
        dst: &wgpu::Buffer,
        positions: &wgpu::Buffer,
        freq_factors: Option<&wgpu::Buffer>,
        params: RopeParams,
    ) -> Result<Prepared> {
        let n_tokens = u64::from(params.n_tokens);
        let elements = n_tokens * u64::from(params.n_head) * u64::from(params.head_dim);
        check_f32_len(op, "dst", dst, elements)?;
        // i32 and f32 have the same size.
        check_f32_len(op, "positions", positions, n_tokens)?;
        if let Some(ff) = freq_factors {
            check_f32_len(op, "freq_factors", ff, u64::from(params.n_dims / 2))?;
        }
        let groups = gpu.workgroups(op, n_tokens, 1)?;
        if groups.total() == 0 || elements == 0 {
            return Ok(Prepared::none());
        }
        let params = RopeParams {
            has_freq_factors: u32::from(freq_factors.is_some()),
            ..params
        };
        let placeholder;
        let freq_factors = match freq_factors {
            Some(ff) => ff,
            None => {
                placeholder =
                    gpu.storage_buffer("rope.no_freq_factors", 4, wgpu::BufferUsages::empty())?;
                &placeholder
            }
        };
        let params = gpu.uniform("rope.params", &params)?;
        let mut entries = vec![(1, dst), (2, positions), (3, freq_factors), (4, &params)];
        if let Some(src) = src {
            entries.push((0, src));
        }
        Ok(Dispatch::new(gpu, op, pipeline, &entries, groups)?.into())
    }
}

fn params(op: &str, shape: RopeShape, config: &RopeConfig) -> Result<RopeParams> {
    let n_dims = config.n_dims;
    if !n_dims.is_multiple_of(2) || n_dims > shape.head_dim || n_dims > MAX_N_DIMS {
        return Err(Error::invalid(
            op,
            format!(
                "n_dims = {n_dims} must be even and at most head_dim = {} and {MAX_N_DIMS}",
                shape.head_dim
            ),
        ));
    }
    let finite = [config.freq_base, config.freq_scale, config.attn_factor];
    if finite.iter().any(|v| !v.is_finite()) || config.freq_base <= 0.0 {
        return Err(Error::invalid(op, format!("bad rope config {config:?}")));
    }
    let elements = shape
        .elements()
        .ok_or_else(|| Error::invalid(op, format!("{shape:?} overflows u64")))?;
    // The shader indexes elements in u32.
    to_u32(op, "elements", elements)?;
    Ok(RopeParams {
        n_tokens: to_u32(op, "n_tokens", shape.n_tokens)?,
        n_head: to_u32(op, "n_head", shape.n_head)?,
        head_dim: to_u32(op, "head_dim", shape.head_dim)?,
        n_dims: to_u32(op, "n_dims", n_dims)?,
        mode: config.mode.ggml_mode(),
        has_freq_factors: 0,
        theta_scale: if n_dims == 0 {
            1.0
        } else {
            config.theta_scale()
        },
        freq_scale: config.freq_scale,
        attn_factor: config.attn_factor,
        sin_sign: config.sin_sign(),
        _pad0: 0,
        _pad1: 0,
    })
}

/// CPU reference, operation for operation as ggml's CPU rope: the angle built
/// by repeated f32 multiplication, then `cosf`/`sinf` of it. `x` is
/// `[n_tokens][n_head][head_dim]` with `positions.len() == n_tokens`.
pub fn rope_reference(
    x: &[f32],
    positions: &[i32],
    freq_factors: Option<&[f32]>,
    shape: RopeShape,
    config: &RopeConfig,
) -> Vec<f32> {
    let (n_head, head_dim) = (shape.n_head as usize, shape.head_dim as usize);
    let n_dims = config.n_dims as usize;
    let pairs = n_dims / 2;
    let theta_scale = config.theta_scale();
    let mut out = x.to_vec();
    let token_len = n_head * head_dim;
    if token_len == 0 {
        return out;
    }
    for (token, &pos) in out.chunks_exact_mut(token_len).zip(positions) {
        let mut table = Vec::with_capacity(pairs);
        let mut theta = pos as f32;
        for i in 0..pairs {
            let ff = freq_factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
            let t = config.freq_scale * (theta / ff);
            let c = t.cos() * config.attn_factor;
            let s = t.sin() * config.attn_factor * config.sin_sign();
            table.push((c, s));
            theta *= theta_scale;
        }
        for head in token.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in table.iter().enumerate() {
                let (a, b) = match config.mode {
                    RopeMode::Normal => (2 * i, 2 * i + 1),
                    RopeMode::Neox => (i, i + pairs),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
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
        let fields = crate::params_layout!(
            RopeParams,
            n_tokens,
            n_head,
            head_dim,
            n_dims,
            mode,
            has_freq_factors,
            theta_scale,
            freq_scale,
            attn_factor,
            sin_sign,
            _pad0,
            _pad1
        );
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "RopeParams", size_of::<RopeParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
        assert!(source.contains(&format!("const MAX_PAIRS: u32 = {}u;", MAX_N_DIMS / 2)));
    }

    #[test]
    fn reference_rotates_pairs_and_inverts() {
        let shape = RopeShape {
            n_tokens: 1,
            n_head: 1,
            head_dim: 6,
        };
        let x = [1.0, 0.0, 0.5, -0.5, 7.0, 8.0];
        let cfg = RopeConfig::new(4, RopeMode::Normal, 10000.0);
        let y = rope_reference(&x, &[1], None, shape, &cfg);
        // Pair 0 turns by exactly 1 radian; elements past n_dims are untouched.
        assert_eq!(&y[..2], &[1f32.cos(), 1f32.sin()]);
        assert_eq!(&y[4..], &[7.0, 8.0]);
        let back = RopeConfig {
            backward: true,
            ..cfg
        };
        let z = rope_reference(&y, &[1], None, shape, &back);
        for (a, b) in z.iter().zip(&x) {
            assert!((a - b).abs() < 1e-6, "{z:?}");
        }
        // NeoX pairs element 0 with element n_dims/2.
        let neox = RopeConfig::new(4, RopeMode::Neox, 10000.0);
        let y = rope_reference(
            &[1.0, 0.0, 0.0, 0.0],
            &[2],
            None,
            RopeShape {
                head_dim: 4,
                ..shape
            },
            &neox,
        );
        assert_eq!(y, [2f32.cos(), 0.0, 2f32.sin(), 0.0]);
    }
}
