//! `convert_f32_to_f16`, `convert_f16_to_f32` (shaders/convert.wgsl): copies
//! between f32 tensors and F16 tensors (ggml's layout: little-endian binary16,
//! two per u32 word), on any adapter (no SHADER_F16 needed).
//!
//! f32 -> f16 rounds as the device's `pack2x16float` does (WGSL allows either
//! neighbour of an inexact value; the references round to nearest even, so
//! the tests allow one f16 ulp) and saturates at +-65504. f16 -> f32 is exact
//! except that a device may flush f16 subnormals to zero.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::args::{check_f32_len, record, to_u32};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Shader name in [`crate::shaders::ALL`].
pub const SHADER: &str = "convert";
/// Invocations (u32 words of two f16 elements) per workgroup, as in the WGSL.
pub const WORKGROUP: u32 = 256;
/// The largest finite f16; the f32 -> f16 direction saturates here.
pub const F16_MAX: f32 = 65504.0;

/// Mirrors `ConvertParams` in convert.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ConvertParams {
    /// Elements to convert.
    pub n: u32,
    /// u32 words of the f16 side: `ceil(n / 2)`.
    pub n_words: u32,
    /// Padding to 16 bytes.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
}

/// Which way [`Convert::encode`] converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvertDirection {
    /// f32 source, F16 destination.
    F32ToF16,
    /// F16 source, f32 destination.
    F16ToF32,
}

impl ConvertDirection {
    /// The WGSL entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            Self::F32ToF16 => "convert_f32_to_f16",
            Self::F16ToF32 => "convert_f16_to_f32",
        }
    }
}

/// Bytes of an F16 tensor of `n` elements as the kernel binds it: whole u32
/// words, so an odd `n` takes one padding half. `None` on overflow.
pub fn f16_buffer_bytes(n: u64) -> Option<u64> {
    n.div_ceil(2).checked_mul(4)
}

/// The compiled conversion kernels.
#[derive(Debug, Clone)]
pub struct Convert {
    to_f16: Arc<wgpu::ComputePipeline>,
    to_f32: Arc<wgpu::ComputePipeline>,
}

impl Convert {
    /// Compiles (or fetches from the cache) both pipelines.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        Ok(Self {
            to_f16: gpu.pipeline(SHADER, ConvertDirection::F32ToF16.entry_point(), &[])?,
            to_f32: gpu.pipeline(SHADER, ConvertDirection::F16ToF32.entry_point(), &[])?,
        })
    }

    /// Records the conversion of the first `n` elements of `src` into `dst`.
    /// The f32 side holds `n` floats, the F16 side [`f16_buffer_bytes`]`(n)`
    /// bytes. With an odd `n`, f32 -> f16 leaves the padding half of the last
    /// word as it was.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        direction: ConvertDirection,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        n: u64,
    ) -> Result<()> {
        let op = direction.entry_point();
        let words = n.div_ceil(2);
        let (f32_side, f16_side) = match direction {
            ConvertDirection::F32ToF16 => (src, dst),
            ConvertDirection::F16ToF32 => (dst, src),
        };
        check_f32_len(op, "the f32 side", f32_side, n)?;
        // A word of the F16 side is 4 bytes, like one f32.
        check_f32_len(op, "the f16 side", f16_side, words)?;
        gpu.check_binding(&format!("{op} src"), src.size())?;
        gpu.check_binding(&format!("{op} dst"), dst.size())?;
        let params = ConvertParams {
            n: to_u32(op, "n", n)?,
            n_words: to_u32(op, "words", words)?,
            ..ConvertParams::default()
        };
        let groups = gpu.workgroups(op, words, WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(());
        }
        let params = gpu.uniform(&format!("{op}.params"), &params)?;
        let (pipeline, bindings) = match direction {
            ConvertDirection::F32ToF16 => (&self.to_f16, [(0, src), (1, dst), (4, &params)]),
            ConvertDirection::F16ToF32 => (&self.to_f32, [(2, src), (3, dst), (4, &params)]),
        };
        let bind_group = gpu.bind_group(op, pipeline, &bindings)?;
        record(encoder, op, pipeline, &bind_group, groups);
        Ok(())
    }
}

/// CPU reference of f32 -> f16: saturate to +-[`F16_MAX`], round to nearest
/// even. Returns the f16 bit patterns.
pub fn f32_to_f16_reference(src: &[f32]) -> Vec<u16> {
    src.iter()
        .map(|&v| f16::from_f32(v.clamp(-F16_MAX, F16_MAX)).to_bits())
        .collect()
}

/// CPU reference of f16 -> f32 (exact) from f16 bit patterns.
pub fn f16_to_f32_reference(src: &[u16]) -> Vec<f32> {
    src.iter().map(|&b| f16::from_bits(b).to_f32()).collect()
}

/// f16 bit patterns packed as the kernel stores them (two per word, the even
/// element in the low half), zero-padded to whole words.
pub fn pack_f16_words(bits: &[u16]) -> Vec<u32> {
    bits.chunks(2)
        .map(|pair| {
            let lo = u32::from(pair[0]);
            let hi = pair.get(1).map_or(0, |&h| u32::from(h));
            lo | (hi << 16)
        })
        .collect()
}

/// The first `n` f16 bit patterns of `words` (the inverse of
/// [`pack_f16_words`]); an error when `words` holds fewer.
pub fn unpack_f16_words(words: &[u32], n: usize) -> Result<Vec<u16>> {
    if words.len().saturating_mul(2) < n {
        return Err(Error::invalid(
            "unpack_f16_words",
            format!("{} words hold fewer than {n} halves", words.len()),
        ));
    }
    Ok(words
        .iter()
        .flat_map(|&w| [(w & 0xffff) as u16, (w >> 16) as u16])
        .take(n)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    #[test]
    fn params_match_wgsl() {
        let fields = crate::params_layout!(ConvertParams, n, n_words, _pad0, _pad1);
        let source = find(SHADER).map(|s| s.source).unwrap_or_default();
        assert_eq!(
            check_params_layout(source, "ConvertParams", size_of::<ConvertParams>(), &fields),
            Ok(())
        );
        assert!(source.contains(&format!("@workgroup_size({WORKGROUP})")));
        assert!(source.contains(&format!("const WG: u32 = {WORKGROUP}u;")));
        assert!(source.contains("const F16_MAX: f32 = 65504.0;"));
        for d in [ConvertDirection::F32ToF16, ConvertDirection::F16ToF32] {
            assert!(source.contains(&format!("fn {}(", d.entry_point())));
        }
    }

    #[test]
    fn references_saturate_round_and_pack() {
        let bits = f32_to_f16_reference(&[1.0, -2.5, 1e9, -1e9, 65519.0, 1.0 + 1.0 / 4096.0]);
        assert_eq!(bits[0], 0x3c00);
        assert_eq!(bits[1], 0xc100);
        assert_eq!(bits[2], 0x7bff);
        assert_eq!(bits[3], 0xfbff);
        assert_eq!(bits[4], 0x7bff);
        // Halfway between 1.0 and the next f16: ties go to even (1.0).
        assert_eq!(bits[5], 0x3c00);
        assert_eq!(f16_to_f32_reference(&[0x3c00, 0xc100]), vec![1.0, -2.5]);
        let words = pack_f16_words(&[0x1111, 0x2222, 0x3333]);
        assert_eq!(words, vec![0x2222_1111, 0x0000_3333]);
        assert_eq!(
            unpack_f16_words(&words, 3).ok(),
            Some(vec![0x1111, 0x2222, 0x3333])
        );
        assert!(unpack_f16_words(&words, 5).is_err());
        assert_eq!(f16_buffer_bytes(3), Some(8));
        assert_eq!(f16_buffer_bytes(4), Some(8));
        assert_eq!(f16_buffer_bytes(u64::MAX), None);
    }
}
