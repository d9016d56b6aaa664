//! The GPU forward pass against the CPU reference forward pass (the oracle),
//! on the test adapter (lavapipe in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod model_util;

use std::sync::{Arc, OnceLock};

use model_util::{case, ids, references, smollm2};
use seldon_engine::generate::{GenerateParams, StopReason, generate};
use seldon_engine::model::{
    CpuModel, Forward, GpuModel, GpuSession, Logits, Model, ModelError, SessionOptions,
};
use seldon_engine::sampler::SamplerParams;
use seldon_kernels::kv_cache::KvType;
use seldon_kernels::tolerance::nmse;
use seldon_kernels::{Gpu, GpuOptions};

fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    Arc::clone(GPU.get_or_init(|| Arc::new(Gpu::new(GpuOptions::default()).unwrap())))
}

fn options(n_ctx: usize, kv: KvType, max_batch: usize) -> SessionOptions {
    SessionOptions {
        n_ctx,
        kv_type_k: kv,
        kv_type_v: kv,
        max_batch,
    }
}

fn tiny(arch: &str) -> (Vec<u32>, Arc<Model>) {
    let c = case(&format!("tiny/{arch}-F32"));
    let model = Model::open(&references().join(c["model"].as_str().unwrap())).unwrap();
    (ids(&c["tokens"]), Arc::new(model))
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    assert!(b.iter().all(|v| v.is_finite()), "non-finite GPU logit");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The GPU sums in f32 where the oracle sums in f64; on these models that
/// was measured at NMSE <= 1.5e-12 (max abs logit 3e-5). The bound leaves a
/// 1000x margin for other adapters' summation orders and fused multiply-adds,
/// and is still far below what one wrong op gives (a dropped bias, a swapped
/// RoPE pair or an off-by-one position: NMSE 1e-3 and up).
const NMSE_F32_CACHE: f64 = 1e-9;
/// An f16 cache rounds each key and value to 11 significant bits (2.4e-4
/// relative); measured NMSE 5e-8..5e-7 (max abs logit 1.4e-2 on SmolLM2).
/// Ten times the worst measurement, and well below the NMSE of a cache that
/// lost a position.
const NMSE_F16_CACHE: f64 = 5e-6;

#[test]
fn tiny_models_prefill_matches_the_cpu_reference() {
    for arch in ["llama", "qwen2", "qwen3", "bitnet"] {
        let (tokens, model) = tiny(arch);
        let mut cpu = CpuModel::new(Arc::clone(&model), 64).unwrap();
        let want = cpu.forward(&tokens, 0, Logits::All).unwrap();
        for (kv, limit) in [(KvType::F32, NMSE_F32_CACHE), (KvType::F16, NMSE_F16_CACHE)] {
            let mut g = GpuSession::load(gpu(), &model, options(64, kv, 64)).unwrap();
            let got = g.forward(&tokens, 0, Logits::All).unwrap();
            let e = nmse(&want, &got).unwrap();
            println!(
                "{arch} {kv:?}: nmse {e:.2e}, max abs {:.2e}",
                max_abs(&want, &got)
            );
            assert!(e <= limit, "{arch} {kv:?}: nmse {e}");
        }
    }
}

#[test]
fn tiny_decode_steps_and_micro_batches_match_the_cpu_reference() {
    // max_batch 5 splits the prompt into micro-batches (the tiled matmul for 5
    // columns is matvec; 36 tokens at once take the tiled matmul), then single
    // tokens decode against the cache.
    for arch in ["qwen3", "bitnet"] {
        let (tokens, model) = tiny(arch);
        let mut cpu = CpuModel::new(Arc::clone(&model), 64).unwrap();
        let mut g = GpuSession::load(gpu(), &model, options(64, KvType::F32, 5)).unwrap();
        let (prompt, rest) = tokens.split_at(tokens.len() - 6);
        let want = cpu.forward(prompt, 0, Logits::Last).unwrap();
        let got = g.forward(prompt, 0, Logits::Last).unwrap();
        assert!(
            nmse(&want, &got).unwrap() <= NMSE_F32_CACHE,
            "{arch} prefill"
        );
        for (i, &t) in rest.iter().enumerate() {
            let pos = prompt.len() + i;
            let want = cpu.forward(&[t], pos, Logits::Last).unwrap();
            let got = g.forward(&[t], pos, Logits::Last).unwrap();
            let e = nmse(&want, &got).unwrap();
            assert!(e <= NMSE_F32_CACHE, "{arch} step {i}: nmse {e}");
        }
        // All-position logits over several micro-batches, rewinding the cache.
        let want = cpu.forward(&tokens[4..], 4, Logits::All).unwrap();
        let got = g.forward(&tokens[4..], 4, Logits::All).unwrap();
        assert!(
            nmse(&want, &got).unwrap() <= NMSE_F32_CACHE,
            "{arch} rewind"
        );
    }
}

#[test]
fn long_context_decode_takes_the_split_attention_path() {
    // 600 cached positions: a one-token step splits the keys across
    // workgroups (attention's KvSplit::Auto) and combines the partial sums.
    let (tokens, model) = tiny("llama");
    let prompt: Vec<u32> = tokens.iter().cycle().take(600).copied().collect();
    let mut cpu = CpuModel::new(Arc::clone(&model), 640).unwrap();
    let mut g = GpuSession::load(gpu(), &model, options(640, KvType::F32, 256)).unwrap();
    cpu.forward(&prompt, 0, Logits::Last).unwrap();
    g.forward(&prompt, 0, Logits::Last).unwrap();
    for (i, &t) in tokens[..3].iter().enumerate() {
        let want = cpu.forward(&[t], 600 + i, Logits::Last).unwrap();
        let got = g.forward(&[t], 600 + i, Logits::Last).unwrap();
        let e = nmse(&want, &got).unwrap();
        assert!(e <= NMSE_F32_CACHE, "step {i}: nmse {e}");
    }
}

#[test]
fn sessions_share_one_model_across_threads() {
    // One upload, two sequences with their own caches (of different types),
    // interleaved on one thread and then run side by side on two.
    let (tokens, model) = tiny("qwen2");
    let shared = GpuModel::load(gpu(), &model).unwrap();
    let mut a = shared.session(options(64, KvType::F32, 8)).unwrap();
    let mut b = shared.session(options(64, KvType::F16, 64)).unwrap();
    let (prompt_a, prompt_b) = (&tokens[..10], &tokens[5..20]);
    let mut cpu_a = CpuModel::new(Arc::clone(&model), 64).unwrap();
    let mut cpu_b = CpuModel::new(Arc::clone(&model), 64).unwrap();
    let check = |want: &[f32], got: &[f32], limit: f64, what: &str| {
        let e = nmse(want, got).unwrap();
        assert!(e <= limit, "{what}: nmse {e}");
    };
    let got_a = a.forward(prompt_a, 0, Logits::Last).unwrap();
    let got_b = b.forward(prompt_b, 0, Logits::Last).unwrap();
    let want_a = cpu_a.forward(prompt_a, 0, Logits::Last).unwrap();
    let want_b = cpu_b.forward(prompt_b, 0, Logits::Last).unwrap();
    check(&want_a, &got_a, NMSE_F32_CACHE, "a prefill");
    check(&want_b, &got_b, NMSE_F16_CACHE, "b prefill");
    for (i, &t) in tokens[20..24].iter().enumerate() {
        let got_a = a.forward(&[t], prompt_a.len() + i, Logits::Last).unwrap();
        let got_b = b.forward(&[t], prompt_b.len() + i, Logits::Last).unwrap();
        let want_a = cpu_a
            .forward(&[t], prompt_a.len() + i, Logits::Last)
            .unwrap();
        let want_b = cpu_b
            .forward(&[t], prompt_b.len() + i, Logits::Last)
            .unwrap();
        check(&want_a, &got_a, NMSE_F32_CACHE, "a decode");
        check(&want_b, &got_b, NMSE_F16_CACHE, "b decode");
    }
    assert_eq!((a.cached_len(), b.cached_len()), (14, 19));
    assert!(Arc::ptr_eq(a.model(), b.model()));

    let run = |mut s: GpuSession, prompt: &[u32]| {
        let first = s.forward(prompt, 0, Logits::All).unwrap();
        let next = s
            .forward(&tokens[30..31], prompt.len(), Logits::Last)
            .unwrap();
        (first, next)
    };
    let (ra, rb) = std::thread::scope(|scope| {
        let ha = scope.spawn(|| run(a, prompt_a));
        let hb = scope.spawn(|| run(b, prompt_b));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    for (prompt, cache_limit, (first, next)) in [
        (prompt_a, NMSE_F32_CACHE, ra),
        (prompt_b, NMSE_F16_CACHE, rb),
    ] {
        let mut cpu = CpuModel::new(Arc::clone(&model), 64).unwrap();
        check(
            &cpu.forward(prompt, 0, Logits::All).unwrap(),
            &first,
            cache_limit,
            "thread all",
        );
        let want = cpu
            .forward(&tokens[30..31], prompt.len(), Logits::Last)
            .unwrap();
        check(&want, &next, cache_limit, "thread decode");
    }
}

#[test]
fn a_full_context_stops_generation_and_never_wraps() {
    // An 8-position session: 3 prompt tokens and 5 evaluated generated tokens
    // fill it; the 6th sampled token no longer fits and generation stops.
    let (tokens, model) = tiny("llama");
    let mut g = GpuSession::load(gpu(), &model, options(8, KvType::F16, 4)).unwrap();
    let params = GenerateParams {
        n_predict: None,
        batch_size: 2,
        sampler: SamplerParams {
            temp: 0.0,
            ..SamplerParams::default()
        },
    };
    let r = generate::<_, ModelError>(&mut g, &tokens[..3], &params, &|_| false, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(r.stop, StopReason::ContextFull);
    assert_eq!(r.tokens.len(), 6);
    assert_eq!(g.cached_len(), 8);
    // A forward past the end is refused, not written modulo the context.
    let past = g.forward(&tokens[..1], 8, Logits::Last);
    assert!(
        matches!(
            past,
            Err(ModelError::ContextFull {
                needed: 9,
                n_ctx: 8
            })
        ),
        "{past:?}"
    );
    let long = g.forward(&tokens[..9], 0, Logits::Last);
    assert!(
        matches!(long, Err(ModelError::ContextFull { .. })),
        "{long:?}"
    );
    // The cache still serves the positions it holds.
    g.forward(&tokens[..8], 0, Logits::Last).unwrap();
}

#[test]
fn smollm2_gpu_logits_match_the_cpu_reference() {
    let model = Arc::new(Model::open(&smollm2()).unwrap());
    let c = case("smollm2/Q4_1/capital");
    let tokens = ids(&c["tokens"]);
    let mut cpu = CpuModel::new(Arc::clone(&model), 32).unwrap();
    let want = cpu.forward(&tokens, 0, Logits::All).unwrap();
    let n_vocab = model.config().n_vocab;
    for (kv, limit) in [(KvType::F32, NMSE_F32_CACHE), (KvType::F16, NMSE_F16_CACHE)] {
        let mut g = GpuSession::load(gpu(), &model, options(32, kv, 32)).unwrap();
        let got = g.forward(&tokens, 0, Logits::All).unwrap();
        let e = nmse(&want, &got).unwrap();
        println!(
            "smollm2 {kv:?}: nmse {e:.2e}, max abs {:.2e}",
            max_abs(&want, &got)
        );
        assert!(e <= limit, "{kv:?}: nmse {e}");
        for (w, g) in want.chunks_exact(n_vocab).zip(got.chunks_exact(n_vocab)) {
            assert_eq!(model_util::argmax(w), model_util::argmax(g));
        }
    }
}

#[test]
fn seldon_run_on_the_gpu_says_paris() {
    let m = smollm2();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seldon"))
        .args([
            "run",
            "-m",
            m.to_str().unwrap(),
            "-p",
            "The capital of France is",
            "-n",
            "4",
        ])
        .args(["--temp", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with(" Paris"), "{stdout:?}");
    // The GPU path ran, not the CPU one.
    assert!(!stderr.contains("| cpu"), "{stderr}");
}
