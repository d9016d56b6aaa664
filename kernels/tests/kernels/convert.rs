use proptest::prelude::*;
use seldon_kernels::convert::{
    Convert, ConvertDirection, f16_to_f32_reference, f32_to_f16_reference, pack_f16_words,
    unpack_f16_words,
};
use seldon_kernels::timing::{GpuTimer, time_runs};

use crate::common::{GUARD, POISON, awkward_len, gpu, gpu_cases, poisoned_output, read_output};

/// Reads `buffer` as u32 words.
fn read_words(name: &str, buffer: &wgpu::Buffer) -> Vec<u32> {
    gpu()
        .read_f32(name, buffer)
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Converts `src` to F16 on the GPU; returns every word of the poisoned
/// destination (the `ceil(n / 2)` written ones, then [`GUARD`] more).
fn to_f16(src: &[f32]) -> Vec<u32> {
    let gpu = gpu();
    let kernel = Convert::new(gpu).unwrap();
    let input = gpu.upload_f32("src", src).unwrap();
    let out = poisoned_output(gpu, "dst", src.len().div_ceil(2));
    let mut encoder = gpu.encoder("test.convert").unwrap();
    let n = src.len() as u64;
    kernel
        .encode(
            gpu,
            &mut encoder,
            ConvertDirection::F32ToF16,
            &input,
            &out,
            n,
        )
        .unwrap();
    gpu.submit_and_wait("test.convert", encoder).unwrap();
    read_words("dst", &out)
}

/// Converts the f16 bit patterns `bits` to f32 on the GPU.
fn to_f32(bits: &[u16]) -> Vec<f32> {
    let gpu = gpu();
    let kernel = Convert::new(gpu).unwrap();
    let words = pack_f16_words(bits);
    let input = gpu
        .upload_bytes("src", bytemuck::cast_slice(&words))
        .unwrap();
    let out = poisoned_output(gpu, "dst", bits.len());
    let mut encoder = gpu.encoder("test.convert").unwrap();
    let n = bits.len() as u64;
    kernel
        .encode(
            gpu,
            &mut encoder,
            ConvertDirection::F16ToF32,
            &input,
            &out,
            n,
        )
        .unwrap();
    gpu.submit_and_wait("test.convert", encoder).unwrap();
    read_output(gpu, "dst", &out, bits.len())
}

/// f16 bit patterns mapped to integers in value order, so that adjacent
/// representable values differ by one.
fn f16_order(bits: u16) -> i32 {
    let magnitude = i32::from(bits & 0x7fff);
    if bits & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

fn is_f16_subnormal(bits: u16) -> bool {
    bits & 0x7c00 == 0 && bits & 0x03ff != 0
}

/// Values spanning f16's range: tiny (subnormal), ordinary and saturating.
fn mixed_values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        prop_oneof![
            -1e-6f32..1e-6,
            -2.0f32..2.0,
            -70000.0f32..70000.0,
            Just(0.0f32),
            Just(-0.0f32),
        ],
        n,
    )
}

/// Finite f16 bit patterns (no infinities or NaNs).
fn finite_f16(n: usize) -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(
        any::<u16>().prop_filter("finite", |b| b & 0x7c00 != 0x7c00),
        n,
    )
}

proptest! {
    #![proptest_config(gpu_cases())]

    #[test]
    fn f32_to_f16_matches_reference_within_one_ulp(
        src in awkward_len().prop_flat_map(mixed_values),
    ) {
        let n = src.len();
        let words = to_f16(&src);
        let got = unpack_f16_words(&words, n).unwrap();
        let want = f32_to_f16_reference(&src);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            // WGSL lets pack2x16float round an inexact value either way.
            prop_assert!(
                (f16_order(g) - f16_order(w)).abs() <= 1,
                "element {i}: {} gave {g:#06x}, want {w:#06x}", src[i]
            );
        }
        if n % 2 == 1 {
            prop_assert_eq!(words[n / 2] >> 16, POISON >> 16, "padding half overwritten");
        }
        for (i, &w) in words[n.div_ceil(2)..].iter().enumerate() {
            prop_assert_eq!(w, POISON, "wrote past the end at word {}", n.div_ceil(2) + i);
        }
        // The buffer holds the words and the guard, rounded up to 16 bytes.
        prop_assert!(words.len() >= n.div_ceil(2) + GUARD);
    }

    #[test]
    fn f16_to_f32_is_exact(bits in awkward_len().prop_flat_map(finite_f16)) {
        let got = to_f32(&bits);
        let want = f16_to_f32_reference(&bits);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let flushed = is_f16_subnormal(bits[i]) && g == 0.0;
            prop_assert!(
                g.to_bits() == w.to_bits() || flushed,
                "element {i}: {:#06x} gave {g:e}, want {w:e}", bits[i]
            );
        }
    }
}

#[test]
fn ordinary_values_are_exact_both_ways() {
    // Values exactly representable in f16 must survive the round trip unchanged.
    let src: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.125).collect();
    let words = to_f16(&src);
    let bits = unpack_f16_words(&words, src.len()).unwrap();
    assert_eq!(bits, f32_to_f16_reference(&src));
    assert_eq!(to_f32(&bits), src);
}

#[test]
fn convert_checks_buffer_sizes() {
    let gpu = gpu();
    let kernel = Convert::new(gpu).unwrap();
    let f32s = gpu.upload_f32("f32s", &[0.0; 8]).unwrap();
    let words = poisoned_output(gpu, "words", 2);
    let mut encoder = gpu.encoder("test.convert").unwrap();
    // 9 floats do not fit 8; 20 halves need 10 words, 8 are there (2 +
    // guard, rounded up to whole 16 bytes as every storage buffer is).
    let err = kernel
        .encode(
            gpu,
            &mut encoder,
            ConvertDirection::F32ToF16,
            &f32s,
            &words,
            9,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("the f32 side holds 32 bytes"),
        "{err}"
    );
    let wide = gpu.upload_f32("wide", &[0.0; 20]).unwrap();
    let err = kernel
        .encode(
            gpu,
            &mut encoder,
            ConvertDirection::F16ToF32,
            &words,
            &wide,
            20,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("the f16 side holds 32 bytes"),
        "{err}"
    );
}

#[test]
fn timestamps_time_every_run() {
    let gpu = gpu();
    let Ok(timer) = GpuTimer::new(gpu, 8) else {
        // Without TIMESTAMP_QUERY the timer must refuse, never fake times.
        assert!(!gpu.features().timestamps);
        return;
    };
    assert!(GpuTimer::new(gpu, 1).is_err());
    assert!(GpuTimer::new(gpu, GpuTimer::MAX_QUERIES + 1).is_err());
    let kernel = Convert::new(gpu).unwrap();
    let n = 1u64 << 20;
    let src = gpu.upload_f32("src", &vec![1.5; n as usize]).unwrap();
    let dst = poisoned_output(gpu, "dst", (n / 2) as usize);
    let mut calls = Vec::new();
    // 7 runs per batch (8 timestamps): 20 runs take batches of 7, 7 and 6.
    let times = time_runs(gpu, &timer, 2, 20, |encoder, i| {
        calls.push(i);
        kernel.encode(gpu, encoder, ConvertDirection::F32ToF16, &src, &dst, n)
    })
    .unwrap();
    assert_eq!(calls, (0..22).collect::<Vec<u32>>());
    assert_eq!(times.ns.len(), 20);
    assert!(
        times.ns.iter().all(|t| t.is_finite() && *t > 0.0),
        "{times:?}"
    );
    let median = times.median_ns().unwrap();
    assert!(median >= times.min_ns().unwrap() && median <= times.max_ns().unwrap());
    let words = read_words("dst", &dst);
    assert!(words[..(n / 2) as usize].iter().all(|&w| w == 0x3e00_3e00));
}
