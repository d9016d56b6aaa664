//! CPU-side dequantization (seldon-formats), the path the tile scheduler's
//! host fallbacks and the conformance checks take: one 2048x2048 matrix per
//! weight type, throughput in weight bytes read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seldon_formats::GgmlType;
use seldon_formats::quant::{dequantize, quantize_to_vec};

const N: usize = 2048 * 2048;

fn random_values(n: usize) -> Vec<f32> {
    // A fixed LCG: repeatable data without a rand dependency.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bench_dequantize(c: &mut Criterion) {
    let values = random_values(N);
    let mut group = c.benchmark_group("dequantize_2048x2048");
    group.sample_size(20);
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::TQ2_0,
    ] {
        let bytes = quantize_to_vec(ty, &values).unwrap();
        let mut out = vec![0.0f32; N];
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(ty.name(), |b| {
            b.iter(|| dequantize(ty, &bytes, &mut out).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, bench_dequantize);
criterion_main!(benches);
