use proptest::prelude::*;
use seldon_kernels::attention::{
    Attention, AttentionScratch, AttentionShape, KvSplit, attention_reference,
};
use seldon_kernels::kv_cache::{KvType, kv_from_f32};
use seldon_kernels::tolerance::{NMSE_ATTENTION, check_nmse};

use crate::common::{gpu, poisoned_output, read_output};

/// Cache positions past `pos0 + n_tokens` that the kernel must never read:
/// they hold NaNs (0xFF bytes are NaN in f32 and f16).
const STALE_POSITIONS: usize = 3;

struct Inputs {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

/// A small deterministic generator (splitmix64): values in [-range, range].
fn random(state: &mut u64, n: usize, range: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * range
        })
        .collect()
}

fn inputs(shape: &AttentionShape, kv: KvType, seed: u64) -> Inputs {
    let mut rng = seed;
    let d = shape.head_dim as usize;
    let n_q = shape.n_tokens as usize * shape.n_head as usize * d;
    let n_kv = shape.n_kv() as usize * shape.n_head_kv as usize * d;
    // Large enough q that some rows attend sharply, others broadly.
    let q = random(&mut rng, n_q, 2.5);
    let round = |v: Vec<f32>| v.into_iter().map(|x| kv.round(x)).collect();
    Inputs {
        q,
        k: round(random(&mut rng, n_kv, 1.0)),
        v: round(random(&mut rng, n_kv, 1.0)),
    }
}

fn cache_bytes(values: &[f32], shape: &AttentionShape, kv: KvType) -> Vec<u8> {
    let mut bytes = kv_from_f32(values, kv);
    let row = (shape.n_head_kv * shape.head_dim * kv.element_bytes()) as usize;
    bytes.resize(bytes.len() + STALE_POSITIONS * row, 0xFF);
    bytes
}

fn run(
    shape: &AttentionShape,
    kv: KvType,
    split: KvSplit,
    scratch_splits: u64,
    inputs: &Inputs,
) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Attention::new(gpu, shape.head_dim, kv).unwrap();
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let q = gpu.upload_f32("q", &inputs.q).unwrap();
    let k = gpu
        .upload_bytes("k_cache", &cache_bytes(&inputs.k, shape, kv))
        .unwrap();
    let v = gpu
        .upload_bytes("v_cache", &cache_bytes(&inputs.v, shape, kv))
        .unwrap();
    let out = poisoned_output(gpu, "out", inputs.q.len());
    let rows = shape.n_tokens * shape.n_head;
    let scratch = (scratch_splits > 0)
        .then(|| AttentionScratch::new(gpu, rows, shape.head_dim, scratch_splits).unwrap());
    let mut encoder = gpu.encoder("test.attention").unwrap();
    kernel
        .encode(
            gpu,
            &mut encoder,
            &q,
            &k,
            &v,
            &out,
            shape,
            scale,
            split,
            scratch.as_ref(),
        )
        .unwrap();
    gpu.submit_and_wait("test.attention", encoder).unwrap();
    read_output(gpu, "out", &out, inputs.q.len())
}

fn check(shape: &AttentionShape, kv: KvType, split: KvSplit, scratch_splits: u64, seed: u64) {
    let inputs = inputs(shape, kv, seed);
    let got = run(shape, kv, split, scratch_splits, &inputs);
    let scale = 1.0 / (shape.head_dim as f32).sqrt();
    let want = attention_reference(&inputs.q, &inputs.k, &inputs.v, shape, scale);
    if let Err(e) = check_nmse(&want, &got, NMSE_ATTENTION) {
        panic!("{shape:?} {kv:?} {split:?}: {e}");
    }
}

#[test]
fn attention_grid_direct_and_split() {
    let mut seed = 0;
    for head_dim in [32, 64, 128, 80] {
        for kv in [KvType::F32, KvType::F16] {
            for (n_head, n_head_kv) in [(9, 3), (4, 4), (8, 1)] {
                for n_tokens in [1, 7, 33] {
                    for pos0 in [0, 5, 100] {
                        let shape = AttentionShape {
                            n_tokens,
                            n_head,
                            n_head_kv,
                            head_dim,
                            pos0,
                        };
                        seed += 1;
                        // Splits of 37 keys: not a multiple of any tile size.
                        let split = if seed % 2 == 0 {
                            KvSplit::Off
                        } else {
                            KvSplit::Chunk(37)
                        };
                        check(&shape, kv, split, 4, seed);
                    }
                }
            }
        }
    }
}

#[test]
fn split_and_direct_agree_on_long_context_decode() {
    // One token at position 1500 with every head sharing one KV head: the
    // automatic policy splits it.
    let shape = AttentionShape {
        n_tokens: 1,
        n_head: 8,
        n_head_kv: 1,
        head_dim: 64,
        pos0: 1500,
    };
    let kernel = Attention::new(gpu(), 64, KvType::F16).unwrap();
    let chunk = kernel.auto_chunk(&shape).unwrap();
    assert!(chunk < shape.n_kv() && chunk.is_multiple_of(kernel.keys_per_tile()));
    for kv in [KvType::F16, KvType::F32] {
        check(&shape, kv, KvSplit::Auto, 64, 7);
        // A scratch too small for the automatic split gets fewer splits.
        check(&shape, kv, KvSplit::Auto, 2, 8);
        check(&shape, kv, KvSplit::Off, 0, 9);
        check(&shape, kv, KvSplit::Chunk(1), 1600, 10);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn attention_matches_reference_on_random_shapes(
        head_dim in prop_oneof![Just(16u64), Just(48), Just(96), Just(256), (1u64..17).prop_map(|m| 16 * m)],
        (n_head, n_head_kv) in (1u64..5, 1u64..6).prop_map(|(kv, g)| (kv * g, kv)),
        n_tokens in 1u64..20,
        pos0 in prop_oneof![Just(0u64), 0u64..300],
        f16 in any::<bool>(),
        chunk in prop_oneof![Just(0u64), 1u64..200],
        seed in any::<u64>(),
    ) {
        let shape = AttentionShape { n_tokens, n_head, n_head_kv, head_dim, pos0 };
        let kv = if f16 { KvType::F16 } else { KvType::F32 };
        let split = if chunk == 0 { KvSplit::Off } else { KvSplit::Chunk(chunk) };
        let splits = shape.n_kv().div_ceil(chunk.max(1));
        check(&shape, kv, split, splits, seed);
    }
}

#[test]
fn attention_rejects_bad_shapes() {
    let gpu = gpu();
    assert!(Attention::new(gpu, 72, KvType::F32).is_err());
    assert!(Attention::new(gpu, 272, KvType::F32).is_err());
    let kernel = Attention::new(gpu, 32, KvType::F32).unwrap();
    let shape = AttentionShape {
        n_tokens: 2,
        n_head: 6,
        n_head_kv: 4,
        head_dim: 32,
        pos0: 0,
    };
    let buf = gpu.upload_f32("x", &vec![0.0; 2 * 6 * 32]).unwrap();
    let mut encoder = gpu.encoder("test.attention").unwrap();
    let err = kernel
        .encode(
            gpu,
            &mut encoder,
            &buf,
            &buf,
            &buf,
            &buf,
            &shape,
            1.0,
            KvSplit::Off,
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("multiple of n_head_kv"), "{err}");
    // A split without scratch is refused, not silently run unsplit.
    let shape = AttentionShape {
        n_head_kv: 2,
        ..shape
    };
    let small = gpu.upload_f32("kv", &vec![0.0; 2 * 2 * 32]).unwrap();
    let out = gpu.upload_f32("out", &vec![0.0; 2 * 6 * 32]).unwrap();
    let err = kernel
        .encode(
            gpu,
            &mut encoder,
            &buf,
            &small,
            &small,
            &out,
            &shape,
            1.0,
            KvSplit::Chunk(1),
            None,
        )
        .unwrap_err();
    assert!(err.to_string().contains("scratch"), "{err}");
}
