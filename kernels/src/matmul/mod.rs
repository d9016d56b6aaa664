//! Matrix products with weights kept in their GGUF block format
//! (`shaders/matmul_<group>.wgsl`): ggml's `mul_mat` with weights of ggml shape
//! `ne = [n_in, n_out]`, `y[c][o] = sum_i W[o][i] * x[c][i]`, f32 activations
//! and f32 accumulation (the portable path, for any adapter).
//!
//! One [`MatMul`] per weight type records either kernel of its shader:
//! a decode kernel for at most [`MATVEC_MAX_COLS`] activation columns
//! ([`MatvecVariant`]: `matvec_split`, one subgroup per row, on GPUs; one
//! invocation per row on CPU adapters, sharing activations by subgroup
//! broadcasts, or reading them as a uniform where the device has no
//! subgroups and x's buffer allows it, see [`matvec_input_buffer`]) or, for
//! prefill, the tiled `matmul` (GPUs: f16 tiles where the device has
//! SHADER_F16) or the decode kernel over chunks of 8 columns (CPU
//! adapters); [`MatMulPath`] forces one. A third entry point,
//! `dequantize`, writes the decoded weights as f32 so that tests can hold the
//! GPU decoder to the CPU dequantizer value by value. [`reference()`] is the
//! CPU oracle. [`Dot4MatVec`] is an opt-in decode variant that quantizes
//! activations to Q8_0/Q8_1/Q8_K on the GPU, as ggml's CPU backend does for
//! the weight type, and uses `dot4I8Packed`.
//!
//! # Adding weight types (Q2_K..Q6_K, TQ1_0, TQ2_0, ...)
//! Each group of types is a shader made of the group's decoders and
//! `shaders/common/matmul_generic.wgsl` (params, bindings, byte readers,
//! the decode body), then the entry points of one variant, which the
//! registry appends (WGSL has no includes).
//! 1. Create `shaders/matmul_<group>.wgsl`: a header comment, `override
//!    WEIGHT_TYPE: u32;`, one `const <NAME>: u32 = <ggml id>u;` per type,
//!    `fn dequant8(row: u32, g: u32) -> W8` returning elements `8g..8g+7` of
//!    weight row `row` (switch on `WEIGHT_TYPE`; decode with ggml's f32
//!    expressions; `params.row_bytes` is the byte length of a row;
//!    `read_u32`/`read_u16`/`read_f16` read at any (even) byte offset), and
//!    `fn dequant32(row: u32, c: u32) -> W32` returning elements
//!    `32c..32c+31` (`dequant32_by8` builds it from `dequant8`), and
//!    `MV_UNIT`, `MV_PARTIAL` and `fn matvec_unit(row, u, acc)`, the decode
//!    loop's body: decode one block (or super-block) whole through a vec4
//!    window (`load_window`, `win_u32`; keep window indices constants once
//!    loops unroll) and hand each 32 weights to `accumulate32` (decoded
//!    weights) or their integer codes and per-16 scales to
//!    `accumulate32_scaled`/`_affine`; call per-chunk helpers with constant
//!    shifts rather than loop where llvmpipe keeps a loop rolled. That is
//!    what makes decode fast (shaders/common/matmul_generic.wgsl and
//!    bench/RESULTS.md have the numbers).
//! 2. Register the file in [`crate::shaders::ALL`] four times, with the
//!    generic part and each decode variant appended (`matmul_tiled` +
//!    `matvec_portable`, `matvec_subgroups`, `matvec_uniform`,
//!    `matvec_split`; see the existing groups).
//! 3. Add one arm to `groups::shader_for` and the types to [`SUPPORTED_TYPES`]
//!    and the shader to [`GROUP_SHADERS`]. The tests in `groups` check that the
//!    WGSL type ids and block sizes are ggml's; add the types to the lists in
//!    kernels/tests/matmul_gpu.rs to run the GPU checks on them. A group may
//!    bring its own decode kernel beside the generic one: name it in
//!    [`matvec_entry`] (none does today).
//!
//! Every group's kernels see whole groups of 8 elements, so `n_in` must be a
//! multiple of the type's block size (any `n_in` for F32/F16/BF16).

mod dot4;
mod dot4_reference;
mod groups;
mod reference;

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use seldon_formats::GgmlType;

use crate::args::{check_f32_len, record, to_u32};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Workgroups};
use crate::prepared::{Dispatch, Prepared};
use crate::shaders::find;

pub use dot4::{ActivationFormat, DOT4_TYPES, Dot4MatVec, dot4_supported};
pub use dot4_reference::{
    dequantize_activations_reference, quantize_activations_reference, reference_dot4,
};
pub use groups::{GROUP_SHADERS, SUPPORTED_TYPES, matvec_entry, shader_for};
pub use reference::{dequantize_reference, reference};

/// The most activation columns `matvec` takes (its accumulators are fixed).
pub const MATVEC_MAX_COLS: u64 = 8;
/// Weight rows per workgroup of the dot4 matvec, as `MV_ROWS` in
/// shaders/matvec_q8_dot4.wgsl.
pub const MATVEC_ROWS: u32 = 2;
/// Weight rows (one per invocation) per workgroup of the generic `matvec`, as
/// `MV_WG` in shaders/common/matmul_generic.wgsl.
pub const MATVEC_WORKGROUP_ROWS: u32 = 64;
/// Bytes of x that `matvec_uniform` binds as a uniform array (`XU_VEC4`
/// vec4s in shaders/common/matvec_uniform.wgsl): WebGPU's default
/// `max_uniform_buffer_binding_size`.
pub const MATVEC_UNIFORM_X_BYTES: u64 = 65536;
/// Weight rows per `matmul` workgroup, as `MM_OUT` in the WGSL.
pub const MATMUL_TILE_OUT: u32 = 64;
/// Activation columns per `matmul` workgroup, as `MM_COLS` in the WGSL.
pub const MATMUL_TILE_COLS: u32 = 32;
/// Invocations per `dequantize` workgroup (one group of 8 weights each).
pub const DEQUANTIZE_WORKGROUP: u32 = 64;

/// Mirrors `MatMulParams` in shaders/common/matmul_generic.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct MatMulParams {
    /// Elements per weight row and per activation column.
    pub n_in: u32,
    /// Weight rows (outputs per column).
    pub n_out: u32,
    /// Activation columns (tokens).
    pub n_cols: u32,
    /// Bytes per weight row in the block format.
    pub row_bytes: u32,
}

/// The sizes of one product: `n_out x n_in` weights times `n_cols` columns of
/// `n_in` activations (x is `[n_cols][n_in]`, y is `[n_cols][n_out]`, f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatMulShape {
    /// Elements per weight row (ggml's ne0 of the weight).
    pub n_in: u64,
    /// Weight rows (ggml's ne1 of the weight).
    pub n_out: u64,
    /// Activation columns: tokens in the batch.
    pub n_cols: u64,
}

/// Which kernel [`MatMul::encode_with`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatMulPath {
    /// `matvec` up to [`MATVEC_MAX_COLS`] columns; above, on CPU adapters
    /// (where it is 3-5x faster than the tiled kernel),
    /// `matvec` over chunks of [`MATVEC_MAX_COLS`] columns when the chunks
    /// start at bindable offsets; else the tiled `matmul`.
    #[default]
    Auto,
    /// Always `matvec` (an error above [`MATVEC_MAX_COLS`] columns).
    Matvec,
    /// `matvec` over chunks of [`MATVEC_MAX_COLS`] columns, one dispatch each
    /// (an error where a chunk's offset is not bindable: see `Auto`).
    MatvecChunks,
    /// Always the tiled `matmul` (f32 tiles).
    Matmul,
    /// The tiled `matmul` with f16 tiles (`matmul_<group>_f16`, needs
    /// SHADER_F16): weights and activations rounded to f16 in workgroup
    /// memory, products and sums in f32. `Auto` picks it for many columns
    /// on GPUs with SHADER_F16.
    MatmulF16,
}

/// Which decode kernel `matvec` runs (the module doc describes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatvecVariant {
    /// `matvec_split` on GPUs that can run it ([`split_supported`]), one row
    /// per invocation on CPU adapters (lavapipe), where lanes are SIMD lanes
    /// of one core and the per-row kernels read each weight once per lane.
    #[default]
    Auto,
    /// One invocation per row: `matvec_subgroups` where the device has
    /// subgroups of at least 8, else `matvec_uniform` where x can be read
    /// as a uniform, else the portable `matvec`.
    PerRow,
    /// One subgroup per row, reduced with subgroupAdd (`matvec_split`); an
    /// error where [`split_supported`] is false.
    Split,
}

/// Whether this device can run `matvec_split`: SUBGROUP, and subgroups of 1
/// to 64 invocations (a workgroup holds 64), power-of-two sized.
pub fn split_supported(gpu: &Gpu) -> bool {
    let f = gpu.features();
    let info = gpu.adapter_info();
    let (min, max) = (info.subgroup_min_size, info.subgroup_max_size);
    f.subgroups
        && min >= 1
        && min <= max
        && max <= SPLIT_WORKGROUP
        && min.is_power_of_two()
        && max.is_power_of_two()
}

/// Invocations per `matvec_split` workgroup, as its `@workgroup_size`.
pub const SPLIT_WORKGROUP: u32 = 64;
/// The most workgroups one `matvec_split` dispatch launches (262,144
/// invocations, enough to fill any GPU); its grid-stride loop over rows
/// covers the rest.
pub const SPLIT_MAX_WORKGROUPS: u64 = 4096;

/// The compiled kernels for one weight type.
#[derive(Debug, Clone)]
pub struct MatMul {
    ty: GgmlType,
    shader: &'static str,
    /// Shader and entry point of the decode kernel (see [`matvec_kernel`]).
    matvec_kernel: (&'static str, &'static str),
    /// The decode kernel that reads x from a uniform binding, used in place
    /// of the portable `matvec` where x allows it (see `reads_uniform_x`).
    matvec_uniform: (&'static str, &'static str),
    /// `matvec_kernel` is `matvec_split`: rows per workgroup in its dispatch.
    split_rows: Option<u32>,
    /// `matvec` for 1 column; other counts come from the pipeline cache.
    matvec: Arc<wgpu::ComputePipeline>,
    matmul: Arc<wgpu::ComputePipeline>,
}

impl MatMul {
    /// Compiles (or fetches from the cache) the `matvec` (1 column) and
    /// `matmul` pipelines for weights of type `ty`, with the device's best
    /// decode kernel ([`MatvecVariant::Auto`]).
    pub fn new(gpu: &Gpu, ty: GgmlType) -> Result<Self> {
        Self::with_variant(gpu, ty, MatvecVariant::Auto)
    }

    /// [`MatMul::new`] with the decode kernel chosen by `variant`.
    pub fn with_variant(gpu: &Gpu, ty: GgmlType, variant: MatvecVariant) -> Result<Self> {
        let shader = shader_for(ty)
            .ok_or_else(|| Error::invalid("matmul", format!("no GPU matmul for {ty} weights")))?;
        let overrides = [("WEIGHT_TYPE", f64::from(ty.id()))];
        let split = match variant {
            MatvecVariant::Auto => {
                split_supported(gpu) && gpu.adapter_info().device_type != wgpu::DeviceType::Cpu
            }
            MatvecVariant::PerRow => false,
            MatvecVariant::Split if split_supported(gpu) => true,
            MatvecVariant::Split => {
                return Err(Error::invalid(
                    "matvec",
                    "matvec_split needs SUBGROUP and subgroups of at most 64 invocations, \
                     which this device does not have",
                ));
            }
        };
        let (matvec_kernel, split_rows) = if split {
            let name = format!("{shader}_split");
            let name = find(&name)
                .ok_or_else(|| Error::invalid("matmul", format!("shader {name} missing")))?
                .name;
            // Enough workgroups for the narrowest subgroups; the kernel's
            // grid-stride loop covers the rows when they are wider.
            let rows = SPLIT_WORKGROUP / gpu.adapter_info().subgroup_min_size;
            ((name, "matvec_split"), Some(rows))
        } else {
            (matvec_kernel(gpu, ty, shader), None)
        };
        let uniform = format!("{shader}_uniform");
        let uniform = find(&uniform)
            .ok_or_else(|| Error::invalid("matmul", format!("shader {uniform} missing")))?;
        Ok(Self {
            ty,
            shader,
            matvec_kernel,
            matvec_uniform: (uniform.name, "matvec_uniform"),
            split_rows,
            matvec: matvec_pipeline(gpu, matvec_kernel, ty, 1)?,
            matmul: gpu.pipeline(shader, "matmul", &overrides)?,
        })
    }

    /// The weight type these kernels decode.
    pub fn weight_type(&self) -> GgmlType {
        self.ty
    }

    /// The shader and entry point that `matvec` runs on this device.
    pub fn matvec_kernel(&self) -> (&'static str, &'static str) {
        self.matvec_kernel
    }

    /// The shader and entry point that `matvec` runs for activations in `x`
    /// and `shape`: `matvec_uniform` where the decode kernel is the portable
    /// `matvec` and x can be read as a uniform (see [`matvec_input_buffer`]),
    /// else [`MatMul::matvec_kernel`].
    pub fn matvec_kernel_for(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        shape: MatMulShape,
    ) -> (&'static str, &'static str) {
        if self.reads_uniform_x(gpu, x, 0, shape) {
            self.matvec_uniform
        } else {
            self.matvec_kernel
        }
    }

    /// Whether decode reads x at `offset` of `x` as a uniform
    /// (`matvec_uniform`): only where the decode kernel would otherwise be
    /// the portable `matvec`, whose invocations all load the same
    /// activations. `matvec_subgroups` loads each activation once per
    /// subgroup and broadcasts it, which measured faster on lavapipe (a
    /// uniform load at an index that is not a constant is still a per-lane
    /// gather there: Q8_0 2048x6144 3.3-4.9 ms against 4.7-7.7 ms over three
    /// processes each), and `matvec_split` has each lane at its own block.
    fn reads_uniform_x(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        offset: u64,
        shape: MatMulShape,
    ) -> bool {
        self.matvec_kernel.1 == "matvec" && uniform_x(gpu, x, offset, shape)
    }

    /// Records `y = W x` for `shape`, choosing `matvec` or `matmul` by the
    /// number of columns. `weights` holds the rows' raw block bytes.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
    ) -> Result<()> {
        self.encode_with(gpu, encoder, weights, x, y, shape, MatMulPath::Auto)
    }

    /// [`MatMul::encode`] with the kernel chosen by `path`.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_with(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
        path: MatMulPath,
    ) -> Result<()> {
        self.prepare_with(gpu, weights, x, y, shape, path)?
            .encode(encoder);
        Ok(())
    }

    /// [`MatMul::encode`] built once, to be recorded into many steps.
    pub fn prepare(
        &self,
        gpu: &Gpu,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
    ) -> Result<Prepared> {
        self.prepare_with(gpu, weights, x, y, shape, MatMulPath::Auto)
    }

    /// [`MatMul::encode_with`] built once, to be recorded into many steps.
    pub fn prepare_with(
        &self,
        gpu: &Gpu,
        weights: &wgpu::Buffer,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        shape: MatMulShape,
        path: MatMulPath,
    ) -> Result<Prepared> {
        let path = match path {
            MatMulPath::Auto if shape.n_cols <= MATVEC_MAX_COLS => MatMulPath::Matvec,
            MatMulPath::Auto if prefers_matvec_chunks(gpu) && chunks_align(gpu, shape) => {
                MatMulPath::MatvecChunks
            }
            MatMulPath::Auto if f16_tiles(gpu) => MatMulPath::MatmulF16,
            MatMulPath::Auto => MatMulPath::Matmul,
            other => other,
        };
        let tiled = matches!(path, MatMulPath::Matmul | MatMulPath::MatmulF16);
        let op = if tiled { "matmul" } else { "matvec" };
        if path == MatMulPath::Matvec && shape.n_cols > MATVEC_MAX_COLS {
            return Err(Error::invalid(
                op,
                format!(
                    "{} columns, matvec takes at most {MATVEC_MAX_COLS}",
                    shape.n_cols
                ),
            ));
        }
        if path == MatMulPath::MatvecChunks && !chunks_align(gpu, shape) {
            return Err(Error::invalid(
                op,
                format!(
                    "chunks of {MATVEC_MAX_COLS} columns of {} x {} f32 do not start at the \
                     device's {}-byte storage offset alignment",
                    shape.n_in,
                    shape.n_out,
                    gpu.limits().min_storage_buffer_offset_alignment
                ),
            ));
        }
        let params = weight_params(gpu, op, self.ty, weights, shape.n_in, shape.n_out)?;
        check_activations(gpu, op, x, y, shape)?;
        if shape.n_out == 0 || shape.n_cols == 0 {
            return Ok(Prepared::none());
        }
        let label = format!("{op} {}", self.ty);
        if tiled {
            let pipeline = if path == MatMulPath::MatmulF16 {
                if !gpu.features().f16 {
                    return Err(Error::invalid(
                        op,
                        "f16 tiles need SHADER_F16, which this device does not have",
                    ));
                }
                let shader = format!("{}_f16", self.shader);
                let shader = find(&shader)
                    .ok_or_else(|| Error::invalid(op, format!("shader {shader} missing")))?;
                let overrides = [("WEIGHT_TYPE", f64::from(self.ty.id()))];
                gpu.pipeline(shader.name, "matmul", &overrides)?
            } else {
                Arc::clone(&self.matmul)
            };
            let params = MatMulParams {
                n_cols: to_u32(op, "n_cols", shape.n_cols)?,
                ..params
            };
            let params = gpu.uniform(&format!("{label}.params"), &params)?;
            let groups = tile_workgroups(gpu, op, shape)?;
            let entries = [(0, weights), (1, x), (2, y), (3, &params)];
            return Ok(Dispatch::new(gpu, &label, &pipeline, &entries, groups)?.into());
        }
        // matvec: one dispatch, or one per chunk of at most 8 columns, each
        // binding its columns of x and y.
        let mut prepared = Prepared::none();
        let mut c0 = 0;
        while c0 < shape.n_cols {
            let cols = (shape.n_cols - c0).min(MATVEC_MAX_COLS);
            let chunk = MatMulShape {
                n_cols: cols,
                ..shape
            };
            let params = MatMulParams {
                n_cols: to_u32(op, "n_cols", cols)?,
                ..params
            };
            let cols_in = ColumnRange::of(x, c0, cols, shape.n_in);
            let cols_out = ColumnRange::of(y, c0, cols, shape.n_out);
            prepared.push(
                self.matvec_dispatch(gpu, &label, weights, cols_in, cols_out, chunk, params)?,
            );
            c0 += cols;
        }
        Ok(prepared)
    }

    /// One `matvec` dispatch over the columns `x` and `y` bind.
    #[allow(clippy::too_many_arguments)]
    fn matvec_dispatch(
        &self,
        gpu: &Gpu,
        label: &str,
        weights: &wgpu::Buffer,
        x: ColumnRange<'_>,
        y: ColumnRange<'_>,
        shape: MatMulShape,
        params: MatMulParams,
    ) -> Result<Dispatch> {
        let groups = match self.split_rows {
            Some(rows) => {
                let needed = shape.n_out.div_ceil(u64::from(rows));
                gpu.workgroups("matvec", needed.min(SPLIT_MAX_WORKGROUPS), 1)?
            }
            None => gpu.workgroups("matvec", shape.n_out, MATVEC_WORKGROUP_ROWS)?,
        };
        let params = gpu.uniform(&format!("{label}.params"), &params)?;
        let x_uniform = self.reads_uniform_x(gpu, x.buffer, x.offset, shape);
        let kernel = if x_uniform {
            self.matvec_uniform
        } else {
            self.matvec_kernel
        };
        let pipeline = match (x_uniform, shape.n_cols) {
            (false, 1) => Arc::clone(&self.matvec),
            (_, n) => matvec_pipeline(gpu, kernel, self.ty, n)?,
        };
        // matvec also reads the weights and x as vec4s (bindings 4 and 5),
        // and matvec_uniform 64 KiB of x from its first column as a uniform
        // (binding 6).
        let whole = |binding, buffer| ColumnRange::whole(buffer).entry(binding);
        let mut entries = vec![
            whole(0, weights),
            x.entry(1),
            y.entry(2),
            whole(3, &params),
            whole(4, weights),
            // An array<vec4> binding holds at least 16 bytes: a chunk of
            // fewer (float rows only, which never read x4) binds all of x.
            if x.size.is_some_and(|size| size.get() < 16) {
                ColumnRange::whole(x.buffer).entry(5)
            } else {
                x.entry(5)
            },
        ];
        if x_uniform {
            entries.push(wgpu::BindGroupEntry {
                binding: 6,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: x.buffer,
                    offset: x.offset,
                    size: wgpu::BufferSize::new(MATVEC_UNIFORM_X_BYTES),
                }),
            });
        }
        Dispatch::from_entries(gpu, label, &pipeline, &entries, groups)
    }

    /// Records the decoding of `n_out` weight rows of `n_in` elements into
    /// `out` (`[n_out][n_in]` f32), for checking the GPU decoder.
    pub fn encode_dequantize(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        weights: &wgpu::Buffer,
        out: &wgpu::Buffer,
        n_in: u64,
        n_out: u64,
    ) -> Result<()> {
        let op = "dequantize";
        let params = weight_params(gpu, op, self.ty, weights, n_in, n_out)?;
        let elements = checked_mul(op, "n_out * n_in", n_out, n_in)?;
        check_f32_len(op, "out", out, elements)?;
        gpu.check_binding("dequantize out", out.size())?;
        let groups = checked_mul(op, "groups", n_out, n_in.div_ceil(8))?;
        let groups = gpu.workgroups(op, groups, DEQUANTIZE_WORKGROUP)?;
        if groups.total() == 0 {
            return Ok(());
        }
        let overrides = [("WEIGHT_TYPE", f64::from(self.ty.id()))];
        let pipeline = gpu.pipeline(self.shader, "dequantize", &overrides)?;
        let label = format!("{op} {}", self.ty);
        let params = gpu.uniform(&format!("{label}.params"), &params)?;
        let bind_group =
            gpu.bind_group(&label, &pipeline, &[(0, weights), (2, out), (3, &params)])?;
        record(encoder, &label, &pipeline, &bind_group, groups);
        Ok(())
    }
}

/// The decode kernel for `ty` (whose group shader is `shader`) on this
/// device: `matvec_subgroups` in `<shader>_subgroups` where the device has
/// subgroups of at least 8 invocations (it broadcasts activations from 8
/// lanes), the portable `matvec` otherwise (and under `force_portable`).
fn matvec_kernel(gpu: &Gpu, ty: GgmlType, shader: &'static str) -> (&'static str, &'static str) {
    let subgroups = gpu.features().subgroups && gpu.adapter_info().subgroup_min_size >= 8;
    let variant = find(&format!("{shader}_subgroups")).map(|s| s.name);
    match (subgroups, matvec_entry(ty), variant) {
        (true, "matvec", Some(name)) => (name, "matvec_subgroups"),
        (_, entry, _) => (shader, entry),
    }
}

/// A buffer for activations that `matvec` may read as a uniform (the fast
/// decode path, `matvec_uniform`): a storage buffer of `bytes` plus
/// [`MATVEC_UNIFORM_X_BYTES`] (so that the uniform binding of any chunk of
/// columns stays inside it), with UNIFORM added to `usage`.
pub fn matvec_input_buffer(
    gpu: &Gpu,
    name: &str,
    bytes: u64,
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let usage = if gpu.limits().max_uniform_buffer_binding_size >= MATVEC_UNIFORM_X_BYTES {
        usage | wgpu::BufferUsages::UNIFORM
    } else {
        usage
    };
    let size = bytes
        .checked_add(MATVEC_UNIFORM_X_BYTES)
        .ok_or_else(|| Error::invalid("matvec", format!("{name}: {bytes} bytes overflow")))?;
    gpu.storage_buffer(name, size, usage)
}

/// Whether `matvec_uniform` can read x from byte `offset`: the device binds
/// 64 KiB uniforms at that offset's alignment, x's buffer allows UNIFORM and
/// holds 64 KiB from there (the binding's fixed size), and the shape's
/// activations fit in them.
fn uniform_x(gpu: &Gpu, x: &wgpu::Buffer, offset: u64, shape: MatMulShape) -> bool {
    let limits = gpu.limits();
    let bytes = shape
        .n_cols
        .checked_mul(shape.n_in)
        .and_then(|n| n.checked_mul(4));
    limits.max_uniform_buffer_binding_size >= MATVEC_UNIFORM_X_BYTES
        && offset.is_multiple_of(u64::from(limits.min_uniform_buffer_offset_alignment))
        && x.usage().contains(wgpu::BufferUsages::UNIFORM)
        && offset
            .checked_add(MATVEC_UNIFORM_X_BYTES)
            .is_some_and(|end| end <= x.size())
        && bytes.is_some_and(|b| b <= MATVEC_UNIFORM_X_BYTES)
}

/// Whether `Auto` runs the tiled matmul with f16 tiles: GPUs (not CPU
/// adapters, where f16 is converted in software) with SHADER_F16. Chosen by
/// design (llama.cpp's Vulkan backend tiles in f16 where it can); not yet
/// measured on a GPU.
fn f16_tiles(gpu: &Gpu) -> bool {
    gpu.features().f16 && gpu.adapter_info().device_type != wgpu::DeviceType::Cpu
}

/// Whether many-column products run best as `matvec` over
/// chunks of 8 columns on this device: every type on CPU adapters
/// (lavapipe), where the tiled `matmul`'s barriers are coroutine switches and
/// its workgroup memory is read lane by lane. Measured there (commit
/// `9cee9e5`, bench/results/kernels-lavapipe-20261207-3.json, 32 tokens):
/// chunks 3-5x faster on every shape, e.g. 2048x6144 Q8_0 38 against 304
/// ms, F32 70 against 360 ms (float types were tiled until their decode got
/// 3x faster: at `42645c7` their chunks took 970-1240 ms).
fn prefers_matvec_chunks(gpu: &Gpu) -> bool {
    gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// Whether every chunk of 8 columns of x and y starts at an offset the
/// device can bind a storage buffer at.
fn chunks_align(gpu: &Gpu, shape: MatMulShape) -> bool {
    let align = u64::from(gpu.limits().min_storage_buffer_offset_alignment);
    [shape.n_in, shape.n_out].iter().all(|&n| {
        (MATVEC_MAX_COLS * 4)
            .checked_mul(n)
            .is_some_and(|bytes| bytes.is_multiple_of(align))
    })
}

/// Columns `c0..c0 + cols` of a `[n_cols][n]` f32 buffer, as a binding.
#[derive(Debug, Clone, Copy)]
struct ColumnRange<'a> {
    buffer: &'a wgpu::Buffer,
    offset: u64,
    /// `None`: the whole buffer (a single dispatch binds everything).
    size: Option<wgpu::BufferSize>,
}

impl<'a> ColumnRange<'a> {
    fn whole(buffer: &'a wgpu::Buffer) -> Self {
        Self {
            buffer,
            offset: 0,
            size: None,
        }
    }

    fn of(buffer: &'a wgpu::Buffer, c0: u64, cols: u64, n: u64) -> Self {
        if c0 == 0 {
            return Self::whole(buffer);
        }
        Self {
            buffer,
            offset: 4 * n * c0,
            size: wgpu::BufferSize::new(4 * n * cols),
        }
    }

    fn entry(&self, binding: u32) -> wgpu::BindGroupEntry<'a> {
        wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: self.buffer,
                offset: self.offset,
                size: self.size,
            }),
        }
    }
}

/// The `matvec` pipeline for `n_cols` (1..=8) columns: `MV_COLS` is an
/// override so that the accumulators are registers and one column has no
/// column loop.
fn matvec_pipeline(
    gpu: &Gpu,
    (shader, entry): (&str, &str),
    ty: GgmlType,
    n_cols: u64,
) -> Result<Arc<wgpu::ComputePipeline>> {
    let overrides = [
        ("WEIGHT_TYPE", f64::from(ty.id())),
        ("MV_COLS", n_cols as f64),
    ];
    gpu.pipeline(shader, entry, &overrides)
}

/// Checks `weights` against `n_out` rows of `n_in` elements of type `ty` and
/// returns the params with `n_cols` left at 0.
fn weight_params(
    gpu: &Gpu,
    op: &str,
    ty: GgmlType,
    weights: &wgpu::Buffer,
    n_in: u64,
    n_out: u64,
) -> Result<MatMulParams> {
    let row_bytes = ty.bytes_for(n_in).ok_or_else(|| {
        Error::invalid(
            op,
            format!(
                "n_in = {n_in} is not a multiple of the {ty} block size {}",
                ty.block_size()
            ),
        )
    })?;
    let bytes = checked_mul(op, "weight bytes", n_out, row_bytes)?;
    let name = format!("{op} weights ({ty}, {n_out} rows of {n_in})");
    if weights.size() < bytes {
        return Err(Error::invalid(
            op,
            format!(
                "{name} hold {} bytes, the shape needs {bytes}",
                weights.size()
            ),
        ));
    }
    gpu.check_binding(&name, weights.size())?;
    // Byte offsets and element indices are u32 in the shaders; read_u32
    // may touch the word after a row's last byte.
    to_u32(op, "weight bytes + 8", bytes.saturating_add(8))?;
    to_u32(
        op,
        "n_out * n_in",
        checked_mul(op, "n_out * n_in", n_out, n_in)?,
    )?;
    Ok(MatMulParams {
        n_in: to_u32(op, "n_in", n_in)?,
        n_out: to_u32(op, "n_out", n_out)?,
        n_cols: 0,
        row_bytes: to_u32(op, "row bytes", row_bytes)?,
    })
}

/// Checks that `x` and `y` hold what `shape` implies and fit the u32
/// indexing of the shaders and a storage binding.
fn check_activations(
    gpu: &Gpu,
    op: &str,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    shape: MatMulShape,
) -> Result<()> {
    let x_len = checked_mul(op, "n_cols * n_in", shape.n_cols, shape.n_in)?;
    let y_len = checked_mul(op, "n_cols * n_out", shape.n_cols, shape.n_out)?;
    check_f32_len(op, "x", x, x_len)?;
    check_f32_len(op, "y", y, y_len)?;
    gpu.check_binding(&format!("{op} x"), x.size())?;
    gpu.check_binding(&format!("{op} y"), y.size())?;
    to_u32(op, "n_cols * n_in", x_len)?;
    to_u32(op, "n_cols * n_out", y_len)?;
    Ok(())
}

fn checked_mul(op: &str, what: &str, a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| Error::invalid(op, format!("{what} overflows u64")))
}

/// The `matmul` grid: output tiles along x, column tiles along y (no fold:
/// both stay far below 65535 for any model).
fn tile_workgroups(gpu: &Gpu, op: &str, shape: MatMulShape) -> Result<Workgroups> {
    let max = gpu.limits().max_compute_workgroups_per_dimension;
    let dim = |n: u64, tile: u32| -> Result<u32> {
        let count = n.div_ceil(u64::from(tile));
        u32::try_from(count)
            .ok()
            .filter(|&c| c <= max)
            .ok_or(Error::DispatchTooLarge {
                op: op.to_owned(),
                workgroups: count,
                limit: u64::from(max),
            })
    };
    Ok(Workgroups {
        x: dim(shape.n_out, MATMUL_TILE_OUT)?,
        y: dim(shape.n_cols, MATMUL_TILE_COLS)?,
        z: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::{check_params_layout, find};

    const GENERIC: &str = "common/matmul_generic.wgsl";
    const PORTABLE: &str = "common/matvec_portable.wgsl";
    const SUBGROUPS: &str = "common/matvec_subgroups.wgsl";
    const UNIFORM: &str = "common/matvec_uniform.wgsl";
    const SPLIT: &str = "common/matvec_split.wgsl";
    const TILED: &str = "common/matmul_tiled.wgsl";
    const TILE_F32: &str = "common/tile_f32.wgsl";
    const TILE_F16: &str = "common/tile_f16.wgsl";

    fn source(shader: &str) -> &'static str {
        find(shader).map(|s| s.source).unwrap_or_default()
    }

    #[test]
    fn params_match_wgsl_in_every_group() {
        let fields = crate::params_layout!(MatMulParams, n_in, n_out, n_cols, row_bytes);
        for shader in GROUP_SHADERS {
            assert_eq!(
                check_params_layout(
                    source(shader),
                    "MatMulParams",
                    size_of::<MatMulParams>(),
                    &fields
                ),
                Ok(()),
                "{shader}"
            );
        }
    }

    #[test]
    fn every_group_appends_the_generic_part_and_it_matches_the_constants() {
        for shader in GROUP_SHADERS {
            let info = find(shader).unwrap_or_else(|| panic!("{shader} missing"));
            assert_eq!(
                info.appended,
                [GENERIC, TILE_F32, TILED, PORTABLE],
                "{shader}"
            );
            let f16 = find(&format!("{shader}_f16")).unwrap_or_else(|| panic!("{shader}_f16"));
            assert_eq!(
                f16.appended,
                [GENERIC, TILE_F16, TILED, PORTABLE],
                "{shader}"
            );
            assert!(f16.needs_f16 && f16.prefix == "enable f16;\n" && f16.path == info.path);
            for line in [
                format!("const MV_WG: u32 = {MATVEC_WORKGROUP_ROWS}u;"),
                format!("const MV_MAX_COLS: u32 = {MATVEC_MAX_COLS}u;"),
                format!("@workgroup_size({MATVEC_WORKGROUP_ROWS})\nfn matvec("),
                format!("const MM_OUT: u32 = {MATMUL_TILE_OUT}u;"),
                format!("const MM_COLS: u32 = {MATMUL_TILE_COLS}u;"),
                format!("@workgroup_size({DEQUANTIZE_WORKGROUP})\nfn dequantize("),
                format!("* {DEQUANTIZE_WORKGROUP}u + lid;"),
            ] {
                assert!(info.source.contains(&line), "{shader}: missing `{line}`");
            }
            // The decode-only variants: the generic part and their entry point.
            for (suffix, file, entry, workgroup, subgroups) in [
                (
                    "subgroups",
                    SUBGROUPS,
                    "matvec_subgroups",
                    MATVEC_WORKGROUP_ROWS,
                    true,
                ),
                (
                    "uniform",
                    UNIFORM,
                    "matvec_uniform",
                    MATVEC_WORKGROUP_ROWS,
                    false,
                ),
                ("split", SPLIT, "matvec_split", SPLIT_WORKGROUP, true),
            ] {
                let name = format!("{shader}_{suffix}");
                let v = find(&name).unwrap_or_else(|| panic!("{name} missing"));
                // matvec_split takes x32 from the portable file.
                if suffix == "split" {
                    assert_eq!(v.appended, [GENERIC, PORTABLE, file], "{name}");
                } else {
                    assert_eq!(v.appended, [GENERIC, file], "{name}");
                }
                assert!(
                    v.needs_subgroups == subgroups && v.path == info.path,
                    "{name}"
                );
                for line in [
                    format!("const MV_MAX_COLS: u32 = {MATVEC_MAX_COLS}u;"),
                    format!("@workgroup_size({workgroup})\nfn {entry}("),
                ] {
                    assert!(v.source.contains(&line), "{name}: missing `{line}`");
                }
            }
        }
    }
}
