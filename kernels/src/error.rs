//! The one error type of seldon-kernels.
//!
//! Every wgpu failure (validation, out of memory, internal, a lost device, a
//! failed map) reaches the caller as one of these variants instead of a panic,
//! so that an application embedding seldon can report or recover.

/// The hint printed when no adapter can be found: tests fail (never skip) with it.
pub const INSTALL_HINT: &str = "no GPU adapter found; for a software Vulkan device install \
     Mesa lavapipe: `apt-get install -y mesa-vulkan-drivers libvulkan1`";

/// Everything that can go wrong in seldon-kernels.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter at all (no driver, or every backend failed).
    #[error("{INSTALL_HINT}")]
    NoAdapter,
    /// `SELDON_DEVICE` (or `--device`) named an adapter that does not exist.
    #[error("no adapter matches device selector {wanted:?}; available: {available}")]
    AdapterNotFound {
        /// The selector as given (an index or a name substring).
        wanted: String,
        /// The adapters that exist, one `index: name (backend, type)` each.
        available: String,
    },
    /// The adapter refused to create a device with the requested features/limits.
    #[error("device request failed on {adapter}: {message}")]
    DeviceRequest {
        /// Name of the adapter that refused.
        adapter: String,
        /// wgpu's explanation.
        message: String,
    },
    /// The device was lost (driver reset, `destroy()`, removed GPU). Every later
    /// call on the same `Gpu` returns this.
    #[error("the GPU device was lost")]
    DeviceLost,
    /// wgpu reported a validation error: a bug in seldon or in its inputs.
    #[error("wgpu validation error in {op}: {message}")]
    Validation {
        /// The operation that was in progress.
        op: String,
        /// wgpu's message.
        message: String,
    },
    /// The device ran out of memory.
    #[error("GPU out of memory in {op}")]
    OutOfMemory {
        /// The operation that was in progress.
        op: String,
    },
    /// wgpu reported an internal (driver or backend) error.
    #[error("wgpu internal error in {op}: {message}")]
    Internal {
        /// The operation that was in progress.
        op: String,
        /// wgpu's message.
        message: String,
    },
    /// A tensor would need a larger storage binding than the device allows.
    #[error(
        "tensor {tensor} needs a {bytes}-byte storage binding, above the device limit of {limit} bytes"
    )]
    BindingTooLarge {
        /// The tensor's name.
        tensor: String,
        /// The bytes it needs.
        bytes: u64,
        /// `max_storage_buffer_binding_size`.
        limit: u64,
    },
    /// A buffer would be larger than `max_buffer_size`.
    #[error("buffer {tensor} needs {bytes} bytes, above the device limit of {limit} bytes")]
    BufferTooLarge {
        /// The buffer's (tensor's) name.
        tensor: String,
        /// The bytes it needs.
        bytes: u64,
        /// `max_buffer_size`.
        limit: u64,
    },
    /// A dispatch needs more workgroups than even a 2-D fold can express.
    #[error("{op} needs {workgroups} workgroups, above the foldable maximum of {limit}")]
    DispatchTooLarge {
        /// The kernel being dispatched.
        op: String,
        /// Workgroups needed.
        workgroups: u64,
        /// `max_compute_workgroups_per_dimension` squared.
        limit: u64,
    },
    /// Mapping a buffer for readback failed.
    #[error("mapping buffer {buffer} failed: {message}")]
    Map {
        /// The buffer's name.
        buffer: String,
        /// What went wrong.
        message: String,
    },
    /// A shader failed to parse, validate or compile into a pipeline.
    #[error("shader {name}: {message}")]
    Shader {
        /// `shader:entry_point`.
        name: String,
        /// The compiler's message.
        message: String,
    },
    /// Arguments that do not fit together (buffer too small for the shape, a
    /// length that must be a multiple of 4, ...).
    #[error("invalid arguments to {op}: {message}")]
    InvalidArgument {
        /// The operation called.
        op: String,
        /// What did not fit.
        message: String,
    },
    /// The GPU did not finish within the configured sync timeout.
    #[error("{op} did not finish within {seconds} s")]
    Timeout {
        /// The operation waited on.
        op: String,
        /// The timeout that expired.
        seconds: u64,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            op: op.to_owned(),
            message: message.into(),
        }
    }
}

/// `Result` with seldon-kernels' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
