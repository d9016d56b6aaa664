//! `kv_write_f32`, `kv_write_f16` (shaders/kv_cache.wgsl): writes a step's new
//! K or V rows into a layer's KV cache at a position.
//!
//! Layout (the engine follows it; [`crate::attention`] reads it):
//! - one cache buffer per layer and per K/V, `[n_ctx][n_head_kv][head_dim]`
//!   elements of [`KvType`]: f32 as 4-byte words, f16 packed two per u32 word
//!   (low half first, i.e. plain little-endian f16), so f16 needs no SHADER_F16;
//! - the new rows `[n_tokens][n_head_kv][head_dim]` f32, possibly a view into a
//!   wider tensor ([`KvSource`]);
//! - token `t` of the step lands at absolute position `pos0 + t`.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use seldon_formats::GgmlType;

use crate::args::{check_f32_len, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::prepared::{Dispatch, Prepared};

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "kv_cache";
/// Words (invocations) per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;

/// The element type of a KV cache (llama.cpp's `-ctk`/`-ctv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvType {
    /// 4 bytes per element: exact.
    F32,
    /// 2 bytes per element, packed two per u32, rounded to nearest even.
    F16,
}

impl KvType {
    /// Bytes per element.
    pub fn element_bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// The ggml type of the same name.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
        }
    }

    /// `value` as stored in a cache of this type and read back.
    pub fn round(self, value: f32) -> f32 {
        match self {
            Self::F32 => value,
            Self::F16 => half::f16::from_f32(value).to_f32(),
        }
    }
}

/// The shape of one layer's K (or V) cache: `[n_ctx][n_head_kv][head_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    /// Positions the cache holds.
    pub n_ctx: u64,
    /// KV heads.
    pub n_head_kv: u64,
    /// Elements per head (even; attention needs a multiple of 16).
    pub head_dim: u64,
    /// Element type.
    pub ty: KvType,
}

impl KvLayout {
    /// Elements of one position (all KV heads).
    pub fn row_len(&self) -> Option<u64> {
        self.n_head_kv.checked_mul(self.head_dim)
    }

    /// Bytes of the whole cache; `None` on overflow.
    pub fn bytes(&self) -> Option<u64> {
        self.n_ctx
            .checked_mul(self.row_len()?)?
            .checked_mul(self.ty.element_bytes())
    }

    /// Checks that `buffer` holds `positions` positions of this layout.
    pub(crate) fn check_buffer(
        &self,
        op: &str,
        what: &str,
        buffer: &wgpu::Buffer,
        positions: u64,
    ) -> Result<()> {
        let bytes = self
            .row_len()
            .and_then(|r| r.checked_mul(positions))
            .and_then(|e| e.checked_mul(self.ty.element_bytes()))
            .ok_or_else(|| Error::invalid(op, format!("{what}: {self:?} overflows u64")))?;
        if buffer.size() < bytes {
            return Err(Error::invalid(
                op,
                format!(
                    "{what} holds {} bytes, {positions} positions need {bytes}",
                    buffer.size()
                ),
            ));
        }
        Ok(())
    }
}

/// Where the new rows are: token `t`'s row starts at `offset + t * stride`
/// (f32 elements) of the source buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSource {
    /// First element of token 0.
    pub offset: u64,
    /// Elements between consecutive tokens (at least the row length).
    pub stride: u64,
}

impl KvSource {
    /// A contiguous `[n_tokens][row_len]` source.
    pub fn contiguous(layout: &KvLayout) -> Self {
        Self {
            offset: 0,
            stride: layout.row_len().unwrap_or(0),
        }
    }
}

/// Mirrors `KvWriteParams` in kv_cache.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct KvWriteParams {
    /// Tokens written.
    pub n_tokens: u32,
    /// Elements per position (`n_head_kv * head_dim`).
    pub row_len: u32,
    /// Position of the first token.
    pub pos0: u32,
    /// Source elements between tokens.
    pub src_stride: u32,
    /// Source element of token 0.
    pub src_offset: u32,
    /// Padding.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding to 32 bytes.
    pub _pad2: u32,
}

/// The compiled KV-cache write kernels.
#[derive(Debug, Clone)]
pub struct KvWrite {
    f32: Arc<wgpu::ComputePipeline>,
    f16: Arc<wgpu::ComputePipeline>,
}

impl KvWrite {
    /// Compiles (or fetches from the cache) both pipelines.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            f32: gpu.pipeline(SHADER, "kv_write_f32", &[])?,
            f16: gpu.pipeline(SHADER, "kv_write_f16", &[])?,
        })
    }

    /// Records writing `n_tokens` rows from `src` (as `source` says) into
    /// `cache` at positions `pos0..pos0 + n_tokens`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        source: KvSource,
        cache: &wgpu::Buffer,
        layout: KvLayout,
        n_tokens: u64,
        pos0: u64,
    ) -> Result<()> {
        let params = Self::params(source, layout, n_tokens, pos0)?;
        if n_tokens == 0 || params.row_len == 0 {
            return Ok(());
        }
        let uniform = gpu.uniform("kv_write.params", &params)?;
        let end = pos0 + n_tokens;
        self.build(gpu, src, source, cache, layout, n_tokens, end, &uniform)?
            .encode(encoder);
        Ok(())
    }

    /// The params of writing `n_tokens` rows (as `source` says) at positions
    /// `pos0..pos0 + n_tokens` of a cache of `layout`: checks the shapes (not
    /// the buffers). A prepared write reads these from its params uniform.
    pub fn params(
        source: KvSource,
        layout: KvLayout,
        n_tokens: u64,
        pos0: u64,
    ) -> Result<KvWriteParams> {
        let op = "kv_write";
        let row_len = layout
            .row_len()
            .ok_or_else(|| Error::invalid(op, format!("{layout:?} overflows u64")))?;
        if !row_len.is_multiple_of(2) {
            return Err(Error::invalid(
                op,
                format!("row length {row_len} is odd: f16 pairs would straddle tokens"),
            ));
        }
        if source.stride < row_len && n_tokens > 1 {
            return Err(Error::invalid(
                op,
                format!("source stride {} < row length {row_len}", source.stride),
            ));
        }
        let end = pos0
            .checked_add(n_tokens)
            .filter(|&end| end <= layout.n_ctx)
            .ok_or_else(|| {
                Error::invalid(
                    op,
                    format!(
                        "positions {pos0}..{pos0}+{n_tokens} exceed n_ctx {}",
                        layout.n_ctx
                    ),
                )
            })?;
        let src_end = source_end(source, row_len, n_tokens)?;
        // The shader indexes the cache in elements (f32) or words (f16) in u32.
        to_u32(op, "end * row_len", end.saturating_mul(row_len))?;
        to_u32(op, "source end", src_end)?;
        Ok(KvWriteParams {
            n_tokens: to_u32(op, "n_tokens", n_tokens)?,
            row_len: to_u32(op, "row_len", row_len)?,
            pos0: to_u32(op, "pos0", pos0)?,
            src_stride: to_u32(op, "src_stride", source.stride)?,
            src_offset: to_u32(op, "src_offset", source.offset)?,
            ..KvWriteParams::default()
        })
    }

    /// A write of `n_tokens` rows from `src` into `cache` (which must hold all
    /// `layout.n_ctx` positions) built once, to be recorded into many steps.
    /// Its position comes from the uniform `params`, which the caller fills
    /// with [`KvWrite::params`] (same `source`, `layout` and `n_tokens`)
    /// before each submit; one such uniform may serve every layer's writes.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &self,
        gpu: &Gpu,
        src: &wgpu::Buffer,
        source: KvSource,
        cache: &wgpu::Buffer,
        layout: KvLayout,
        n_tokens: u64,
        params: &wgpu::Buffer,
    ) -> Result<Prepared> {
        let checked = Self::params(source, layout, n_tokens, 0)?;
        if n_tokens == 0 || checked.row_len == 0 {
            return Ok(Prepared::none());
        }
        if params.size() < size_of::<KvWriteParams>() as u64 {
            return Err(Error::invalid("kv_write", "params buffer too small"));
        }
        to_u32(
            "kv_write",
            "n_ctx * row_len",
            layout.n_ctx.saturating_mul(u64::from(checked.row_len)),
        )?;
        self.build(
            gpu,
            src,
            source,
            cache,
            layout,
            n_tokens,
            layout.n_ctx,
            params,
        )
    }

    /// The dispatch, for a cache that must hold `positions` positions.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        gpu: &Gpu,
        src: &wgpu::Buffer,
        source: KvSource,
        cache: &wgpu::Buffer,
        layout: KvLayout,
        n_tokens: u64,
        positions: u64,
        params: &wgpu::Buffer,
    ) -> Result<Prepared> {
        let op = "kv_write";
        let row_len = layout.row_len().unwrap_or(u64::MAX);
        check_f32_len(op, "src", src, source_end(source, row_len, n_tokens)?)?;
        layout.check_buffer(op, "cache", cache, positions)?;
        let (pipeline, words) = match layout.ty {
            KvType::F32 => (&self.f32, n_tokens * row_len),
            KvType::F16 => (&self.f16, n_tokens * row_len / 2),
        };
        let groups = gpu.workgroups(op, words, WORKGROUP)?;
        let entries = [(0, src), (1, cache), (2, params)];
        Ok(Dispatch::new(gpu, op, pipeline, &entries, groups)?.into())
    }
}

/// One past the last source element a write of `n_tokens` rows reads.
fn source_end(source: KvSource, row_len: u64, n_tokens: u64) -> Result<u64> {
    n_tokens
        .saturating_sub(1)
        .checked_mul(source.stride)
        .and_then(|v| v.checked_add(source.offset))
        .and_then(|v| v.checked_add(row_len))
        .ok_or_else(|| Error::invalid("kv_write", "source view overflows u64"))
}

/// CPU reference: writes the rows into `cache`, the cache's bytes (f32 or f16,
/// little-endian). Rows that do not fit the cache or the source are skipped.
pub fn kv_write_reference(
    cache: &mut [u8],
    layout: &KvLayout,
    src: &[f32],
    source: KvSource,
    n_tokens: usize,
    pos0: usize,
) {
    let row_len = layout.row_len().unwrap_or(0) as usize;
    let eb = layout.ty.element_bytes() as usize;
    for t in 0..n_tokens {
        let s0 = source.offset as usize + t * source.stride as usize;
        let d0 = (pos0 + t) * row_len * eb;
        let (Some(row), Some(dst)) = (
            src.get(s0..s0 + row_len),
            cache.get_mut(d0..d0 + row_len * eb),
        ) else {
            continue;
        };
        for (&v, out) in row.iter().zip(dst.chunks_exact_mut(eb)) {
            match layout.ty {
                KvType::F32 => out.copy_from_slice(&v.to_le_bytes()),
                KvType::F16 => out.copy_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            }
        }
    }
}

/// The elements of cache bytes `bytes` of type `ty`, as f32 (a trailing
/// partial element is ignored).
pub fn kv_to_f32(bytes: &[u8], ty: KvType) -> Vec<f32> {
    match ty {
        KvType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        KvType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// `values` encoded as cache bytes of type `ty` (the inverse of [`kv_to_f32`]
/// up to f16 rounding).
pub fn kv_from_f32(values: &[f32], ty: KvType) -> Vec<u8> {
    match ty {
        KvType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        KvType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(
            KvWriteParams,
            n_tokens,
            row_len,
            pos0,
            src_stride,
            src_offset,
            _pad0,
            _pad1,
            _pad2
        );
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "KvWriteParams", size_of::<KvWriteParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
    }

    #[test]
    fn reference_writes_rows_at_the_position() {
        let layout = KvLayout {
            n_ctx: 4,
            n_head_kv: 1,
            head_dim: 2,
            ty: KvType::F16,
        };
        let mut cache = vec![0u8; layout.bytes().unwrap_or(0) as usize];
        // Two tokens read from a stride-3 view starting at element 1.
        let src = [9.0, 1.0, 2.0, 9.0, 3.0, 4.0];
        let source = KvSource {
            offset: 1,
            stride: 3,
        };
        kv_write_reference(&mut cache, &layout, &src, source, 2, 1);
        assert_eq!(
            kv_to_f32(&cache, KvType::F16),
            [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]
        );
        assert_eq!(KvType::F16.round(1.0 + 1e-4), 1.0);
        assert_eq!(kv_from_f32(&[1.0, 2.0], KvType::F32), {
            let mut v = 1.0f32.to_le_bytes().to_vec();
            v.extend(2.0f32.to_le_bytes());
            v
        });
    }
}
