//! Buffer creation with u64 size checks against the device limits, uploads and
//! readbacks that end in an error instead of a hang.

use std::sync::{Arc, Mutex, PoisonError};

use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};

/// wgpu's copy and storage granularity.
const ALIGN: u64 = wgpu::COPY_BUFFER_ALIGNMENT;

/// `bytes` rounded up to the 4-byte granularity (at least 4, since empty
/// bindings are invalid); `None` on overflow.
fn padded(bytes: u64) -> Option<u64> {
    bytes.max(1).checked_next_multiple_of(ALIGN)
}

/// Storage buffers are allocated in whole 16-byte units, so that any buffer
/// can also be bound as `array<vec4<...>>` (matvec reads weights and
/// activations 16 bytes at a time) with every byte inside a whole vec4.
pub const STORAGE_ALIGN: u64 = 16;

fn storage_size(bytes: u64) -> Option<u64> {
    bytes.max(1).checked_next_multiple_of(STORAGE_ALIGN)
}

impl Gpu {
    /// Checks that a tensor of `bytes` fits one buffer and one storage binding.
    pub fn check_binding(&self, tensor: &str, bytes: u64) -> Result<()> {
        let limits = &self.limits;
        if bytes > limits.max_buffer_size {
            return Err(Error::BufferTooLarge {
                tensor: tensor.to_owned(),
                bytes,
                limit: limits.max_buffer_size,
            });
        }
        if bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::BindingTooLarge {
                tensor: tensor.to_owned(),
                bytes,
                limit: limits.max_storage_buffer_binding_size,
            });
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes` (rounded up to 16) for tensor `name`,
    /// with `usage` added to STORAGE. Fails with `BindingTooLarge` or
    /// `BufferTooLarge` before asking wgpu when the size exceeds the limits.
    pub fn storage_buffer(
        &self,
        name: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        self.check_lost()?;
        let size = storage_size(bytes).ok_or_else(|| Error::BufferTooLarge {
            tensor: name.to_owned(),
            bytes,
            limit: self.limits.max_buffer_size,
        })?;
        // The request first, so that an error names the tensor's own size;
        // then the padding (it can only cross a limit that is not a
        // multiple of 16).
        self.check_binding(name, bytes)?;
        self.check_binding(name, size)?;
        self.scoped(name, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size,
                usage: usage | wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })
    }

    /// A storage buffer (also COPY_SRC and COPY_DST) holding `data`.
    pub fn upload_bytes(&self, name: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        let buffer = self.storage_buffer(
            name,
            data.len() as u64,
            wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        )?;
        self.write_bytes(name, &buffer, 0, data)?;
        Ok(buffer)
    }

    /// A storage buffer (also COPY_SRC and COPY_DST) holding `data`.
    pub fn upload_f32(&self, name: &str, data: &[f32]) -> Result<wgpu::Buffer> {
        self.upload_bytes(name, bytemuck::cast_slice(data))
    }

    /// Writes f32 `data` into `buffer` at byte `offset` (see [`Gpu::write_bytes`]).
    pub fn write_f32(
        &self,
        name: &str,
        buffer: &wgpu::Buffer,
        offset: u64,
        data: &[f32],
    ) -> Result<()> {
        self.write_bytes(name, buffer, offset, bytemuck::cast_slice(data))
    }

    /// Writes `data` into `buffer` at byte `offset` through the queue (ordered
    /// before the next submit). Unaligned tails are zero-padded to 4 bytes.
    pub fn write_bytes(
        &self,
        name: &str,
        buffer: &wgpu::Buffer,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        self.check_lost()?;
        if data.is_empty() {
            return Ok(());
        }
        if !offset.is_multiple_of(ALIGN) {
            return Err(Error::invalid(
                name,
                format!("write offset {offset} is not 4-aligned"),
            ));
        }
        let len = padded(data.len() as u64).unwrap_or(u64::MAX);
        if offset
            .checked_add(len)
            .is_none_or(|end| end > buffer.size())
        {
            return Err(Error::invalid(
                name,
                format!(
                    "writing {len} bytes at offset {offset} overruns the {}-byte buffer",
                    buffer.size()
                ),
            ));
        }
        let padded_copy;
        let bytes = if data.len() as u64 == len {
            data
        } else {
            let mut v = data.to_vec();
            v.resize(data.len().next_multiple_of(4), 0);
            padded_copy = v;
            &padded_copy
        };
        self.scoped(name, || self.queue.write_buffer(buffer, offset, bytes))
    }

    /// Fills all of `buffer` with the 32-bit pattern `value`; tests poison
    /// outputs with 0xFFFF_FFFF (a NaN) before each run.
    pub fn fill_u32(&self, name: &str, buffer: &wgpu::Buffer, value: u32) -> Result<()> {
        let words = usize::try_from(buffer.size() / 4)
            .map_err(|_| Error::invalid(name, "buffer too large to fill from the host"))?;
        let data = vec![value; words];
        self.write_bytes(name, buffer, 0, bytemuck::cast_slice(&data))
    }

    /// A small uniform buffer holding one params struct.
    pub fn uniform<T: bytemuck::Pod>(&self, name: &str, value: &T) -> Result<wgpu::Buffer> {
        let bytes = bytemuck::bytes_of(value);
        let limit = self.limits.max_uniform_buffer_binding_size;
        if bytes.len() as u64 > limit {
            return Err(Error::BindingTooLarge {
                tensor: name.to_owned(),
                bytes: bytes.len() as u64,
                limit,
            });
        }
        self.scoped(name, || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(name),
                    contents: bytes,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                })
        })
    }

    /// Copies `buffer` (which needs COPY_SRC) back to the host: a staging copy,
    /// one submit, `map_async` and polls until done. Returns `DeviceLost` if the
    /// device goes away meanwhile and `Timeout` if the GPU never finishes.
    pub fn read_bytes(&self, name: &str, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
        self.check_lost()?;
        let size = buffer.size();
        let staging = self.scoped(name, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("seldon.readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut encoder = self.encoder("seldon.readback")?;
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        let index = self.submit(name, encoder)?;

        type Slot = Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>;
        let slot: Slot = Arc::new(Mutex::new(None));
        let callback_slot = Arc::clone(&slot);
        self.scoped(name, || {
            staging.map_async(wgpu::MapMode::Read, .., move |r| {
                *callback_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            });
        })?;
        let ready = || {
            slot.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        };
        self.wait_until(name, Some(index), ready)?;
        let outcome = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                // A map fails at once on a destroyed device, but wgpu reports the
                // loss only when the queue drains: wait for that before blaming the map.
                self.wait(name, None)?;
                self.check_lost()?;
                return Err(Error::Map {
                    buffer: name.to_owned(),
                    message: e.to_string(),
                });
            }
            None => {
                return Err(Error::Map {
                    buffer: name.to_owned(),
                    message: "map callback never ran".into(),
                });
            }
        }
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Map {
                    buffer: name.to_owned(),
                    message: e.to_string(),
                })?;
            view.to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// [`Gpu::read_bytes`] as f32 values (the buffer size must be a multiple of 4).
    /// Every value of the buffer: one from [`Gpu::storage_buffer`] is whole
    /// 16-byte units, so it may hold up to 3 values past the size asked for.
    pub fn read_f32(&self, name: &str, buffer: &wgpu::Buffer) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(name, buffer)?;
        if bytes.len() % 4 != 0 {
            return Err(Error::invalid(
                name,
                "buffer size is not a multiple of 4 bytes",
            ));
        }
        // Copy through chunks: the Vec<u8> has no f32 alignment guarantee.
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::padded;

    #[test]
    fn sizes_round_up_to_four_and_overflow_is_caught() {
        assert_eq!(padded(0), Some(4));
        assert_eq!(padded(1), Some(4));
        assert_eq!(padded(8), Some(8));
        assert_eq!(padded(9), Some(12));
        assert_eq!(padded(u64::MAX), None);
    }
}
