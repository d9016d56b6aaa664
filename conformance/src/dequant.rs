//! Dequantization checks on the committed models' own tensors.
//!
//! Two comparisons that need no Python at test time:
//! - lossless pairs: the generator rounds every weight to a value F16 holds
//!   exactly, and bitnet's weights are exactly -1/0/+1, so the F16 model and
//!   the TQ1_0/TQ2_0 models dequantize to the F32 sibling's bits exactly;
//! - the GPU's `get_rows` kernel against seldon-formats' CPU dequantizer (which
//!   seldon-formats' golden tests tie bit-exactly to ggml), on every row of
//!   every tensor, within [`DEQUANT_GPU_MAX_ULPS`].

use std::collections::BTreeMap;
use std::path::Path;

use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufFile, TensorInfo};
use seldon_formats::quant::dequantize_to_vec;
use seldon_kernels::Gpu;
use seldon_kernels::get_rows::{GetRows, SUPPORTED};
use serde::Serialize;

use crate::error::{ConformanceError, Result};
use crate::thresholds::DEQUANT_GPU_MAX_ULPS;

/// The outcome of one dequantization comparison over a model's tensors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DequantReport {
    /// What was compared with what.
    pub what: String,
    /// Tensors compared, per ggml type.
    pub tensors: BTreeMap<String, usize>,
    /// Elements compared.
    pub elements: u64,
    /// Elements whose bits differ.
    pub not_identical: u64,
    /// The largest difference in units in the last place.
    pub max_ulps: u32,
    /// The allowed ulps (0: bit-exact).
    pub limit_ulps: u32,
    /// The first differing element, `tensor[index]: want vs got`.
    pub first_difference: Option<String>,
}

impl DequantReport {
    fn new(what: String, limit_ulps: u32) -> Self {
        Self {
            what,
            tensors: BTreeMap::new(),
            elements: 0,
            not_identical: 0,
            max_ulps: 0,
            limit_ulps,
            first_difference: None,
        }
    }

    /// Whether every element is within the limit.
    pub fn pass(&self) -> bool {
        self.max_ulps <= self.limit_ulps && !self.tensors.is_empty()
    }

    fn compare(&mut self, name: &str, ty: GgmlType, want: &[f32], got: &[f32]) {
        *self.tensors.entry(ty.to_string()).or_insert(0) += 1;
        self.elements += want.len() as u64;
        for (i, (&w, &g)) in want.iter().zip(got).enumerate() {
            if w.to_bits() != g.to_bits() {
                self.not_identical += 1;
                let d = ulps(w, g);
                self.max_ulps = self.max_ulps.max(d);
                if self.first_difference.is_none() && d > self.limit_ulps {
                    self.first_difference = Some(format!("{name}[{i}]: {w:e} vs {g:e}"));
                }
            }
        }
        if want.len() != got.len() {
            self.max_ulps = u32::MAX;
            self.first_difference =
                Some(format!("{name}: {} vs {} elements", want.len(), got.len()));
        }
    }

    /// One line for a log.
    pub fn line(&self) -> String {
        let types: Vec<String> = self
            .tensors
            .iter()
            .map(|(t, n)| format!("{t} x{n}"))
            .collect();
        format!(
            "{} {}: {} elements of {} tensors ({}), {} not bit-identical, max {} ulp (limit {}){}",
            if self.pass() { "PASS" } else { "FAIL" },
            self.what,
            self.elements,
            self.tensors.values().sum::<usize>(),
            types.join(", "),
            self.not_identical,
            self.max_ulps,
            self.limit_ulps,
            self.first_difference
                .as_ref()
                .map(|d| format!("; first: {d}"))
                .unwrap_or_default()
        )
    }
}

/// Distance in units in the last place between two f32 of any sign (NaN is
/// as far as possible from everything).
pub fn ulps(a: f32, b: f32) -> u32 {
    if a.is_nan() || b.is_nan() {
        return u32::MAX;
    }
    let key = |v: f32| {
        let bits = v.to_bits() as i32;
        if bits < 0 {
            i32::MIN.wrapping_sub(bits)
        } else {
            bits
        }
    };
    key(a).abs_diff(key(b))
}

fn dequantize(file: &GgufFile, t: &TensorInfo) -> Result<Vec<f32>> {
    Ok(dequantize_to_vec(t.ty, file.tensor_data(t))?)
}

/// Types whose dequantization reproduces the generator's F32 weights exactly
/// on the tiny models (see the module documentation).
pub const LOSSLESS: [GgmlType; 3] = [GgmlType::F16, GgmlType::TQ1_0, GgmlType::TQ2_0];

/// Compares every tensor of `model` stored in a [`LOSSLESS`] type with the
/// same tensor of `f32_model`, bit for bit, through seldon-formats.
pub fn lossless_against_f32(model: &Path, f32_model: &Path) -> Result<DequantReport> {
    let a = GgufFile::open(model)?;
    let b = GgufFile::open(f32_model)?;
    let mut report = DequantReport::new(
        format!("{} vs {}", parent_name(model), parent_name(f32_model)),
        0,
    );
    for t in a.tensors() {
        if !LOSSLESS.contains(&t.ty) {
            continue;
        }
        let other = b.tensor(&t.name).ok_or_else(|| {
            ConformanceError::Invalid(format!("{} has no tensor {}", f32_model.display(), t.name))
        })?;
        if other.ty != GgmlType::F32 || other.ne() != t.ne() {
            return Err(ConformanceError::Invalid(format!(
                "{}: {} {:?} vs {} {:?}",
                t.name,
                t.ty,
                t.ne(),
                other.ty,
                other.ne()
            )));
        }
        report.compare(&t.name, t.ty, &dequantize(&b, other)?, &dequantize(&a, t)?);
    }
    Ok(report)
}

fn parent_name(p: &Path) -> String {
    p.parent().and_then(Path::file_name).map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Dequantizes every row of every tensor of `model` on the GPU with
/// `get_rows` and compares it with seldon-formats on the CPU.
pub fn gpu_against_cpu(gpu: &Gpu, model: &Path) -> Result<DequantReport> {
    let file = GgufFile::open(model)?;
    let mut report = DequantReport::new(
        format!("GPU get_rows vs CPU, {}", parent_name(model)),
        DEQUANT_GPU_MAX_ULPS,
    );
    for t in file.tensors() {
        if !SUPPORTED.contains(&t.ty) {
            return Err(ConformanceError::Invalid(format!(
                "{}: no GPU dequantization for {}",
                t.name, t.ty
            )));
        }
        let n_cols = t.ne()[0];
        let n_rows = t.n_rows();
        let want = dequantize(&file, t)?;
        let got = gpu_rows(gpu, t.ty, file.tensor_data(t), n_rows, n_cols)?;
        report.compare(&t.name, t.ty, &want, &got);
    }
    Ok(report)
}

fn gpu_rows(gpu: &Gpu, ty: GgmlType, bytes: &[u8], n_rows: u64, n_cols: u64) -> Result<Vec<f32>> {
    let kernel = GetRows::new(gpu, ty)?;
    let weight = gpu.upload_bytes("dequant.weight", bytes)?;
    let ids: Vec<u32> = (0..u32::try_from(n_rows)
        .map_err(|_| ConformanceError::Invalid("too many rows".into()))?)
        .collect();
    let ids_bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    let ids = gpu.upload_bytes("dequant.ids", &ids_bytes)?;
    let n_out = n_rows
        .checked_mul(n_cols)
        .ok_or_else(|| ConformanceError::Invalid("tensor too large".into()))?;
    let out = gpu.storage_buffer(
        "dequant.out",
        n_out * 4,
        wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    )?;
    // Poisoned with NaN so a row the kernel skips cannot pass.
    gpu.fill_u32("dequant.out", &out, u32::MAX)?;
    let mut encoder = gpu.encoder("dequant")?;
    kernel.encode(
        gpu,
        &mut encoder,
        &weight,
        &ids,
        &out,
        n_rows,
        n_cols,
        n_rows,
    )?;
    gpu.submit_and_wait("dequant", encoder)?;
    let mut got = gpu.read_f32("dequant.out", &out)?;
    got.truncate(usize::try_from(n_out).unwrap_or(usize::MAX));
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulps_counts_representable_steps() {
        assert_eq!(ulps(1.0, 1.0), 0);
        assert_eq!(ulps(1.0, f32::from_bits(1.0f32.to_bits() + 1)), 1);
        assert_eq!(ulps(0.0, -0.0), 0);
        assert_eq!(ulps(f32::from_bits(1), -f32::from_bits(1)), 2);
        assert_eq!(ulps(f32::NAN, 1.0), u32::MAX);
    }

    #[test]
    fn report_flags_differences() {
        let mut r = DequantReport::new("t".into(), 0);
        r.compare("a", GgmlType::F16, &[1.0, 2.0], &[1.0, 2.0]);
        assert!(r.pass());
        r.compare(
            "b",
            GgmlType::F16,
            &[1.0],
            &[f32::from_bits(1.0f32.to_bits() + 1)],
        );
        assert!(!r.pass());
        assert_eq!(r.not_identical, 1);
        assert!(r.first_difference.as_deref().unwrap().starts_with("b[0]"));
        assert!(!DequantReport::new("empty".into(), 0).pass());
    }
}
