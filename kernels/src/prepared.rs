//! Dispatches built ahead of time: a kernel's `prepare_*` checks its arguments,
//! creates its params uniform and bind group once and returns a [`Prepared`]
//! that can be recorded into any number of steps. The `encode*` functions are
//! `prepare` followed by [`Prepared::encode`].
//!
//! A model's plan prepares every dispatch of a step once (DESIGN.md:
//! "a plan built at load"), so a decode step only records dispatches into one
//! compute pass and writes a few bytes of per-step parameters; creating ~500
//! uniforms and bind groups per token cost more than the kernels themselves on
//! a software GPU. Parameters that change between steps (a position) come from
//! a uniform the caller owns and rewrites: see `KvWrite::prepare` and
//! `Attention::prepare`.

use std::sync::Arc;

use crate::error::Result;
use crate::gpu::{Gpu, Workgroups};

/// One compute dispatch with everything it binds: pipeline, bind group 0 and
/// workgroup count. Buffers it binds stay alive as long as it does.
#[derive(Debug, Clone)]
pub struct Dispatch {
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: Workgroups,
}

impl Dispatch {
    /// Creates the bind group of `pipeline` over `buffers` (whole buffers).
    pub(crate) fn new(
        gpu: &Gpu,
        label: &str,
        pipeline: &Arc<wgpu::ComputePipeline>,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: Workgroups,
    ) -> Result<Self> {
        let bind_group = gpu.bind_group(label, pipeline, buffers)?;
        Ok(Self {
            label: label.to_owned(),
            pipeline: Arc::clone(pipeline),
            bind_group,
            groups,
        })
    }

    /// [`Dispatch::new`] with explicit bind group entries (parts of buffers).
    pub(crate) fn from_entries(
        gpu: &Gpu,
        label: &str,
        pipeline: &Arc<wgpu::ComputePipeline>,
        entries: &[wgpu::BindGroupEntry<'_>],
        groups: Workgroups,
    ) -> Result<Self> {
        let bind_group = gpu.bind_group_entries(label, pipeline, entries)?;
        Ok(Self {
            label: label.to_owned(),
            pipeline: Arc::clone(pipeline),
            bind_group,
            groups,
        })
    }

    /// The workgroups it dispatches.
    pub fn workgroups(&self) -> Workgroups {
        self.groups
    }

    /// The kernel's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Records the dispatch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        self.groups.dispatch(pass);
    }
}

/// The dispatches of one kernel call, in order; empty when the call has
/// nothing to do (zero rows, zero tokens).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    dispatches: Vec<Dispatch>,
}

impl Prepared {
    /// No dispatches.
    pub fn none() -> Self {
        Self::default()
    }

    /// One dispatch.
    pub fn one(dispatch: Dispatch) -> Self {
        Self {
            dispatches: vec![dispatch],
        }
    }

    /// Appends `dispatch`.
    pub fn push(&mut self, dispatch: Dispatch) {
        self.dispatches.push(dispatch);
    }

    /// Appends every dispatch of `other`.
    pub fn append(&mut self, other: Prepared) {
        self.dispatches.extend(other.dispatches);
    }

    /// The dispatches, in order.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// Records every dispatch into one open compute pass (wgpu orders them:
    /// each dispatch sees the writes of the ones before it).
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }

    /// Records every dispatch into `encoder`, each in its own labelled pass
    /// (what the `encode*` functions do).
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        for d in &self.dispatches {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: None,
            });
            d.record(&mut pass);
        }
    }
}

impl From<Dispatch> for Prepared {
    fn from(d: Dispatch) -> Self {
        Self::one(d)
    }
}
