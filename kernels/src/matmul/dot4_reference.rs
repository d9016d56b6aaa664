//! The CPU oracle of [`super::Dot4MatVec`]: activations quantized by
//! seldon-formats (ggml's `quantize_row_q8_*_ref`, golden-tested against
//! ggml), then ggml's generic `ggml_vec_dot_<type>_q8_<x>` arithmetic: exact
//! integer sums of quant products per (sub-)block, scaled by the f32 factors
//! and accumulated in f32 as ggml does.

use rayon::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::quant::kquants::{get_scale_min_k4, unpack_q3_k_scales};
use seldon_formats::quant::quantize_to_vec;

use super::dot4::ActivationFormat;
use super::{MatMulShape, checked_mul};
use crate::error::{Error, Result};

const OP: &str = "matvec_q8_dot4 reference";

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(OP, message)
}

fn to_usize(what: &str, v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| invalid(format!("{what} = {v} exceeds usize")))
}

/// What `quantize_q8_*` writes for `x` (`n_cols` columns of `n_in`, a
/// multiple of the format's block): seldon-formats' blocks (bit-exact with
/// ggml) as little-endian words. Q8_1 and Q8_K are ggml's blocks as they
/// are; a Q8_0 block becomes 9 words, its f16 scale widened to f32 bits.
pub fn quantize_activations_reference(
    format: ActivationFormat,
    x: &[f32],
    n_in: u64,
    n_cols: u64,
) -> Result<Vec<u32>> {
    let len = to_usize(
        "n_cols * n_in",
        checked_mul(OP, "n_cols * n_in", n_cols, n_in)?,
    )?;
    let Some(x) = x.get(..len) else {
        return Err(invalid(format!(
            "x holds {} values, the shape needs {len}",
            x.len()
        )));
    };
    let qk = format.block_elements();
    if !n_in.is_multiple_of(qk) {
        return Err(invalid(format!("n_in = {n_in} is not a multiple of {qk}")));
    }
    let bytes = quantize_to_vec(format.ggml_type(), x).map_err(|e| invalid(e.to_string()))?;
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Ok(match format {
        ActivationFormat::Q8_0 => bytes
            .chunks_exact(34)
            .flat_map(|block| {
                let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                std::iter::once(d.to_bits()).chain(block[2..].chunks_exact(4).map(word))
            })
            .collect(),
        ActivationFormat::Q8_1 | ActivationFormat::Q8_K => {
            bytes.chunks_exact(4).map(word).collect()
        }
    })
}

/// One activation block as ggml's dot products read it.
struct ActBlock<'a> {
    d: f32,
    /// Q8_1's `s` (0 for the other formats).
    s: f32,
    qs: &'a [u8],
}

fn act_block(format: ActivationFormat, words: &[u32]) -> ActBlock<'_> {
    let bytes: &[u8] = bytemuck::cast_slice(words);
    let f16 = |i: usize| half::f16::from_le_bytes([bytes[i], bytes[i + 1]]).to_f32();
    match format {
        ActivationFormat::Q8_0 => ActBlock {
            d: f32::from_bits(words[0]),
            s: 0.0,
            qs: &bytes[4..36],
        },
        ActivationFormat::Q8_1 => ActBlock {
            d: f16(0),
            s: f16(2),
            qs: &bytes[4..36],
        },
        ActivationFormat::Q8_K => ActBlock {
            d: f32::from_bits(words[0]),
            s: 0.0,
            qs: &bytes[4..260],
        },
    }
}

/// One weight block as ggml's `vec_dot` sees it: integer quants (ggml's
/// offsets applied), an integer scale and min per sub-block of `sub`
/// elements, and the f16 factors: value = d * sc * q - dmin * mn, or for
/// Q4_1/Q5_1 d * q + m with `dmin` holding m.
#[derive(Debug)]
pub(crate) struct IntBlock {
    pub q: Vec<i32>,
    pub sub: usize,
    pub sc: Vec<i32>,
    pub mn: Vec<i32>,
    pub d: f32,
    pub dmin: f32,
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Trit `n` of a TQ1_0 byte as ggml reads it: `(u8(b * 3^n) * 3) >> 8`.
fn trit(b: u8, n: u32) -> i32 {
    let q = b.wrapping_mul(3u8.pow(n));
    ((u16::from(q) * 3) >> 8) as i32
}

/// Decodes one block of `ty` (its `type_size` bytes).
pub(crate) fn int_block(ty: GgmlType, b: &[u8]) -> IntBlock {
    use GgmlType::*;
    let n = ty.block_size() as usize;
    let mut q = vec![0i32; n];
    let (mut sub, mut d, mut dmin) = (n, f16_at(b, 0), 0.0);
    let (mut sc, mut mn) = (vec![1i32], vec![0i32]);
    // Legacy 4/5-bit quants: byte j of qs holds element j low, j + 16 high.
    let nibbles = |q: &mut [i32], qs: &[u8], qh: u32, offset: i32| {
        for j in 0..16 {
            let h = |e: usize| {
                if qh == u32::MAX {
                    0
                } else {
                    (((qh >> e) & 1) << 4) as i32
                }
            };
            q[j] = i32::from(qs[j] & 15) + h(j) - offset;
            q[j + 16] = i32::from(qs[j] >> 4) + h(j + 16) - offset;
        }
    };
    let qh_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    match ty {
        Q4_0 => nibbles(&mut q, &b[2..18], u32::MAX, 8),
        Q4_1 => {
            nibbles(&mut q, &b[4..20], u32::MAX, 0);
            dmin = f16_at(b, 2);
        }
        Q5_0 => nibbles(&mut q, &b[6..22], qh_at(2), 16),
        Q5_1 => {
            nibbles(&mut q, &b[8..24], qh_at(4), 0);
            dmin = f16_at(b, 2);
        }
        Q8_0 => q
            .iter_mut()
            .zip(&b[2..34])
            .for_each(|(q, &v)| *q = i32::from(v as i8)),
        Q2_K => {
            (sub, d, dmin) = (16, f16_at(b, 80), f16_at(b, 82));
            sc = b[..16].iter().map(|&s| i32::from(s & 15)).collect();
            mn = b[..16].iter().map(|&s| i32::from(s >> 4)).collect();
            for (e, q) in q.iter_mut().enumerate() {
                let (c, j, l) = (e / 128, (e / 32) % 4, e % 32);
                *q = i32::from((b[16 + 32 * c + l] >> (2 * j)) & 3);
            }
        }
        Q3_K => {
            (sub, d) = (16, f16_at(b, 108));
            let scales: [u8; 12] = b[96..108].try_into().unwrap_or_default();
            sc = unpack_q3_k_scales(&scales).map(i32::from).to_vec();
            mn = vec![0; 16];
            for (e, q) in q.iter_mut().enumerate() {
                let (c, j, l) = (e / 128, (e / 32) % 4, e % 32);
                let low = i32::from((b[32 + 32 * c + l] >> (2 * j)) & 3);
                let high = i32::from((b[l] >> (4 * c + j)) & 1);
                *q = low + 4 * high - 4;
            }
        }
        Q4_K | Q5_K => {
            (sub, dmin) = (32, f16_at(b, 2));
            let scales: [u8; 12] = b[4..16].try_into().unwrap_or_default();
            let sm: Vec<(u8, u8)> = (0..8).map(|j| get_scale_min_k4(j, &scales)).collect();
            sc = sm.iter().map(|&(s, _)| i32::from(s)).collect();
            mn = sm.iter().map(|&(_, m)| i32::from(m)).collect();
            let qs = if ty == Q4_K { 16 } else { 48 };
            for (e, q) in q.iter_mut().enumerate() {
                let (c, half, l) = (e / 64, (e / 32) % 2, e % 32);
                let low = i32::from((b[qs + 32 * c + l] >> (4 * half)) & 15);
                let high = if ty == Q5_K {
                    i32::from((b[16 + l] >> (2 * c + half)) & 1) << 4
                } else {
                    0
                };
                *q = low + high;
            }
        }
        Q6_K => {
            (sub, d) = (16, f16_at(b, 208));
            sc = b[192..208].iter().map(|&s| i32::from(s as i8)).collect();
            mn = vec![0; 16];
            for (e, q) in q.iter_mut().enumerate() {
                let (h, k, l) = (e / 128, (e / 32) % 4, e % 32);
                let low = (b[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
                let high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
                *q = i32::from(low | (high << 4)) - 32;
            }
        }
        TQ1_0 => {
            d = f16_at(b, 52);
            for (e, q) in q.iter_mut().enumerate() {
                let (byte, n) = match e {
                    0..160 => (b[e % 32], e / 32),
                    160..240 => (b[32 + (e - 160) % 16], (e - 160) / 16),
                    _ => (b[48 + (e - 240) % 4], (e - 240) / 4),
                };
                *q = trit(byte, n as u32) - 1;
            }
        }
        TQ2_0 => {
            d = f16_at(b, 64);
            for (e, q) in q.iter_mut().enumerate() {
                let (h, n, m) = (e / 128, (e / 32) % 4, e % 32);
                *q = i32::from((b[32 * h + m] >> (2 * n)) & 3) - 1;
            }
        }
        _ => {}
    }
    IntBlock {
        q,
        sub,
        sc,
        mn,
        d,
        dmin,
    }
}

/// One weight block times one activation block, as ggml's generic
/// `vec_dot` adds it to its f32 sum.
fn block_dot(format: ActivationFormat, w: &IntBlock, x: &ActBlock) -> f32 {
    let xq = |i: usize| i32::from(x.qs[i] as i8);
    let mut sumi = 0i32;
    let mut mins = 0i32;
    for (j, (sub_q, (&sc, &mn))) in w.q.chunks(w.sub).zip(w.sc.iter().zip(&w.mn)).enumerate() {
        let base = j * w.sub;
        let dot: i32 = sub_q
            .iter()
            .enumerate()
            .map(|(i, &q)| q * xq(base + i))
            .sum();
        let xsum: i32 = (0..w.sub).map(|i| xq(base + i)).sum();
        sumi += sc * dot;
        mins += mn * xsum;
    }
    match format {
        // ggml_vec_dot_q{4,5,8}_0_q8_0: sumi * (d_w * d_x).
        ActivationFormat::Q8_0 => sumi as f32 * (w.d * x.d),
        // ggml_vec_dot_q{4,5}_1_q8_1: (d_w * d_x) * sumi + m_w * s_x.
        ActivationFormat::Q8_1 => (w.d * x.d) * sumi as f32 + w.dmin * x.s,
        // ggml_vec_dot_<k>_q8_K: d_w * d_x * sum(sc * dot) - dmin_w * d_x *
        // sum(mn * bsums) (the bsums are the exact per-16 sums of xq).
        ActivationFormat::Q8_K => (w.d * x.d) * sumi as f32 - (w.dmin * x.d) * mins as f32,
    }
}

/// The product [`super::Dot4MatVec`] computes: `x` quantized by
/// seldon-formats to the weight type's activation format, times the
/// weights, with ggml's integer-then-f32 arithmetic per block.
pub fn reference_dot4(
    ty: GgmlType,
    weights: &[u8],
    x: &[f32],
    shape: MatMulShape,
) -> Result<Vec<f32>> {
    let format = ActivationFormat::for_weights(ty)
        .ok_or_else(|| invalid(format!("no dot4 matvec for {ty}")))?;
    let words = quantize_activations_reference(format, x, shape.n_in, shape.n_cols)?;
    let row_bytes = ty.bytes_for(shape.n_in).ok_or_else(|| {
        invalid(format!(
            "n_in = {} is not a multiple of {}",
            shape.n_in,
            ty.block_size()
        ))
    })?;
    let row_bytes = to_usize("row bytes", row_bytes)?;
    let n_out = to_usize("n_out", shape.n_out)?;
    let bytes = row_bytes
        .checked_mul(n_out)
        .ok_or_else(|| invalid("weight bytes overflow usize"))?;
    let Some(weights) = weights.get(..bytes) else {
        return Err(invalid(format!(
            "weights hold {} bytes, the shape needs {bytes}",
            weights.len()
        )));
    };
    let type_size = to_usize("type size", ty.type_size())?;
    let block_words = to_usize("block words", format.words_per_block())?;
    let blocks_per_col = to_usize("blocks", shape.n_in / format.block_elements())?;
    let rows: Vec<Vec<IntBlock>> = weights
        .par_chunks(row_bytes.max(1))
        .map(|row| {
            row.chunks_exact(type_size)
                .map(|b| int_block(ty, b))
                .collect()
        })
        .collect();
    let n_cols = to_usize("n_cols", shape.n_cols)?;
    Ok((0..n_cols)
        .into_par_iter()
        .flat_map_iter(|c| {
            let col = &words[c * blocks_per_col * block_words..][..blocks_per_col * block_words];
            rows.iter().take(n_out).map(move |row| {
                row.iter()
                    .zip(col.chunks_exact(block_words))
                    .map(|(w, xb)| block_dot(format, w, &act_block(format, xb)))
                    .sum::<f32>()
            })
        })
        .collect())
}

/// The quantized activations as f32 (`d * q`), for error bounds in tests.
pub fn dequantize_activations_reference(format: ActivationFormat, words: &[u32]) -> Vec<f32> {
    let block_words = format.words_per_block() as usize;
    words
        .chunks_exact(block_words)
        .flat_map(|b| {
            let a = act_block(format, b);
            a.qs.iter()
                .map(move |&q| a.d * f32::from(q as i8))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::dot4::DOT4_TYPES;
    use seldon_formats::quant::dequantize_to_vec;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    /// The integer decoders against seldon-formats' dequantizers (bit-exact
    /// with ggml): d * sc * q - dmin * mn (or d * q + m) gives every value.
    #[test]
    fn integer_blocks_rebuild_the_dequantized_weights() {
        for &ty in DOT4_TYPES {
            let x = values(1024, ty.id());
            let bytes = quantize_to_vec(ty, &x).unwrap();
            let want = dequantize_to_vec(ty, &bytes).unwrap();
            let size = ty.type_size() as usize;
            let legacy_min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
            for (blk, (b, want)) in bytes
                .chunks_exact(size)
                .zip(want.chunks(ty.block_size() as usize))
                .enumerate()
            {
                let w = int_block(ty, b);
                for (i, (&q, &e)) in w.q.iter().zip(want).enumerate() {
                    let j = i / w.sub;
                    let v = if legacy_min {
                        f64::from(w.d) * f64::from(q) + f64::from(w.dmin)
                    } else {
                        f64::from(w.d) * f64::from(w.sc[j] * q)
                            - f64::from(w.dmin) * f64::from(w.mn[j])
                    };
                    let tol = 1e-6 * (f64::from(e).abs() + 1e-3);
                    assert!(
                        (v - f64::from(e)).abs() <= tol,
                        "{ty} block {blk} element {i}: {v} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn activation_layouts_hold_ggml_blocks() {
        let x: Vec<f32> = (0..256).map(|j| j as f32 - 16.0).collect();
        let q8_0 = quantize_activations_reference(ActivationFormat::Q8_0, &x, 256, 1).unwrap();
        assert_eq!(q8_0.len(), 8 * 9);
        assert_eq!(
            f32::from_bits(q8_0[0]),
            half::f16::from_f32(16.0 / 127.0).to_f32()
        );
        assert_eq!(q8_0[1] & 0xFF, 0x81);
        let q8_k = quantize_activations_reference(ActivationFormat::Q8_K, &x, 256, 1).unwrap();
        assert_eq!(q8_k.len(), 73);
        // max = 239: iscale = -127 / 239 and d = 1 / iscale.
        assert_eq!(f32::from_bits(q8_k[0]), 1.0 / (-127.0f32 / 239.0));
        let xd = dequantize_activations_reference(ActivationFormat::Q8_K, &q8_k);
        assert!((xd[255] - 239.0).abs() < 1e-4, "{}", xd[255]);
        assert!(quantize_activations_reference(ActivationFormat::Q8_K, &x, 32, 8).is_err());
        assert!(quantize_activations_reference(ActivationFormat::Q8_1, &x, 256, 2).is_err());
    }
}
