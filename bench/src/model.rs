//! `seldon-bench model`: end-to-end prompt processing (pp) and generation
//! (tg) tokens/s of a GGUF model on the GPU path, measured as llama-bench
//! does: pp<N> is one forward call of N prompt tokens from an empty cache,
//! tg<M> is M one-token forward calls from an empty cache, each after a
//! warm-up run; the median of the timed runs is reported. The token ids are
//! deterministic (`(1 + 7919 i) mod n_vocab`), the same as
//! bench/scripts/llama_cpp_tps.py feeds llama.cpp.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use seldon_engine::model::{Forward, GpuModel, Logits, Model, SessionOptions};
use seldon_kernels::Gpu;
use seldon_kernels::kv_cache::KvType;

use crate::meta::RunMeta;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The GGUF file.
    pub model: PathBuf,
    /// Prompt tokens of the pp test.
    pub n_prompt: usize,
    /// Generated tokens of the tg test.
    pub n_gen: usize,
    /// Timed runs per test.
    pub reps: usize,
}

/// One test's timings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    /// llama-bench's name: `pp128`, `tg64`.
    pub test: String,
    /// Tokens per run.
    pub n_tokens: usize,
    /// Seconds of each timed run.
    pub samples_s: Vec<f64>,
    /// Tokens/s of each timed run.
    pub samples_ts: Vec<f64>,
    /// The median tokens/s.
    pub median_ts: f64,
}

/// The deterministic token ids both engines are fed.
pub fn bench_tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((1 + 7919 * i as u64) % n_vocab.max(1) as u64) as u32)
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn test(name: String, n: usize, secs: Vec<f64>) -> TestResult {
    let tps: Vec<f64> = secs.iter().map(|s| n as f64 / s).collect();
    TestResult {
        test: name,
        n_tokens: n,
        median_ts: median(&tps),
        samples_s: secs,
        samples_ts: tps,
    }
}

/// Runs pp and tg on `gpu` and returns the JSON report.
pub fn run(gpu: Arc<Gpu>, options: &ModelOptions, meta: &RunMeta) -> Result<serde_json::Value> {
    let path: &Path = &options.model;
    let model = Model::open(path).with_context(|| format!("loading {}", path.display()))?;
    let n_vocab = model.config().n_vocab;
    let load = Instant::now();
    let shared = GpuModel::load(gpu, &model)?;
    let load_s = load.elapsed().as_secs_f64();
    let n_ctx = options.n_prompt.max(options.n_gen) + 16;
    let mut session = shared.session(SessionOptions {
        n_ctx,
        kv_type_k: KvType::F16,
        kv_type_v: KvType::F16,
        max_batch: options.n_prompt.max(1),
    })?;

    let prompt = bench_tokens(options.n_prompt, n_vocab);
    let mut pp = || -> Result<f64> {
        let start = Instant::now();
        session.forward(&prompt, 0, Logits::Last)?;
        Ok(start.elapsed().as_secs_f64())
    };
    pp()?;
    let pp_secs = (0..options.reps)
        .map(|_| pp())
        .collect::<Result<Vec<_>>>()?;

    let gen_tokens = bench_tokens(options.n_gen, n_vocab);
    let mut steps = Vec::new();
    let mut tg = |steps: &mut Vec<f64>| -> Result<f64> {
        let start = Instant::now();
        for (i, &t) in gen_tokens.iter().enumerate() {
            let s = Instant::now();
            session.forward(&[t], i, Logits::Last)?;
            steps.push(s.elapsed().as_secs_f64());
        }
        Ok(start.elapsed().as_secs_f64())
    };
    tg(&mut Vec::new())?;
    let tg_secs = (0..options.reps)
        .map(|_| tg(&mut steps))
        .collect::<Result<Vec<_>>>()?;

    let tests = [
        test(format!("pp{}", options.n_prompt), options.n_prompt, pp_secs),
        test(format!("tg{}", options.n_gen), options.n_gen, tg_secs),
    ];
    for t in &tests {
        eprintln!(
            "{}: {:.2} t/s (samples {:?})",
            t.test, t.median_ts, t.samples_ts
        );
    }
    Ok(serde_json::json!({
        "engine": "seldon",
        "model": path.file_name().map(|f| f.to_string_lossy().into_owned()),
        "adapter": meta.adapter,
        "backend": meta.backend,
        "date": meta.date,
        "commit": meta.commit,
        "git_dirty": meta.git_dirty,
        "kv_type": "f16",
        "reps": options.reps,
        "load_s": load_s,
        "decode_step_median_ms": median(&steps) * 1e3,
        "results": tests,
    }))
}
