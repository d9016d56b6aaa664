//! `seldon-bench kernels`: every kernel on realistic shapes, timed on the
//! GPU, reported as GB/s and GFLOP/s beside the same adapter's copy ceiling.

pub mod cases;
pub mod measure;
pub mod setup;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use anyhow::{Context, Result};
use seldon_formats::GgmlType;
use seldon_formats::quant;
use seldon_kernels::Gpu;
use seldon_kernels::matmul::{DOT4_TYPES, MatMul, SUPPORTED_TYPES, split_supported};

use crate::UsageError;
use crate::meta::RunMeta;
use crate::report::Record;
use cases::{Case, CaseKind, Plan, all_cases, matches};
use measure::Timer;
use setup::{Rng, block_pool, prepare};

/// What `seldon-bench kernels` was asked to do.
#[derive(Debug, Clone)]
pub struct KernelsOptions {
    /// Case-insensitive substrings of `kernel/type/shape`; empty runs all.
    pub filters: Vec<String>,
    /// Only the 2048x6144 products and the smaller attention model.
    pub quick: bool,
    /// Timed runs per case.
    pub runs: u32,
    /// Untimed runs before them.
    pub warmup: u32,
    /// Tokens of the prefill cases.
    pub n_prompt: u64,
    /// Print a line per case on stderr.
    pub progress: bool,
}

/// The outcome of a sweep: a record per measured case, and the cases that
/// failed with why.
#[derive(Debug)]
pub struct Sweep {
    /// One record per measured case, the copy ceiling first.
    pub records: Vec<Record>,
    /// `(label, error)` of each case that could not run.
    pub failures: Vec<(String, String)>,
}

/// The weight types with both a GPU product and a CPU quantizer to make
/// weights with.
fn product_types() -> Vec<GgmlType> {
    SUPPORTED_TYPES
        .iter()
        .copied()
        .filter(|&t| quant::supports(t))
        .collect()
}

/// The cases `options` selects on `gpu`: the copy ceiling always comes first,
/// since every other record is divided by it.
pub fn select_cases(gpu: &Gpu, options: &KernelsOptions) -> Result<Vec<Case>> {
    let plan = Plan {
        types: product_types(),
        alt_matvec: match (
            split_supported(gpu),
            MatMul::new(gpu, GgmlType::F32)?.matvec_kernel().1,
        ) {
            (false, _) => None,
            (true, "matvec_split") => Some("matvec_rows"),
            (true, _) => Some("matvec_split"),
        },
        f16_types: if gpu.features().f16 {
            product_types()
        } else {
            Vec::new()
        },
        dot4_types: if gpu.features().dot4_packed {
            DOT4_TYPES.to_vec()
        } else {
            Vec::new()
        },
        n_prompt: options.n_prompt,
        quick: options.quick,
    };
    let mut all = all_cases(&plan).into_iter();
    let ceiling = all.next().context("no ceiling case")?;
    let chosen: Vec<Case> = all.filter(|c| matches(c, &options.filters)).collect();
    if chosen.is_empty() && !matches(&ceiling, &options.filters) {
        return Err(UsageError(format!(
            "no kernel case matches --filter {}",
            options.filters.join(", ")
        ))
        .into());
    }
    Ok(std::iter::once(ceiling).chain(chosen).collect())
}

/// Runs `cases` (the copy ceiling first) on `gpu`.
pub fn run(gpu: &Gpu, cases: &[Case], options: &KernelsOptions, meta: &RunMeta) -> Result<Sweep> {
    let timer = Timer::new(gpu)?;
    let mut rng = Rng::new(0x5e1d_0b3c);
    let mut pools: HashMap<GgmlType, Vec<u8>> = HashMap::new();
    let mut records = Vec::new();
    let mut failures = Vec::new();
    let mut ceiling_gbps = None;
    let start = Instant::now();
    for case in cases {
        let label = case.label();
        let outcome = (|| -> Result<(f64, f64, f64, u64)> {
            let pool = match case.kind {
                CaseKind::Matvec(m)
                | CaseKind::MatvecAlt(m)
                | CaseKind::MatvecDot4(m)
                | CaseKind::Matmul(m) => {
                    let pool = match pools.entry(m.ty) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(block_pool(m.ty, &mut rng)?),
                    };
                    Some(pool.as_slice())
                }
                _ => None,
            };
            let mut prepared = prepare(gpu, case, pool, &mut rng)?;
            let times = timer.time(&mut prepared.record, options.warmup, options.runs)?;
            let (Some(median), Some(min), Some(max)) =
                (times.median_ns(), times.min_ns(), times.max_ns())
            else {
                anyhow::bail!("no timed runs");
            };
            if median <= 0.0 {
                anyhow::bail!("a median time of {median} ns: the timer does not work here");
            }
            Ok((median, min, max, prepared.copies))
        })();
        match outcome {
            Ok((median, min, max, copies)) => {
                let gbps = case.bytes() as f64 / median;
                let ceiling = *ceiling_gbps.get_or_insert(gbps);
                let record = Record::new(
                    case,
                    meta,
                    timer.clock(),
                    (median, min, max),
                    options,
                    ceiling,
                    copies,
                );
                if options.progress {
                    eprintln!(
                        "[{:>5.0} s] {label}: {:.1} us, {:.3} GB/s, {:.3} GFLOP/s, \
                         {:.4} of the copy ceiling",
                        start.elapsed().as_secs_f64(),
                        record.median_us,
                        record.gbps,
                        record.gflops,
                        record.ceiling_ratio
                    );
                }
                records.push(record);
            }
            Err(e) if ceiling_gbps.is_none() => {
                return Err(e.context("measuring the copy ceiling"));
            }
            Err(e) => {
                if options.progress {
                    eprintln!("{label}: FAILED: {e:#}");
                }
                failures.push((label, format!("{e:#}")));
            }
        }
        // A lost device fails every later case the same way: stop here.
        if gpu.is_lost() {
            failures.push(("(remaining cases)".into(), "device lost".into()));
            break;
        }
    }
    Ok(Sweep { records, failures })
}
