use proptest::prelude::*;
use seldon_kernels::kv_cache::{
    KvLayout, KvSource, KvType, KvWrite, kv_from_f32, kv_to_f32, kv_write_reference,
};

use crate::common::{POISON, gpu, gpu_cases, values};

/// Writes into a cache pre-filled with the poison pattern and returns its bytes.
fn run(
    layout: KvLayout,
    src: &[f32],
    source: KvSource,
    n_tokens: usize,
    pos0: usize,
) -> (Vec<u8>, Vec<u8>) {
    let gpu = gpu();
    let kernel = KvWrite::new(gpu).unwrap();
    let bytes = layout.bytes().unwrap() as usize;
    let initial: Vec<u8> = POISON
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(bytes)
        .collect();
    let cache = gpu.upload_bytes("cache", &initial).unwrap();
    let src_buf = gpu.upload_f32("src", src).unwrap();
    let mut encoder = gpu.encoder("test.kv_write").unwrap();
    kernel
        .encode(
            gpu,
            &mut encoder,
            &src_buf,
            source,
            &cache,
            layout,
            n_tokens as u64,
            pos0 as u64,
        )
        .unwrap();
    gpu.submit_and_wait("test.kv_write", encoder).unwrap();
    let got = gpu.read_bytes("cache", &cache).unwrap()[..bytes].to_vec();
    let mut want = initial;
    kv_write_reference(&mut want, &layout, src, source, n_tokens, pos0);
    (want, got)
}

fn case() -> impl Strategy<Value = (KvLayout, usize, usize, usize, usize)> {
    let ty = prop_oneof![Just(KvType::F32), Just(KvType::F16)];
    let head_dim = prop_oneof![Just(32u64), Just(64), Just(80), Just(128), 1u64..20];
    (ty, 1u64..5, head_dim, 1usize..40, 0usize..3, 0usize..9).prop_map(
        |(ty, n_head_kv, head_dim, n_tokens, extra, pos0)| {
            // Even rows: f16 pairs never straddle tokens.
            let head_dim = head_dim * if n_head_kv % 2 == 1 { 2 } else { 1 };
            let layout = KvLayout {
                n_ctx: (pos0 + n_tokens + extra) as u64,
                n_head_kv,
                head_dim,
                ty,
            };
            (
                layout,
                n_tokens,
                pos0,
                extra,
                (n_head_kv * head_dim) as usize,
            )
        },
    )
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn kv_write_matches_reference(
        ((layout, n_tokens, pos0, pad, row_len), src) in case().prop_flat_map(|c| {
            let n = (c.1) * (c.4 + c.3) + 3;
            (Just(c), values(n, 70_000.0))
        }),
    ) {
        // A strided view that skips `pad` elements between tokens and 3 at the start.
        let source = KvSource { offset: 3, stride: (row_len + pad) as u64 };
        let (want, got) = run(layout, &src, source, n_tokens, pos0);
        // Rows outside pos0..pos0+n_tokens keep their poison; f32 is a bit copy and
        // f16 must round to nearest even exactly as ggml does (values beyond the f16
        // range become infinities in both).
        prop_assert!(want == got, "{:?} differs", layout);
    }
}

#[test]
fn f16_cache_rounds_like_ggml() {
    // Halfway cases, subnormals and overflow: ties go to even.
    let tricky = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        -(2f32.powi(-24)),
        3.0 * 2f32.powi(-25),
        65504.0,
        65520.0,
        -1e-9,
        0.1,
    ];
    let layout = KvLayout {
        n_ctx: 1,
        n_head_kv: 1,
        head_dim: tricky.len() as u64,
        ty: KvType::F16,
    };
    let (want, got) = run(layout, &tricky, KvSource::contiguous(&layout), 1, 0);
    assert_eq!(kv_to_f32(&got, KvType::F16), kv_to_f32(&want, KvType::F16));
    assert_eq!(want, kv_from_f32(&tricky, KvType::F16));
}

#[test]
fn kv_write_rejects_positions_past_the_context() {
    let gpu = gpu();
    let kernel = KvWrite::new(gpu).unwrap();
    let layout = KvLayout {
        n_ctx: 4,
        n_head_kv: 1,
        head_dim: 2,
        ty: KvType::F32,
    };
    let cache = gpu.upload_bytes("cache", &[0; 32]).unwrap();
    let src = gpu.upload_f32("src", &[0.0; 4]).unwrap();
    let mut encoder = gpu.encoder("test.kv_write").unwrap();
    let source = KvSource::contiguous(&layout);
    let err = kernel
        .encode(gpu, &mut encoder, &src, source, &cache, layout, 2, 3)
        .unwrap_err();
    assert!(err.to_string().contains("exceed n_ctx"), "{err}");
    let odd = KvLayout {
        head_dim: 3,
        ..layout
    };
    assert!(
        kernel
            .encode(gpu, &mut encoder, &src, source, &cache, odd, 1, 0)
            .is_err()
    );
}
