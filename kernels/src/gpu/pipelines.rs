//! The pipeline cache: each (shader, entry point, overrides) compiles once per `Gpu`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::Gpu;
use crate::error::{Error, Result};
use crate::shaders;

/// Cache key: override values are kept as f64 bit patterns so the key is `Eq + Hash`.
type Key = (String, String, Vec<(String, u64)>);

/// Compiled shader modules and pipelines of one device.
#[derive(Debug, Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<String, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Key, Arc<wgpu::ComputePipeline>>>,
    compiled: AtomicUsize,
}

impl Gpu {
    /// The compute pipeline for `entry` in shader `shader` (a name from
    /// [`crate::shaders::ALL`]) with `overrides` for its `override` constants,
    /// compiled on first use and cached. Its bind group layouts are derived
    /// from the shader.
    pub fn pipeline(
        &self,
        shader: &str,
        entry: &str,
        overrides: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.check_lost()?;
        let key: Key = (
            shader.to_owned(),
            entry.to_owned(),
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_bits()))
                .collect(),
        );
        // Held across compilation so that racing callers compile only once.
        let mut pipelines = self
            .pipelines
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pipelines.get(&key) {
            return Ok(Arc::clone(p));
        }
        let name = format!("{shader}:{entry}");
        let module = self.module(shader)?;
        let pipeline = self
            .scoped(&name, || {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&name),
                        layout: None,
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: overrides,
                            // Our kernels write workgroup memory before reading it.
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
            })
            .map_err(|e| shader_error(&name, e))?;
        let pipeline = Arc::new(pipeline);
        pipelines.insert(key, Arc::clone(&pipeline));
        self.pipelines.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(pipeline)
    }

    /// How many pipelines this `Gpu` has compiled (cache misses).
    pub fn pipelines_compiled(&self) -> usize {
        self.pipelines.compiled.load(Ordering::Relaxed)
    }

    fn module(&self, shader: &str) -> Result<wgpu::ShaderModule> {
        let mut modules = self
            .pipelines
            .modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = modules.get(shader) {
            return Ok(m.clone());
        }
        let Some(info) = shaders::find(shader) else {
            return Err(Error::Shader {
                name: shader.to_owned(),
                message: "no such shader in seldon_kernels::shaders::ALL".into(),
            });
        };
        let features = self.features();
        if (info.needs_f16 && !features.f16) || (info.needs_subgroups && !features.subgroups) {
            return Err(Error::Shader {
                name: shader.to_owned(),
                message: "needs SHADER_F16/SUBGROUP, which this device lacks or which \
                          force_portable disabled"
                    .into(),
            });
        }
        let module = self
            .scoped(shader, || {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader),
                        source: wgpu::ShaderSource::Wgsl(info.source.into()),
                    })
            })
            .map_err(|e| shader_error(shader, e))?;
        modules.insert(shader.to_owned(), module.clone());
        Ok(module)
    }

    /// A bind group for group 0 of `pipeline`, binding each `(binding, buffer)`
    /// as a whole buffer.
    pub fn bind_group(
        &self,
        op: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.bind_group_entries(op, pipeline, &entries)
    }

    /// A bind group for group 0 of `pipeline` from explicit entries (for
    /// bindings of part of a buffer).
    pub fn bind_group_entries(
        &self,
        op: &str,
        pipeline: &wgpu::ComputePipeline,
        entries: &[wgpu::BindGroupEntry<'_>],
    ) -> Result<wgpu::BindGroup> {
        self.scoped(op, || {
            let layout = pipeline.get_bind_group_layout(0);
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(op),
                layout: &layout,
                entries,
            })
        })
    }
}

/// Validation failures while compiling become `Error::Shader`; a lost device
/// or out-of-memory stays what it is.
fn shader_error(name: &str, e: Error) -> Error {
    match e {
        Error::Validation { message, .. } | Error::Internal { message, .. } => Error::Shader {
            name: name.to_owned(),
            message,
        },
        other => other,
    }
}
