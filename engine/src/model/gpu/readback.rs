//! Logits readback inside the step's own submit: the copy to a mappable
//! buffer is recorded at the end of the step's encoder, so a step costs one
//! submit, not a second one for the copy (as `Gpu::read_bytes` would).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use seldon_kernels::Gpu;

use super::plan::usage;
use crate::model::ModelError;

/// How long a step may take before it is reported as hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// An f32 output buffer and its host-mappable twin.
#[derive(Debug)]
pub(super) struct Readback {
    pub buffer: wgpu::Buffer,
    staging: wgpu::Buffer,
    name: String,
}

type Slot = Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>;

impl Readback {
    pub(super) fn new(gpu: &Gpu, name: &str, floats: u64) -> Result<Self, ModelError> {
        let bytes = floats
            .checked_mul(4)
            .ok_or_else(|| ModelError::Invalid(format!("{name}: size overflows")))?;
        let buffer = gpu.storage_buffer(name, bytes, usage())?;
        let staging = gpu.scoped(name, || {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: buffer.size(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(Self {
            buffer,
            staging,
            name: name.to_string(),
        })
    }

    /// Appends the copy of the first `floats` values to `encoder`, submits it,
    /// and returns the values once the GPU is done.
    pub(super) fn submit_and_read(
        &self,
        gpu: &Gpu,
        mut encoder: wgpu::CommandEncoder,
        floats: u64,
    ) -> Result<Vec<f32>, ModelError> {
        let bytes = floats.saturating_mul(4);
        if bytes > self.buffer.size() {
            return Err(ModelError::Invalid(format!(
                "{}: reading {bytes} bytes of a {}-byte buffer",
                self.name,
                self.buffer.size()
            )));
        }
        encoder.copy_buffer_to_buffer(&self.buffer, 0, &self.staging, 0, bytes);
        let index = gpu.submit(&self.name, encoder)?;
        let slot: Slot = Arc::new(Mutex::new(None));
        let callback_slot = Arc::clone(&slot);
        gpu.scoped(&self.name, || {
            self.staging
                .slice(..bytes)
                .map_async(wgpu::MapMode::Read, move |r| {
                    *callback_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                });
        })?;
        gpu.wait(&self.name, Some(index))?;
        let start = Instant::now();
        let outcome = loop {
            if let Some(r) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                break r;
            }
            if start.elapsed() > STEP_TIMEOUT {
                return Err(seldon_kernels::Error::Timeout {
                    op: self.name.clone(),
                    seconds: STEP_TIMEOUT.as_secs(),
                }
                .into());
            }
            // The map callback runs from a poll once the copy has finished.
            gpu.wait(&self.name, None)?;
            std::thread::sleep(Duration::from_micros(200));
        };
        outcome.map_err(|e| {
            ModelError::from(seldon_kernels::Error::Map {
                buffer: self.name.clone(),
                message: e.to_string(),
            })
        })?;
        let values = {
            let view = self
                .staging
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| seldon_kernels::Error::Map {
                    buffer: self.name.clone(),
                    message: e.to_string(),
                })?;
            view.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        self.staging.unmap();
        Ok(values)
    }
}
