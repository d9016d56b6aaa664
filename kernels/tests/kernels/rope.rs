use proptest::prelude::*;
use seldon_kernels::rope::{Rope, RopeConfig, RopeMode, RopeShape, rope_reference};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};

use crate::common::{gpu, gpu_cases, poisoned_output, read_output, values};

fn run(
    x: &[f32],
    positions: &[i32],
    freq_factors: Option<&[f32]>,
    shape: RopeShape,
    config: &RopeConfig,
    in_place: bool,
) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Rope::new(gpu).unwrap();
    let pos = gpu
        .upload_bytes("positions", bytemuck::cast_slice(positions))
        .unwrap();
    let ff = freq_factors.map(|f| gpu.upload_f32("freq_factors", f).unwrap());
    let mut encoder = gpu.encoder("test.rope").unwrap();
    let out = if in_place {
        let buf = gpu.upload_f32("x", x).unwrap();
        kernel
            .encode_in_place(gpu, &mut encoder, &buf, &pos, ff.as_ref(), shape, config)
            .unwrap();
        buf
    } else {
        let src = gpu.upload_f32("x", x).unwrap();
        let out = poisoned_output(gpu, "y", x.len());
        kernel
            .encode(
                gpu,
                &mut encoder,
                &src,
                &out,
                &pos,
                ff.as_ref(),
                shape,
                config,
            )
            .unwrap();
        out
    };
    gpu.submit_and_wait("test.rope", encoder).unwrap();
    if in_place {
        gpu.read_f32("x", &out).unwrap()[..x.len()].to_vec()
    } else {
        read_output(gpu, "y", &out, x.len())
    }
}

#[derive(Debug, Clone)]
struct Case {
    shape: RopeShape,
    config: RopeConfig,
    x: Vec<f32>,
    positions: Vec<i32>,
    freq_factors: Option<Vec<f32>>,
}

fn case() -> impl Strategy<Value = Case> {
    let head_dim = prop_oneof![Just(64u64), Just(128), Just(80), Just(32), 1u64..40];
    let mode = prop_oneof![Just(RopeMode::Normal), Just(RopeMode::Neox)];
    let base = prop_oneof![Just(10_000.0f32), Just(500_000.0), Just(1e6), 100.0f32..2e6];
    (
        1u64..12,
        1u64..10,
        head_dim,
        mode,
        base,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(n_tokens, n_head, head_dim, mode, base, ff, backward)| {
            let head_dim = head_dim.max(2);
            // Usually every dimension, sometimes a partial rotation.
            let n_dims = prop_oneof![Just(head_dim & !1), (1..=head_dim / 2).prop_map(|p| 2 * p)];
            let scale = prop_oneof![Just(1.0f32), Just(0.25), 0.1f32..1.0];
            let n = (n_tokens * n_head * head_dim) as usize;
            let pos = prop_oneof![
                4 => -20i32..300,
                2 => 0i32..10_000,
                1 => 0i32..400_000,
            ];
            (
                Just((n_tokens, n_head, head_dim, mode, base, ff, backward)),
                n_dims,
                scale,
                values(n, 4.0),
                proptest::collection::vec(pos, n_tokens as usize),
                proptest::collection::vec(1.0f32..40.0, (head_dim / 2) as usize),
            )
        })
        .prop_map(
            |(
                (n_tokens, n_head, head_dim, mode, base, ff, backward),
                n_dims,
                scale,
                x,
                positions,
                factors,
            )| {
                let config = RopeConfig {
                    n_dims,
                    mode,
                    freq_base: base,
                    freq_scale: scale,
                    attn_factor: 1.0,
                    backward,
                };
                Case {
                    shape: RopeShape {
                        n_tokens,
                        n_head,
                        head_dim,
                    },
                    config,
                    x,
                    positions,
                    freq_factors: ff.then(|| factors[..(n_dims / 2) as usize].to_vec()),
                }
            },
        )
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn rope_matches_reference(c in case(), in_place in any::<bool>()) {
        let ff = c.freq_factors.as_deref();
        let got = run(&c.x, &c.positions, ff, c.shape, &c.config, in_place);
        let want = rope_reference(&c.x, &c.positions, ff, c.shape, &c.config);
        let nmse = check_nmse(&want, &got, NMSE_ELEMENTWISE);
        prop_assert!(nmse.is_ok(), "{:?}: {:?}", c.config, nmse);
    }
}

#[test]
fn long_context_angles_stay_accurate() {
    // Pair 0 turns by the position itself: 131071 rad needs the range reduction.
    let shape = RopeShape {
        n_tokens: 4,
        n_head: 2,
        head_dim: 128,
    };
    let config = RopeConfig {
        attn_factor: 1.5,
        ..RopeConfig::new(128, RopeMode::Neox, 1e6)
    };
    let x: Vec<f32> = (0..1024)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let positions = [131_071, 65_536, 8191, 0];
    let got = run(&x, &positions, None, shape, &config, false);
    let want = rope_reference(&x, &positions, None, shape, &config);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 2e-5, "max abs error {worst}");
    check_nmse(&want, &got, NMSE_ELEMENTWISE).unwrap();
}

#[test]
fn rope_rejects_odd_or_oversized_n_dims() {
    let gpu = gpu();
    let kernel = Rope::new(gpu).unwrap();
    let x = gpu.upload_f32("x", &[0.0; 16]).unwrap();
    let pos = gpu.upload_bytes("positions", &[0; 4]).unwrap();
    let shape = RopeShape {
        n_tokens: 1,
        n_head: 2,
        head_dim: 8,
    };
    let mut encoder = gpu.encoder("test.rope").unwrap();
    for n_dims in [3, 10] {
        let config = RopeConfig::new(n_dims, RopeMode::Normal, 1e4);
        let err = kernel
            .encode_in_place(gpu, &mut encoder, &x, &pos, None, shape, &config)
            .unwrap_err();
        assert!(err.to_string().contains("n_dims"), "{err}");
    }
}
