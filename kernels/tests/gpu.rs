//! The GPU context on the test adapter: adapter choice, limits presets, feature
//! detection, the pipeline cache, size checks and dispatch folding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{gpu, new_gpu, poisoned_output, read_output};
use seldon_kernels::elementwise::{Elementwise, scale_reference};
use seldon_kernels::gpu::{MOBILE_MAX_BUFFER, MOBILE_MAX_STORAGE_BINDING};
use seldon_kernels::rms_norm::{RmsNorm, RmsNormShape, rms_norm_reference};
use seldon_kernels::tolerance::{NMSE_ELEMENTWISE, check_nmse};
use seldon_kernels::{Error, Gpu, GpuOptions, LimitsRequest};

fn options(limits: LimitsRequest) -> GpuOptions {
    GpuOptions {
        limits,
        ..GpuOptions::default()
    }
}

#[test]
fn adapter_is_listed_and_vulkan_is_preferred_over_gl() {
    let adapters = Gpu::list_adapters();
    let chosen = gpu().adapter();
    assert!(adapters.contains(chosen), "{chosen} not in {adapters:?}");
    if std::env::var("SELDON_DEVICE").is_err()
        && adapters.iter().any(|a| a.backend != wgpu::Backend::Gl)
    {
        assert_ne!(
            chosen.backend,
            wgpu::Backend::Gl,
            "chose GL among {adapters:?}"
        );
    }
    assert_eq!(gpu().adapter_info().name, chosen.name);
}

#[test]
fn device_selector_by_index_and_name() {
    let chosen = gpu().adapter().clone();
    let by_index = new_gpu(GpuOptions {
        device: Some(chosen.index.to_string()),
        ..GpuOptions::default()
    });
    assert_eq!(by_index.adapter(), &chosen);
    let by_name = new_gpu(GpuOptions {
        device: Some(chosen.name.to_uppercase()),
        ..GpuOptions::default()
    });
    assert_eq!(by_name.adapter().name, chosen.name);
    let missing = Gpu::new(GpuOptions {
        device: Some("no such adapter anywhere".into()),
        ..GpuOptions::default()
    });
    assert!(
        matches!(missing, Err(Error::AdapterNotFound { .. })),
        "{missing:?}"
    );
}

#[test]
fn features_match_the_device() {
    let gpu = gpu();
    let device = gpu.device().features();
    let f = gpu.features();
    eprintln!("adapter {}: {f:?}", gpu.adapter());
    assert_eq!(f.f16, device.contains(wgpu::Features::SHADER_F16));
    assert_eq!(f.subgroups, device.contains(wgpu::Features::SUBGROUP));
    assert_eq!(
        f.timestamps,
        device.contains(wgpu::Features::TIMESTAMP_QUERY)
    );

    let portable = new_gpu(GpuOptions {
        force_portable: true,
        ..GpuOptions::default()
    });
    let p = portable.features();
    assert!(!p.f16 && !p.subgroups && !p.dot4_packed, "{p:?}");
    assert!(
        !portable
            .device()
            .features()
            .contains(wgpu::Features::SHADER_F16)
    );
    assert_eq!(p.timestamps, f.timestamps);
}

#[test]
fn limits_presets() {
    let adapter = gpu();
    assert_eq!(adapter.limits(), &adapter.device().limits());

    let mobile = new_gpu(options(LimitsRequest::Mobile));
    let l = mobile.limits();
    assert_eq!(l, &mobile.device().limits());
    assert!(l.max_storage_buffer_binding_size <= MOBILE_MAX_STORAGE_BINDING);
    assert!(l.max_buffer_size <= MOBILE_MAX_BUFFER);

    let custom = new_gpu(options(LimitsRequest::Custom(wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 20,
        max_buffer_size: u64::MAX,
        ..wgpu::Limits::default()
    })));
    assert_eq!(custom.limits().max_storage_buffer_binding_size, 1 << 20);
    // Clamped to the adapter instead of failing the request.
    assert_eq!(
        custom.limits().max_buffer_size,
        adapter.limits().max_buffer_size
    );
}

#[test]
fn oversize_binding_names_the_tensor() {
    let gpu = new_gpu(options(LimitsRequest::Mobile));
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let usage = wgpu::BufferUsages::COPY_DST;
    let bytes = limit + 4;
    match gpu.storage_buffer("blk.0.ffn_down.weight", bytes, usage) {
        Err(Error::BindingTooLarge {
            tensor,
            bytes: b,
            limit: l,
        }) => {
            assert_eq!(
                (tensor.as_str(), b, l),
                ("blk.0.ffn_down.weight", bytes, limit)
            );
        }
        other => panic!("expected BindingTooLarge, got {other:?}"),
    }
    let huge = gpu.limits().max_buffer_size + 1;
    assert!(matches!(
        gpu.storage_buffer("token_embd.weight", huge, usage),
        Err(Error::BufferTooLarge { tensor, .. }) if tensor == "token_embd.weight"
    ));
    assert!(matches!(
        gpu.storage_buffer("x", u64::MAX, usage),
        Err(Error::BufferTooLarge { .. })
    ));
    // Exactly at the limit is fine (no allocation of that size is needed to check).
    assert!(gpu.check_binding("ok", limit).is_ok());
}

#[test]
fn pipeline_cache_compiles_once() {
    let gpu = new_gpu(GpuOptions::default());
    let a = gpu.pipeline("elementwise", "add", &[]).unwrap();
    let after_first = gpu.pipelines_compiled();
    let b = gpu.pipeline("elementwise", "add", &[]).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(gpu.pipelines_compiled(), after_first);
    gpu.pipeline("elementwise", "mul", &[]).unwrap();
    assert_eq!(gpu.pipelines_compiled(), after_first + 1);
    let _ = Elementwise::new(&gpu).unwrap();
    assert_eq!(gpu.pipelines_compiled(), after_first + 2);
}

#[test]
fn wgpu_errors_become_typed_errors() {
    let gpu = gpu();
    assert!(matches!(
        gpu.pipeline("no_such_shader", "main", &[]),
        Err(Error::Shader { .. })
    ));
    assert!(matches!(
        gpu.pipeline("elementwise", "no_such_entry", &[]),
        Err(Error::Shader { .. })
    ));
    // A bind group missing a binding is a wgpu validation error, not a panic.
    let pipeline = gpu.pipeline("copy", "copy_vec4", &[]).unwrap();
    let buffer = gpu.upload_f32("x", &[1.0; 4]).unwrap();
    let err = gpu
        .bind_group("bad", &pipeline, &[(0, &buffer)])
        .unwrap_err();
    assert!(
        matches!(err, Error::Validation { ref op, .. } if op == "bad"),
        "{err}"
    );
    // Writes past the end are caught before wgpu sees them.
    assert!(matches!(
        gpu.write_bytes("x", &buffer, 8, &[0u8; 12]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(!gpu.is_lost());
}

#[test]
fn dispatches_past_the_workgroup_limit_fold_into_2d() {
    // A device that allows only 4 workgroups per dimension makes folding cheap to test.
    let small = new_gpu(options(LimitsRequest::Custom(wgpu::Limits {
        max_compute_workgroups_per_dimension: 4,
        ..gpu().limits().clone()
    })));
    assert_eq!(small.limits().max_compute_workgroups_per_dimension, 4);

    let kernel = Elementwise::new(&small).unwrap();
    for n in [1usize, 1024, 1025, 3 * 1024 + 5, 16 * 256] {
        let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
        let input = small.upload_f32("a", &a).unwrap();
        let out = poisoned_output(&small, "y", n);
        let mut encoder = small.encoder("fold").unwrap();
        kernel
            .encode_scale(&small, &mut encoder, &input, &out, n as u64, 3.0)
            .unwrap();
        small.submit_and_wait("fold", encoder).unwrap();
        let got = read_output(&small, "y", &out, n);
        check_nmse(&scale_reference(&a, 3.0), &got, NMSE_ELEMENTWISE).unwrap();
    }
    // 17 workgroups cannot fold into 4 x 4.
    let a = small.upload_f32("a", &vec![0.0; 17 * 256]).unwrap();
    let mut encoder = small.encoder("fold").unwrap();
    let err = kernel
        .encode_scale(&small, &mut encoder, &a, &a, 17 * 256, 1.0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DispatchTooLarge {
                workgroups: 17,
                limit: 16,
                ..
            }
        ),
        "{err}"
    );

    // One workgroup per row: 11 rows become a 4 x 3 grid with one idle workgroup.
    let norm = RmsNorm::new(&small).unwrap();
    let (rows, n) = (11usize, 33usize);
    let x: Vec<f32> = (0..rows * n)
        .map(|i| ((i * 7919) % 97) as f32 - 48.0)
        .collect();
    let w: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 / 33.0).collect();
    let (xb, wb) = (
        small.upload_f32("x", &x).unwrap(),
        small.upload_f32("w", &w).unwrap(),
    );
    let out = poisoned_output(&small, "y", rows * n);
    let mut encoder = small.encoder("fold").unwrap();
    let shape = RmsNormShape::rows(rows as u64, n as u64);
    norm.encode(&small, &mut encoder, &xb, &wb, &out, shape, 1e-5)
        .unwrap();
    small.submit_and_wait("fold", encoder).unwrap();
    let got = read_output(&small, "y", &out, rows * n);
    check_nmse(&rms_norm_reference(&x, &w, 1e-5), &got, NMSE_ELEMENTWISE).unwrap();
}
