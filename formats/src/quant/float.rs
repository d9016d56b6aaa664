//! F32, F16 and BF16 rows, with scalar conversions that round exactly as
//! ggml's `GGML_FP32_TO_FP16` and `ggml_compute_fp32_to_bf16` do.
//!
//! Both ggml conversions round to nearest, ties to even, like `half`. They
//! differ from `half` only for NaN: ggml turns every f32 NaN into the f16 NaN
//! `sign | 0x7E00` (its bit trick drops the payload), while `half` keeps the
//! top payload bits. `fp32_to_fp16` canonicalises NaN so that quantized files
//! are byte-identical with ggml's. For BF16, `half` already sets the quiet bit
//! and keeps the payload as ggml does.

use half::{bf16, f16};

/// ggml's fp16 -> fp32 conversion (`GGML_FP16_TO_FP32`): exact for every
/// finite value and infinity; NaN comes back quiet with its payload.
#[inline]
pub fn fp16_to_fp32(h: f16) -> f32 {
    h.to_f32()
}

/// ggml's fp32 -> fp16 conversion (`GGML_FP32_TO_FP16`): round to nearest
/// even, overflow to infinity, NaN to `sign | 0x7E00`.
#[inline]
pub fn fp32_to_fp16(x: f32) -> f16 {
    if x.is_nan() {
        let sign = ((x.to_bits() >> 16) & 0x8000) as u16;
        return f16::from_bits(sign | 0x7E00);
    }
    f16::from_f32(x)
}

/// ggml's bf16 -> fp32 conversion: the bf16 bits become the high half.
#[inline]
pub fn bf16_to_fp32(h: bf16) -> f32 {
    f32::from_bits(u32::from(h.to_bits()) << 16)
}

/// ggml's fp32 -> bf16 conversion (`ggml_compute_fp32_to_bf16`): round to
/// nearest even; NaN keeps its high bits and is forced quiet.
#[inline]
pub fn fp32_to_bf16(x: f32) -> bf16 {
    bf16::from_f32(x)
}

/// Copies an F32 row (ggml's F32 `to_float` is a plain copy).
pub fn dequantize_row_f32(x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (out, v) in y.iter_mut().zip(x) {
        *out = *v;
    }
}

/// Copies into an F32 row (ggml's F32 "quantization" is a plain copy).
pub fn quantize_row_f32(x: &[f32], y: &mut [f32]) {
    dequantize_row_f32(x, y);
}

/// Widens an F16 row to f32 (ggml's `ggml_fp16_to_fp32_row`).
pub fn dequantize_row_f16(x: &[f16], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (out, h) in y.iter_mut().zip(x) {
        *out = fp16_to_fp32(*h);
    }
}

/// Rounds an f32 row to F16 (ggml's `ggml_fp32_to_fp16_row`).
pub fn quantize_row_f16(x: &[f32], y: &mut [f16]) {
    debug_assert_eq!(x.len(), y.len());
    for (out, v) in y.iter_mut().zip(x) {
        *out = fp32_to_fp16(*v);
    }
}

/// Widens a BF16 row to f32 (ggml's `ggml_bf16_to_fp32_row`).
pub fn dequantize_row_bf16(x: &[bf16], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (out, h) in y.iter_mut().zip(x) {
        *out = bf16_to_fp32(*h);
    }
}

/// Rounds an f32 row to BF16 (ggml's `ggml_fp32_to_bf16_row_ref`).
pub fn quantize_row_bf16(x: &[f32], y: &mut [bf16]) {
    debug_assert_eq!(x.len(), y.len());
    for (out, v) in y.iter_mut().zip(x) {
        *out = fp32_to_bf16(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's `ggml_compute_fp16_to_fp32`, transcribed bit for bit as the
    /// oracle (it is the code whose output the golden files hold).
    fn ggml_fp16_to_fp32(h: u16) -> f32 {
        let w = u32::from(h) << 16;
        let sign = w & 0x8000_0000;
        let two_w = w.wrapping_add(w);
        let exp_offset = 0xE0u32 << 23;
        let exp_scale = f32::from_bits(0x0780_0000);
        let normalized = f32::from_bits((two_w >> 4) + exp_offset) * exp_scale;
        let magic_mask = 126u32 << 23;
        let denormalized = f32::from_bits((two_w >> 17) | magic_mask) - 0.5;
        let cutoff = 1u32 << 27;
        let bits = if two_w < cutoff {
            denormalized.to_bits()
        } else {
            normalized.to_bits()
        };
        f32::from_bits(sign | bits)
    }

    /// ggml's `ggml_compute_fp32_to_fp16`, transcribed as the oracle.
    fn ggml_fp32_to_fp16(f: f32) -> u16 {
        let scale_to_inf = f32::from_bits(0x7780_0000);
        let scale_to_zero = f32::from_bits(0x0880_0000);
        let mut base = (f.abs() * scale_to_inf) * scale_to_zero;
        let w = f.to_bits();
        let shl1_w = w.wrapping_add(w);
        let sign = w & 0x8000_0000;
        let bias = (shl1_w & 0xFF00_0000).max(0x7100_0000);
        base += f32::from_bits((bias >> 1) + 0x0780_0000);
        let bits = base.to_bits();
        let exp_bits = (bits >> 13) & 0x7C00;
        let mantissa_bits = bits & 0x0FFF;
        let nonsign = exp_bits + mantissa_bits;
        let low = if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        };
        ((sign >> 16) | low) as u16
    }

    /// ggml's `ggml_compute_fp32_to_bf16`, transcribed as the oracle.
    fn ggml_fp32_to_bf16(f: f32) -> u16 {
        let i = f.to_bits();
        if i & 0x7fff_ffff > 0x7f80_0000 {
            return ((i >> 16) | 64) as u16;
        }
        (i.wrapping_add(0x7fff + ((i >> 16) & 1)) >> 16) as u16
    }

    /// f32 values around every f16 (and bf16) rounding boundary: each f16
    /// value, the midpoints between neighbours, one ulp either side of those,
    /// the NaN and infinity patterns, and a sweep over the bit space.
    fn boundary_values() -> Vec<f32> {
        let mut out = Vec::new();
        for h in 0..=u16::MAX {
            let v = ggml_fp16_to_fp32(h);
            let next = ggml_fp16_to_fp32(h.wrapping_add(1));
            out.push(v);
            if v.is_finite() && next.is_finite() {
                let mid = ((f64::from(v) + f64::from(next)) / 2.0) as f32;
                for b in [
                    mid.to_bits().wrapping_sub(1),
                    mid.to_bits(),
                    mid.to_bits() + 1,
                ] {
                    out.push(f32::from_bits(b));
                }
            }
        }
        let mut bits = 0u32;
        while let Some(next) = bits.checked_add(65_521) {
            out.push(f32::from_bits(bits));
            bits = next;
        }
        for b in [
            0x7f80_0000u32,
            0xff80_0000,
            0x7f80_0001,
            0x7fc0_0000,
            0xffc1_2345,
            0x7fbf_ffff,
            0x7f7f_ffff,
            0x477f_f000,
            0x477f_efff,
            0x3380_0000,
            0x3380_0001,
            0x3300_0000,
            0x0000_0001,
        ] {
            out.push(f32::from_bits(b));
        }
        out
    }

    #[test]
    fn fp16_to_fp32_matches_ggml_for_every_f16() {
        for h in 0..=u16::MAX {
            let ours = fp16_to_fp32(f16::from_bits(h)).to_bits();
            assert_eq!(ours, ggml_fp16_to_fp32(h).to_bits(), "f16 bits {h:#06x}");
        }
    }

    #[test]
    fn fp32_to_fp16_matches_ggml_at_every_rounding_boundary() {
        for v in boundary_values() {
            let ours = fp32_to_fp16(v).to_bits();
            assert_eq!(ours, ggml_fp32_to_fp16(v), "f32 bits {:#010x}", v.to_bits());
        }
    }

    #[test]
    fn fp32_to_bf16_matches_ggml_at_every_rounding_boundary() {
        let mut values = boundary_values();
        // bf16 ties sit at 0x8000 in the low half; both parities of the kept bit.
        for hi in [0x3f80u32, 0x3f81, 0x7f7f, 0x0001, 0x8000, 0xc2fe] {
            for lo in [0x7fffu32, 0x8000, 0x8001] {
                values.push(f32::from_bits((hi << 16) | lo));
            }
        }
        for v in values {
            let ours = fp32_to_bf16(v).to_bits();
            assert_eq!(ours, ggml_fp32_to_bf16(v), "f32 bits {:#010x}", v.to_bits());
        }
    }

    #[test]
    fn half_way_values_round_to_even() {
        // 1 + 2^-11 lies halfway between 1 and the next f16; even is 1.
        assert_eq!(fp32_to_fp16(1.0 + 2f32.powi(-11)).to_bits(), 0x3c00);
        // 1 + 3 * 2^-11 lies halfway between odd 0x3c01 and even 0x3c02.
        assert_eq!(fp32_to_fp16(1.0 + 3.0 * 2f32.powi(-11)).to_bits(), 0x3c02);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        assert_eq!(fp32_to_fp16(65520.0).to_bits(), 0x7c00);
        assert_eq!(fp32_to_fp16(-f32::NAN).to_bits(), 0xfe00);
    }

    #[test]
    fn rows_round_trip() {
        let x = [0.0f32, -0.0, 1.5, -2.25, 65504.0, 1e-7, f32::INFINITY];
        let mut h = [f16::ZERO; 7];
        let mut y = [0f32; 7];
        quantize_row_f16(&x, &mut h);
        dequantize_row_f16(&h, &mut y);
        assert_eq!(&y[..5], &x[..5]);
        assert_eq!(y[5], fp16_to_fp32(fp32_to_fp16(1e-7)));
        assert_eq!(y[6], f32::INFINITY);
        let mut b = [bf16::ZERO; 7];
        quantize_row_bf16(&x, &mut b);
        dequantize_row_bf16(&b, &mut y);
        assert_eq!(&y[..4], &x[..4]);
        let mut z = [0f32; 7];
        quantize_row_f32(&x, &mut z);
        assert_eq!(z, x);
    }
}
