//! Buffers and kernels for each case, packaged as a closure that records one
//! run into an encoder.
//!
//! The large read-only inputs (weights, KV caches) come in several copies
//! that successive runs rotate through, up to [`ROTATION_BYTES`] in all: in
//! a real decode step each matrix is read once and then evicted by the other
//! layers' weights, so a run must not find its weights in a cache that the
//! previous run warmed.

use anyhow::{Context, Result, bail};
use seldon_formats::GgmlType;
use seldon_formats::quant::quantize_to_vec;
use seldon_kernels::Gpu;
use seldon_kernels::attention::{Attention, AttentionScratch, AttentionShape, KvSplit};
use seldon_kernels::convert::{Convert, ConvertDirection, f16_buffer_bytes};
use seldon_kernels::copy::CopyVec4;
use seldon_kernels::kv_cache::kv_from_f32;
use seldon_kernels::matmul::{
    Dot4MatVec, MATVEC_MAX_COLS, MatMul, MatMulPath, MatMulShape, MatvecVariant,
    matvec_input_buffer,
};
use seldon_kernels::rms_norm::{RmsNorm, RmsNormShape};

use super::cases::{AttnShape, Case, CaseKind, MatShape};

/// Total bytes of the rotated copies of a case's large inputs.
pub const ROTATION_BYTES: u64 = 64 << 20;
/// The most copies of a case's large inputs.
pub const MAX_COPIES: u64 = 256;
/// f32 values quantized per weight type; weight matrices repeat these blocks.
/// Decoding cost does not depend on the values, and quantizing every matrix
/// on the CPU would take longer than benchmarking it.
const POOL_ELEMENTS: usize = 1 << 18;
/// The most splits an attention decode call may use.
const MAX_SPLITS: u64 = 64;

/// Records run `i` of a case into an encoder.
pub type Recorder<'a> =
    Box<dyn FnMut(&mut wgpu::CommandEncoder, u32) -> seldon_kernels::Result<()> + 'a>;

/// A case ready to run.
pub struct Prepared<'a> {
    /// Records one run.
    pub record: Recorder<'a>,
    /// Copies of the large inputs the runs rotate through.
    pub copies: u64,
}

impl std::fmt::Debug for Prepared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("copies", &self.copies)
            .finish_non_exhaustive()
    }
}

/// A deterministic generator (splitmix64): the bench needs repeatable data,
/// not statistical quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    /// `n` values in [-1, 1).
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

/// How many copies of `bytes` fill [`ROTATION_BYTES`] (at least 1).
pub fn copies_for(bytes: u64) -> u64 {
    ROTATION_BYTES.div_ceil(bytes.max(1)).clamp(1, MAX_COPIES)
}

/// Weight bytes of `ty` for `n_out` rows of `n_in`, made by repeating the
/// blocks of `pool` (whole blocks of `ty`).
fn weight_bytes_from_pool(pool: &[u8], ty: GgmlType, n_in: u64, n_out: u64) -> Result<Vec<u8>> {
    let bytes = super::cases::weight_bytes(ty, n_in, n_out)
        .with_context(|| format!("{ty}: {n_in} is not a whole number of blocks"))?;
    let bytes = usize::try_from(bytes)?;
    if pool.is_empty() {
        bail!("{ty}: empty block pool");
    }
    Ok(pool.iter().copied().cycle().take(bytes).collect())
}

/// Quantized random blocks of `ty` (see [`POOL_ELEMENTS`]).
pub fn block_pool(ty: GgmlType, rng: &mut Rng) -> Result<Vec<u8>> {
    let values = rng.values(POOL_ELEMENTS);
    quantize_to_vec(ty, &values).with_context(|| format!("quantizing random {ty} weights"))
}

fn output(gpu: &Gpu, name: &str, bytes: u64) -> Result<wgpu::Buffer> {
    Ok(gpu.storage_buffer(name, bytes, wgpu::BufferUsages::COPY_SRC)?)
}

fn uploads(gpu: &Gpu, name: &str, data: &[u8], copies: u64) -> Result<Vec<wgpu::Buffer>> {
    (0..copies)
        .map(|i| Ok(gpu.upload_bytes(&format!("{name}.{i}"), data)?))
        .collect()
}

fn pick(buffers: &[wgpu::Buffer], i: u32) -> &wgpu::Buffer {
    &buffers[i as usize % buffers.len()]
}

/// Builds the buffers and kernels of `case`. `pool` holds quantized blocks
/// of the case's weight type (products only).
pub fn prepare<'a>(
    gpu: &'a Gpu,
    case: &Case,
    pool: Option<&[u8]>,
    rng: &mut Rng,
) -> Result<Prepared<'a>> {
    match case.kind {
        CaseKind::Copy { elements } => {
            let kernel = CopyVec4::new(gpu)?;
            let src = gpu.upload_f32("copy.src", &rng.values(usize::try_from(elements)?))?;
            let dst = output(gpu, "copy.dst", elements * 4)?;
            Ok(Prepared {
                record: Box::new(move |enc, _| kernel.encode(gpu, enc, &src, &dst, elements / 4)),
                copies: 1,
            })
        }
        CaseKind::Convert { elements, to_f16 } => {
            let kernel = Convert::new(gpu)?;
            let f16_bytes = f16_buffer_bytes(elements).context("f16 size")?;
            let values = rng.values(usize::try_from(elements)?);
            let (direction, src, dst) = if to_f16 {
                let src = gpu.upload_f32("convert.src", &values)?;
                (
                    ConvertDirection::F32ToF16,
                    src,
                    output(gpu, "convert.dst", f16_bytes)?,
                )
            } else {
                let halves = kv_from_f32(&values, seldon_kernels::kv_cache::KvType::F16);
                let src = gpu.upload_bytes("convert.src", &halves)?;
                (
                    ConvertDirection::F16ToF32,
                    src,
                    output(gpu, "convert.dst", elements * 4)?,
                )
            };
            Ok(Prepared {
                record: Box::new(move |enc, _| {
                    kernel.encode(gpu, enc, direction, &src, &dst, elements)
                }),
                copies: 1,
            })
        }
        CaseKind::Matvec(m)
        | CaseKind::MatvecAlt(m)
        | CaseKind::Matmul(m)
        | CaseKind::MatvecDot4(m) => {
            let pool = pool.context("no weight pool for a product")?;
            prepare_product(gpu, case, m, pool, rng)
        }
        CaseKind::Attention(a) => prepare_attention(gpu, a, rng),
        CaseKind::RmsNorm { rows, n } => {
            let kernel = RmsNorm::new(gpu)?;
            let x = gpu.upload_f32("rms_norm.x", &rng.values(usize::try_from(rows * n)?))?;
            let w = gpu.upload_f32("rms_norm.w", &rng.values(usize::try_from(n)?))?;
            let y = output(gpu, "rms_norm.y", rows * n * 4)?;
            let shape = RmsNormShape::rows(rows, n);
            Ok(Prepared {
                record: Box::new(move |enc, _| kernel.encode(gpu, enc, &x, &w, &y, shape, 1e-5)),
                copies: 1,
            })
        }
    }
}

fn prepare_product<'a>(
    gpu: &'a Gpu,
    case: &Case,
    m: MatShape,
    pool: &[u8],
    rng: &mut Rng,
) -> Result<Prepared<'a>> {
    let weights = weight_bytes_from_pool(pool, m.ty, m.n_in, m.n_out)?;
    let copies = copies_for(weights.len() as u64);
    let w = uploads(gpu, "weights", &weights, copies)?;
    drop(weights);
    // As the engine allocates activations: matvec may read them as a uniform.
    let xs = rng.values(usize::try_from(m.n_in * m.n_cols)?);
    let usage = wgpu::BufferUsages::COPY_DST;
    let x = matvec_input_buffer(gpu, "x", 4 * m.n_in * m.n_cols, usage)?;
    gpu.write_f32("x", &x, 0, &xs)?;
    let y = output(gpu, "y", m.n_out * m.n_cols * 4)?;
    let shape = MatMulShape {
        n_in: m.n_in,
        n_out: m.n_out,
        n_cols: m.n_cols,
    };
    let record: Recorder<'a> = match case.kind {
        CaseKind::MatvecDot4(_) => {
            let kernel = Dot4MatVec::new(gpu, m.ty)?;
            let bytes = kernel.scratch_bytes(shape).context("scratch size")?;
            let scratch = output(gpu, "xq", bytes)?;
            Box::new(move |enc, i| kernel.encode(gpu, enc, pick(&w, i), &x, &scratch, &y, shape))
        }
        _ => {
            let variant = match (case.kind, case.kernel) {
                (CaseKind::MatvecAlt(_), "matvec_split") => MatvecVariant::Split,
                (CaseKind::MatvecAlt(_), _) => MatvecVariant::PerRow,
                _ => MatvecVariant::Auto,
            };
            let kernel = MatMul::with_variant(gpu, m.ty, variant)?;
            let path = match case.kind {
                CaseKind::Matvec(m) if m.n_cols > MATVEC_MAX_COLS => MatMulPath::MatvecChunks,
                CaseKind::Matvec(_) | CaseKind::MatvecAlt(_) => MatMulPath::Matvec,
                _ if case.kernel == "matmul_f16" => MatMulPath::MatmulF16,
                _ => MatMulPath::Matmul,
            };
            Box::new(move |enc, i| kernel.encode_with(gpu, enc, pick(&w, i), &x, &y, shape, path))
        }
    };
    Ok(Prepared { record, copies })
}

fn prepare_attention<'a>(gpu: &'a Gpu, a: AttnShape, rng: &mut Rng) -> Result<Prepared<'a>> {
    let kernel = Attention::new(gpu, a.head_dim, a.kv)?;
    let shape = AttentionShape {
        n_tokens: a.n_tokens,
        n_head: a.n_head,
        n_head_kv: a.n_head_kv,
        head_dim: a.head_dim,
        pos0: a.pos0,
    };
    let rows = a.n_tokens * a.n_head;
    let q_len = usize::try_from(rows * a.head_dim)?;
    let cache_len = usize::try_from(a.n_kv() * a.n_head_kv * a.head_dim)?;
    let k = kv_from_f32(&rng.values(cache_len), a.kv);
    let v = kv_from_f32(&rng.values(cache_len), a.kv);
    let copies = copies_for(2 * k.len() as u64);
    let k = uploads(gpu, "k_cache", &k, copies)?;
    let v = uploads(gpu, "v_cache", &v, copies)?;
    let q = gpu.upload_f32("q", &rng.values(q_len))?;
    let out = output(gpu, "attention.out", rows * a.head_dim * 4)?;
    // Prefill runs direct; decode splits the keys as the engine would.
    let (split, scratch) = if a.n_tokens == 1 {
        let scratch = AttentionScratch::new(gpu, rows, a.head_dim, MAX_SPLITS)?;
        (KvSplit::Auto, Some(scratch))
    } else {
        (KvSplit::Off, None)
    };
    let scale = 1.0 / (a.head_dim as f32).sqrt();
    Ok(Prepared {
        record: Box::new(move |enc, i| {
            let (k, v) = (pick(&k, i), pick(&v, i));
            kernel.encode(
                gpu,
                enc,
                &q,
                k,
                v,
                &out,
                &shape,
                scale,
                split,
                scratch.as_ref(),
            )
        }),
        copies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let a = Rng::new(7).values(1000);
        assert_eq!(a, Rng::new(7).values(1000));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(a.iter().any(|v| *v < -0.5) && a.iter().any(|v| *v > 0.5));
    }

    #[test]
    fn copies_fill_the_rotation_budget() {
        assert_eq!(copies_for(ROTATION_BYTES), 1);
        assert_eq!(copies_for(2 * ROTATION_BYTES), 1);
        assert_eq!(copies_for(ROTATION_BYTES / 4), 4);
        assert_eq!(copies_for(1), MAX_COPIES);
        assert_eq!(copies_for(0), MAX_COPIES);
    }

    #[test]
    fn weights_repeat_whole_blocks() {
        let ty = GgmlType::Q8_0;
        let pool: Vec<u8> = (0..34 * 3).map(|i| i as u8).collect();
        let w = weight_bytes_from_pool(&pool, ty, 64, 5).unwrap();
        assert_eq!(w.len(), 5 * 2 * 34);
        assert_eq!(&w[102..136], &pool[..34]);
        assert!(weight_bytes_from_pool(&pool, ty, 33, 1).is_err());
        assert!(weight_bytes_from_pool(&[], ty, 32, 1).is_err());
    }
}
