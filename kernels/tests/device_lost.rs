//! A device destroyed mid-work: every later call returns `Error::DeviceLost`
//! within a bounded time; nothing panics or hangs. Each test owns its device.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::new_gpu;
use seldon_kernels::copy::CopyVec4;
use seldon_kernels::{Error, Gpu, GpuOptions};

/// Generous for lavapipe on 2 cores, yet far below "hung".
const BOUND: Duration = Duration::from_secs(30);

/// Records `passes` ping-pong copies of `floats` values: enough work to still
/// be running when the device is destroyed.
fn heavy_work(gpu: &Gpu, floats: usize, passes: usize) -> wgpu::CommandEncoder {
    let copy = CopyVec4::new(gpu).unwrap();
    let a = gpu.upload_f32("a", &vec![1.5; floats]).unwrap();
    let usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let b = gpu.storage_buffer("b", (floats * 4) as u64, usage).unwrap();
    let mut encoder = gpu.encoder("heavy").unwrap();
    for i in 0..passes {
        let (src, dst) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        copy.encode(gpu, &mut encoder, src, dst, (floats / 4) as u64)
            .unwrap();
    }
    encoder
}

/// Asserts that `f` returns `Err(DeviceLost)` quickly.
fn assert_lost<T: std::fmt::Debug>(what: &str, f: impl FnOnce() -> Result<T, Error>) {
    let start = Instant::now();
    let r = f();
    assert!(
        matches!(r, Err(Error::DeviceLost)),
        "{what}: expected DeviceLost, got {r:?}"
    );
    assert!(start.elapsed() < BOUND, "{what} took {:?}", start.elapsed());
}

fn assert_every_call_is_lost(gpu: &Gpu) {
    let usage = wgpu::BufferUsages::COPY_SRC;
    assert!(gpu.is_lost());
    assert_lost("storage_buffer", || gpu.storage_buffer("x", 64, usage));
    assert_lost("upload_f32", || gpu.upload_f32("x", &[1.0; 16]));
    assert_lost("uniform", || gpu.uniform("p", &[0u32; 4]));
    assert_lost("pipeline", || gpu.pipeline("swiglu", "swiglu", &[]));
    assert_lost("kernel new", || seldon_kernels::swiglu::Swiglu::new(gpu));
    assert_lost("encoder", || gpu.encoder("e"));
    assert_lost("wait", || gpu.wait("wait", None));
}

#[test]
fn destroy_during_gpu_work_gives_device_lost() {
    let gpu = new_gpu(GpuOptions::default());
    let floats = 4 << 20; // 16 MiB per buffer
    let out = gpu.upload_f32("out", &vec![0.0; 1024]).unwrap();
    let index = gpu.submit("heavy", heavy_work(&gpu, floats, 24)).unwrap();
    gpu.device().destroy();

    // The sync point that was in progress reports the loss instead of data.
    let start = Instant::now();
    let r = gpu.read_f32("out", &out);
    assert!(
        matches!(r, Err(Error::DeviceLost)),
        "read after destroy: {r:?}"
    );
    assert!(
        start.elapsed() < BOUND,
        "readback took {:?}",
        start.elapsed()
    );
    assert_lost("wait on the old submission", || {
        gpu.wait("heavy", Some(index.clone()))
    });
    assert_every_call_is_lost(&gpu);
    assert!(gpu.lost_reason().is_some());
}

#[test]
fn destroy_from_another_thread_during_a_readback() {
    let gpu = new_gpu(GpuOptions::default());
    let floats = 4 << 20;
    let encoder = heavy_work(&gpu, floats, 40);
    let out = gpu.upload_f32("out", &vec![0.0; 1024]).unwrap();
    std::thread::scope(|s| {
        gpu.submit("heavy", encoder).unwrap();
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            gpu.device().destroy();
        });
        // The readback queues behind the heavy work, so the destroy lands mid-wait.
        let start = Instant::now();
        let r = gpu.read_f32("out", &out);
        assert!(matches!(r, Err(Error::DeviceLost)), "readback: {r:?}");
        assert!(
            start.elapsed() < BOUND,
            "readback took {:?}",
            start.elapsed()
        );
    });
    assert_every_call_is_lost(&gpu);
}

#[test]
fn destroy_while_idle_is_noticed_at_the_next_call() {
    let gpu = new_gpu(GpuOptions::default());
    let x = gpu.upload_f32("x", &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(gpu.read_f32("x", &x).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    gpu.device().destroy();
    assert_lost("first call after destroy", || {
        gpu.storage_buffer("y", 16, wgpu::BufferUsages::COPY_DST)
    });
    assert_lost("readback", || gpu.read_f32("x", &x));
    assert_every_call_is_lost(&gpu);
}
