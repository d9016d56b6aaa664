//! `Gpu`: the instance, adapter, device and queue seldon runs on, with the
//! features it may use, the limits it must respect and its pipeline cache.
//!
//! Failures never panic: see `sync` for how wgpu errors and a lost device
//! become [`crate::Error`]s.

mod adapter;
mod buffers;
mod dispatch;
mod pipelines;
mod sync;

use std::sync::Arc;
use std::time::Duration;

pub use adapter::{AdapterSummary, choose_adapter};
pub use dispatch::{Workgroups, fold_workgroups, workgroups_for};

use crate::error::{Error, Result};
use pipelines::PipelineCache;
use sync::DeviceState;

/// The environment variable that picks an adapter: an index from
/// [`Gpu::list_adapters`] or a case-insensitive name substring.
pub const DEVICE_ENV: &str = "SELDON_DEVICE";

/// 128 MiB: the storage binding limit of the mobile preset (and WebGPU's default).
pub const MOBILE_MAX_STORAGE_BINDING: u64 = 128 << 20;
/// 256 MiB: the buffer size limit of the mobile preset (and WebGPU's default).
pub const MOBILE_MAX_BUFFER: u64 = 256 << 20;

/// Which limits to request from the adapter.
// Built once per device, so the size of `Custom` does not matter; boxing it
// would only make every call site noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
pub enum LimitsRequest {
    /// Everything the adapter offers.
    #[default]
    Adapter,
    /// A phone's budget: the adapter's limits with at most 128 MiB per storage
    /// binding and 256 MiB per buffer, so the tile scheduler can be exercised
    /// on a desktop GPU.
    Mobile,
    /// These limits, clamped to what the adapter offers (each value taken as
    /// the worse of the two), so a request never fails for asking too much.
    Custom(wgpu::Limits),
}

/// How to create a [`Gpu`].
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// An adapter index or name substring; `None` picks the best adapter.
    /// [`GpuOptions::default`] reads it from `SELDON_DEVICE`.
    pub device: Option<String>,
    /// Which limits to request.
    pub limits: LimitsRequest,
    /// Do not use f16, subgroups or packed dot products even where available,
    /// to test the portable kernels on any device.
    pub force_portable: bool,
    /// The longest a single sync point (a readback, a wait) may block before
    /// it returns `Error::Timeout`.
    pub sync_timeout: Duration,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            device: std::env::var(DEVICE_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty()),
            limits: LimitsRequest::Adapter,
            force_portable: false,
            sync_timeout: Duration::from_secs(120),
        }
    }
}

/// Shader-relevant features the device was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuFeatures {
    /// `enable f16;` works (SHADER_F16).
    pub f16: bool,
    /// Subgroup builtins work (SUBGROUP).
    pub subgroups: bool,
    /// GPU timestamp queries work (TIMESTAMP_QUERY).
    pub timestamps: bool,
    /// `dot4I8Packed`/`dot4U8Packed` are available (WGSL language feature).
    pub dot4_packed: bool,
}

/// The GPU context. Cheap to share by reference across threads.
#[derive(Debug)]
pub struct Gpu {
    // Kept alive for the device's lifetime.
    _instance: wgpu::Instance,
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    limits: wgpu::Limits,
    features: GpuFeatures,
    state: Arc<DeviceState>,
    pipelines: PipelineCache,
    sync_timeout: Duration,
}

fn new_instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn enumerate(instance: &wgpu::Instance) -> Vec<(AdapterSummary, wgpu::Adapter)> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .enumerate()
        .map(|(i, a)| (AdapterSummary::new(i, &a.get_info()), a))
        .collect()
}

impl Gpu {
    /// Every adapter wgpu can see, in the order `SELDON_DEVICE=N` indexes them.
    pub fn list_adapters() -> Vec<AdapterSummary> {
        enumerate(&new_instance())
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }

    /// Chooses an adapter and creates the device, requesting the limits asked
    /// for and every useful feature the adapter has.
    pub fn new(options: GpuOptions) -> Result<Self> {
        let instance = new_instance();
        let mut adapters = enumerate(&instance);
        let summaries: Vec<AdapterSummary> = adapters.iter().map(|(s, _)| s.clone()).collect();
        let index = choose_adapter(&summaries, options.device.as_deref())?;
        let Some(pos) = adapters.iter().position(|(s, _)| s.index == index) else {
            return Err(Error::NoAdapter);
        };
        let (summary, adapter) = adapters.swap_remove(pos);

        let offered = adapter.limits();
        let limits = match options.limits {
            LimitsRequest::Adapter => offered.clone(),
            LimitsRequest::Mobile => wgpu::Limits {
                max_storage_buffer_binding_size: offered
                    .max_storage_buffer_binding_size
                    .min(MOBILE_MAX_STORAGE_BINDING),
                max_buffer_size: offered.max_buffer_size.min(MOBILE_MAX_BUFFER),
                ..offered.clone()
            },
            LimitsRequest::Custom(custom) => custom.or_worse_values_from(&offered),
        };

        let available = adapter.features();
        let shader_ok = !options.force_portable;
        let mut required = wgpu::Features::empty();
        let mut want = |f: wgpu::Features, allowed: bool| {
            let on = allowed && available.contains(f);
            if on {
                required |= f;
            }
            on
        };
        let f16 = want(wgpu::Features::SHADER_F16, shader_ok);
        let subgroups = want(wgpu::Features::SUBGROUP, shader_ok);
        let timestamps = want(wgpu::Features::TIMESTAMP_QUERY, true);
        let dot4_packed = shader_ok
            && instance
                .wgsl_language_features()
                .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
        let features = GpuFeatures {
            f16,
            subgroups,
            timestamps,
            dot4_packed,
        };

        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("seldon"),
            required_features: required,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: summary.name.clone(),
            message: e.to_string(),
        })?;

        let state = Arc::new(DeviceState::default());
        let lost = Arc::clone(&state);
        device.set_device_lost_callback(move |reason, message| {
            lost.mark_lost(format!("{reason:?}: {message}"));
        });
        let uncaptured = Arc::clone(&state);
        // The default handler panics; errors outside our scopes (another thread's
        // work, dropped resources) are recorded instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            uncaptured.record_uncaptured(e.to_string());
        }));
        tracing::info!(target: "seldon::gpu", "using adapter {summary}; features {features:?}");

        Ok(Self {
            _instance: instance,
            adapter,
            device,
            queue,
            summary,
            limits,
            features,
            state,
            pipelines: PipelineCache::default(),
            sync_timeout: options.sync_timeout,
        })
    }

    /// The chosen adapter, as listed by [`Gpu::list_adapters`].
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// wgpu's full information about the adapter (subgroup sizes, PCI id, ...).
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.adapter.get_info()
    }

    /// The shader features seldon may use on this device.
    pub fn features(&self) -> GpuFeatures {
        self.features
    }

    /// The limits the device was created with; kernels and the tile scheduler
    /// plan against these, not the adapter's.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The wgpu device (for bind groups and passes the helpers do not cover).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Workgroups for `items` work items at `per_group` per workgroup, folded
    /// into 2-D past this device's per-dimension limit.
    pub fn workgroups(&self, op: &str, items: u64, per_group: u32) -> Result<Workgroups> {
        workgroups_for(
            op,
            items,
            per_group,
            self.limits.max_compute_workgroups_per_dimension,
        )
    }
}
