//! Results: one [`Record`] per measured case, printed as a Markdown table,
//! JSON, JSON lines or CSV (llama-bench's `-o` formats) and saved as JSON
//! under bench/results/ for the tables and charts made from them later.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;

use crate::kernels::KernelsOptions;
use crate::kernels::cases::Case;
use crate::kernels::measure::Clock;
use crate::meta::RunMeta;

/// One measured case. Field names are the JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// `matvec`, `matmul`, `attention`, `copy`, ...
    pub kernel: String,
    /// Weight (or data) type as llama.cpp spells it.
    #[serde(rename = "type")]
    pub ty: String,
    /// `{n_in}x{n_out}` for products; see `Case::shape` for the others.
    pub shape: String,
    /// Activation columns (tokens) per run.
    pub n_cols: u64,
    /// Median GPU time of one run, microseconds.
    pub median_us: f64,
    /// Fastest run, microseconds.
    pub min_us: f64,
    /// Slowest run, microseconds.
    pub max_us: f64,
    /// Timed runs.
    pub runs: u32,
    /// Untimed runs before them.
    pub warmup: u32,
    /// Bytes one run moves at the least.
    pub bytes: u64,
    /// Floating-point operations of one run.
    pub flops: u64,
    /// `bytes / median`, GB/s (1e9 bytes).
    pub gbps: f64,
    /// `flops / median`, GFLOP/s.
    pub gflops: f64,
    /// The copy kernel's GB/s on the same adapter in the same run.
    pub ceiling_gbps: f64,
    /// `gbps / ceiling_gbps`.
    pub ceiling_ratio: f64,
    /// Copies of the large inputs the runs rotated through (cache busting).
    pub input_copies: u64,
    /// `gpu_timestamp` or `wall_clock`.
    pub timer: String,
    /// Adapter name, backend and driver.
    pub adapter: String,
    /// wgpu backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Discrete, integrated, CPU, ...
    pub device_type: String,
    /// UTC time of the run, RFC 3339.
    pub date: String,
    /// `git rev-parse --short HEAD` where the run started, or "unknown".
    pub commit: String,
    /// Whether tracked files differed from that commit.
    pub git_dirty: bool,
    /// seldon's version.
    pub version: String,
}

impl Record {
    /// The record of `case` with `times` = (median, min, max) nanoseconds.
    pub fn new(
        case: &Case,
        meta: &RunMeta,
        clock: Clock,
        times: (f64, f64, f64),
        options: &KernelsOptions,
        ceiling_gbps: f64,
        input_copies: u64,
    ) -> Self {
        let (median, min, max) = times;
        let gbps = case.bytes() as f64 / median;
        Self {
            kernel: case.kernel.to_owned(),
            ty: case.type_name(),
            shape: case.shape(),
            n_cols: case.n_cols(),
            median_us: median / 1e3,
            min_us: min / 1e3,
            max_us: max / 1e3,
            runs: options.runs,
            warmup: options.warmup,
            bytes: case.bytes(),
            flops: case.flops(),
            gbps,
            gflops: case.flops() as f64 / median,
            ceiling_gbps,
            ceiling_ratio: gbps / ceiling_gbps,
            input_copies,
            timer: clock.name().to_owned(),
            adapter: meta.adapter.clone(),
            backend: meta.backend.clone(),
            device_type: meta.device_type.clone(),
            date: meta.date.clone(),
            commit: meta.commit.clone(),
            git_dirty: meta.git_dirty,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// llama-bench's output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Markdown table.
    Md,
    /// One JSON list of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

const CSV_FIELDS: &str = "kernel,type,shape,n_cols,median_us,gbps,gflops,ceiling_gbps,\
                          ceiling_ratio,timer,adapter,date,commit";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `records` in `format`.
pub fn render(records: &[Record], format: Format, meta: &RunMeta) -> Result<String> {
    let mut out = String::new();
    match format {
        Format::Json => {
            out = serde_json::to_string_pretty(records)?;
            out.push('\n');
        }
        Format::Jsonl => {
            for r in records {
                out.push_str(&serde_json::to_string(r)?);
                out.push('\n');
            }
        }
        Format::Csv => {
            out.push_str(CSV_FIELDS);
            out.push('\n');
            for r in records {
                let fields = [
                    csv_field(&r.kernel),
                    csv_field(&r.ty),
                    csv_field(&r.shape),
                    r.n_cols.to_string(),
                    format!("{:.3}", r.median_us),
                    format!("{:.3}", r.gbps),
                    format!("{:.3}", r.gflops),
                    format!("{:.3}", r.ceiling_gbps),
                    format!("{:.4}", r.ceiling_ratio),
                    csv_field(&r.timer),
                    csv_field(&r.adapter),
                    csv_field(&r.date),
                    csv_field(&r.commit),
                ];
                out.push_str(&fields.join(","));
                out.push('\n');
            }
        }
        Format::Md => {
            let dirty = if meta.git_dirty { " (dirty)" } else { "" };
            out.push_str(&format!(
                "adapter: {}\ndate: {}\ncommit: {}{dirty}\n\n",
                meta.adapter, meta.date, meta.commit
            ));
            out.push_str(
                "| kernel | type | shape | n_cols | median us | GB/s | GFLOP/s | of copy |\n\
                 | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
            );
            for r in records {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} |\n",
                    r.kernel,
                    r.ty,
                    r.shape,
                    r.n_cols,
                    r.median_us,
                    r.gbps,
                    r.gflops,
                    r.ceiling_ratio
                ));
            }
        }
    }
    Ok(out)
}

/// The file a run's JSON is saved to in `dir`:
/// `kernels-<adapter slug>-<YYYYMMDD>.json`, with `-2`, `-3`, ... added
/// rather than overwriting an earlier run of the same day.
pub fn result_path(dir: &Path, meta: &RunMeta) -> PathBuf {
    let stem = format!("kernels-{}-{}", meta.adapter_slug, meta.day);
    let mut path = dir.join(format!("{stem}.json"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.json"));
        n += 1;
    }
    path
}

/// Saves `records` as JSON in `dir` (created if missing); returns the path.
pub fn save(dir: &Path, records: &[Record], meta: &RunMeta) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = result_path(dir, meta);
    let json = render(records, Format::Json, meta)?;
    let mut file =
        std::fs::File::create_new(&path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(json.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
