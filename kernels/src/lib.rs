//! seldon-kernels: the GPU context and one module per WGSL kernel family.
