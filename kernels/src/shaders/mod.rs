//! The WGSL sources in `shaders/`, compiled into the crate, and the naga checks
//! every one of them must pass.

mod check;

pub use check::{
    DEVICE_CAPABILITIES, FieldLayout, PORTABLE_CAPABILITIES, check_params_layout, field_size,
    validate_wgsl, validate_wgsl_with,
};

/// One WGSL file and what it needs from the device.
#[derive(Debug, Clone, Copy)]
pub struct ShaderInfo {
    /// The name kernels ask the pipeline cache for.
    pub name: &'static str,
    /// Path below `shaders/` (a test checks that every file there is listed).
    pub path: &'static str,
    /// The WGSL text.
    pub source: &'static str,
    /// Text put before the file's: `enable f16;` where the shader uses the
    /// f16 type (WGSL wants enable directives first); empty for most.
    pub prefix: &'static str,
    /// Uses `enable f16;` (needs SHADER_F16).
    pub needs_f16: bool,
    /// Uses subgroup builtins (needs SUBGROUP).
    pub needs_subgroups: bool,
    /// Shared helper files below `shaders/` (under `common/`) appended, in
    /// order, to `prefix` and this file's text to make `source` (WGSL has no
    /// includes);
    /// empty when the file stands alone.
    pub appended: &'static [&'static str],
}

macro_rules! shader {
    ($name:literal, $path:literal) => {
        ShaderInfo {
            name: $name,
            path: $path,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $path)),
            prefix: "",
            needs_f16: false,
            needs_subgroups: false,
            appended: &[],
        }
    };
    ($name:literal, $path:literal, subgroups: $subgroups:literal, appended: $($appended:literal),+) => {
        shader!($name, $path, prefix: "", f16: false, subgroups: $subgroups, appended: $($appended),+)
    };
    ($name:literal, $path:literal, prefix: $prefix:literal, f16: $f16:literal,
     subgroups: $subgroups:literal, appended: $($appended:literal),+) => {
        ShaderInfo {
            name: $name,
            path: $path,
            source: concat!(
                $prefix,
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $path)),
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $appended)),)+
            ),
            prefix: $prefix,
            needs_f16: $f16,
            needs_subgroups: $subgroups,
            appended: &[$($appended),+],
        }
    };
}

/// Every shader of seldon.
pub const ALL: &[ShaderInfo] = &[
    shader!("argmax", "argmax.wgsl"),
    shader!("attention", "attention.wgsl"),
    shader!("convert", "convert.wgsl"),
    shader!("copy", "copy.wgsl"),
    shader!("elementwise", "elementwise.wgsl"),
    shader!("get_rows", "get_rows.wgsl"),
    shader!("kv_cache", "kv_cache.wgsl"),
    shader!("matmul_float", "matmul_float.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/tile_f32.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_float_f16", "matmul_float.wgsl", prefix: "enable f16;\n", f16: true,
            subgroups: false, appended: "common/matmul_generic.wgsl", "common/tile_f16.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_float_subgroups", "matmul_float.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_subgroups.wgsl"),
    shader!("matmul_float_uniform", "matmul_float.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/matvec_uniform.wgsl"),
    shader!("matmul_float_split", "matmul_float.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_portable.wgsl",
            "common/matvec_split.wgsl"),
    shader!("matmul_kquants", "matmul_kquants.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/tile_f32.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_kquants_f16", "matmul_kquants.wgsl", prefix: "enable f16;\n", f16: true,
            subgroups: false, appended: "common/matmul_generic.wgsl", "common/tile_f16.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_kquants_subgroups", "matmul_kquants.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_subgroups.wgsl"),
    shader!("matmul_kquants_uniform", "matmul_kquants.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/matvec_uniform.wgsl"),
    shader!("matmul_kquants_split", "matmul_kquants.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_portable.wgsl",
            "common/matvec_split.wgsl"),
    shader!("matmul_legacy", "matmul_legacy.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/tile_f32.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_legacy_f16", "matmul_legacy.wgsl", prefix: "enable f16;\n", f16: true,
            subgroups: false, appended: "common/matmul_generic.wgsl", "common/tile_f16.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_legacy_subgroups", "matmul_legacy.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_subgroups.wgsl"),
    shader!("matmul_legacy_uniform", "matmul_legacy.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/matvec_uniform.wgsl"),
    shader!("matmul_legacy_split", "matmul_legacy.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_portable.wgsl",
            "common/matvec_split.wgsl"),
    shader!("matvec_q8_dot4", "matvec_q8_dot4.wgsl"),
    shader!("matmul_ternary", "matmul_ternary.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/tile_f32.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_ternary_f16", "matmul_ternary.wgsl", prefix: "enable f16;\n", f16: true,
            subgroups: false, appended: "common/matmul_generic.wgsl", "common/tile_f16.wgsl",
            "common/matmul_tiled.wgsl", "common/matvec_portable.wgsl"),
    shader!("matmul_ternary_subgroups", "matmul_ternary.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_subgroups.wgsl"),
    shader!("matmul_ternary_uniform", "matmul_ternary.wgsl", subgroups: false,
            appended: "common/matmul_generic.wgsl", "common/matvec_uniform.wgsl"),
    shader!("matmul_ternary_split", "matmul_ternary.wgsl", subgroups: true,
            appended: "common/matmul_generic.wgsl", "common/matvec_portable.wgsl",
            "common/matvec_split.wgsl"),
    shader!("quantize_q8", "quantize_q8.wgsl"),
    shader!("rms_norm", "rms_norm.wgsl"),
    shader!("rope", "rope.wgsl"),
    shader!("softmax", "softmax.wgsl"),
    shader!("swiglu", "swiglu.wgsl"),
];

/// The shader called `name`.
pub fn find(name: &str) -> Option<&'static ShaderInfo> {
    ALL.iter().find(|s| s.name == name)
}
