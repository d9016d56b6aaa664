//! Argument checks shared by the kernel wrappers: element counts that must fit
//! the u32 params of a shader and buffers that must hold what a shape implies.

use crate::error::{Error, Result};

/// `count` as the u32 a params struct carries.
pub(crate) fn to_u32(op: &str, what: &str, count: u64) -> Result<u32> {
    u32::try_from(count).map_err(|_| Error::invalid(op, format!("{what} = {count} exceeds u32")))
}

/// Checks that `buffer` holds at least `elements` f32 values.
pub(crate) fn check_f32_len(
    op: &str,
    what: &str,
    buffer: &wgpu::Buffer,
    elements: u64,
) -> Result<()> {
    let bytes = elements
        .checked_mul(4)
        .ok_or_else(|| Error::invalid(op, format!("{what}: {elements} elements overflow u64")))?;
    if buffer.size() < bytes {
        return Err(Error::invalid(
            op,
            format!(
                "{what} holds {} bytes, the shape needs {bytes}",
                buffer.size()
            ),
        ));
    }
    Ok(())
}

/// Records one compute pass with one dispatch of `pipeline` over `groups`.
pub(crate) fn record(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    groups: crate::gpu::Workgroups,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    groups.dispatch(&mut pass);
}
