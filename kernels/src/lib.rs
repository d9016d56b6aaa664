//! seldon-kernels: the GPU context and one module per WGSL kernel family.
//!
//! Each family has four parts side by side: its WGSL file in `shaders/`, a
//! params struct mirrored from WGSL (checked through naga), an `encode` that
//! records into a command encoder without submitting, and a CPU reference.

pub mod argmax;
mod args;
pub mod attention;
pub mod convert;
pub mod copy;
pub mod elementwise;
pub mod error;
pub mod get_rows;
pub mod gpu;
pub mod kv_cache;
pub mod matmul;
pub mod prepared;
pub mod rms_norm;
pub mod rope;
pub mod shaders;
pub mod softmax;
pub mod swiglu;
pub mod timing;
pub mod tolerance;

pub use error::{Error, Result};
pub use gpu::{AdapterSummary, Gpu, GpuFeatures, GpuOptions, LimitsRequest, Workgroups};
pub use prepared::{Dispatch, Prepared};
