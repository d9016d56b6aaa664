//! naga-based checks that need no GPU: WGSL validation with the capabilities a
//! device may grant, and Rust params structs against their WGSL twins.

use naga::valid::{Capabilities, ValidationFlags, Validator};

use crate::error::{Error, Result};

/// What a shader may use without any optional feature. `pack2x16float` /
/// `unpack2x16float` (f16 KV caches, f16 fields of quant blocks) are core WGSL,
/// but naga gates them behind SHADER_FLOAT16_IN_FLOAT32, which wgpu grants from
/// the downlevel flag SHADER_F16_IN_F32: present on every WebGPU-class device,
/// absent on GLES and on Mesa Vulkan drivers without SHADER_F16. There, such a
/// pipeline fails to build with `Error::Shader` rather than at run time.
pub const PORTABLE_CAPABILITIES: Capabilities = Capabilities::SHADER_FLOAT16_IN_FLOAT32;

/// Everything seldon may request from a device (f16, subgroups, i64). Shaders
/// are validated against this set: anything beyond it could never run.
pub const DEVICE_CAPABILITIES: Capabilities = PORTABLE_CAPABILITIES
    .union(Capabilities::SHADER_FLOAT16)
    .union(Capabilities::SUBGROUP)
    .union(Capabilities::SUBGROUP_BARRIER)
    .union(Capabilities::SHADER_INT64);

/// Parses and validates WGSL `source` (named `name` in errors) with every
/// capability a device may grant.
pub fn validate_wgsl(name: &str, source: &str) -> Result<naga::Module> {
    validate_wgsl_with(name, source, DEVICE_CAPABILITIES)
}

/// Parses and validates WGSL `source` allowing only `capabilities`.
pub fn validate_wgsl_with(
    name: &str,
    source: &str,
    capabilities: Capabilities,
) -> Result<naga::Module> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::Shader {
        name: name.to_owned(),
        message: e.emit_to_string_with_path(source, name),
    })?;
    Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .map_err(|e| Error::Shader {
            name: name.to_owned(),
            message: e.emit_to_string_with_path(source, name),
        })?;
    Ok(module)
}

/// One field of a Rust params struct: name, byte offset and byte size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Field name (must equal the WGSL member name).
    pub name: &'static str,
    /// `offset_of!`.
    pub offset: usize,
    /// `size_of` of the field's type.
    pub size: usize,
}

/// The size of the field that `project` picks, without needing a value.
pub fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The [`FieldLayout`]s of a Rust struct: `params_layout!(CopyParams, n_vec4, _pad0)`.
#[macro_export]
macro_rules! params_layout {
    ($t:ty, $($field:ident),+ $(,)?) => {
        [$(
            $crate::shaders::FieldLayout {
                name: stringify!($field),
                offset: ::core::mem::offset_of!($t, $field),
                size: $crate::shaders::field_size::<$t, _>(|s: &$t| &s.$field),
            }
        ),+]
    };
}

/// Checks that WGSL struct `wgsl_struct` in `source` has exactly the members
/// `fields` (same names, order, offsets, sizes) and the size `rust_size`.
/// Returns a description of every difference.
pub fn check_params_layout(
    source: &str,
    wgsl_struct: &str,
    rust_size: usize,
    fields: &[FieldLayout],
) -> std::result::Result<(), String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut layouter = naga::proc::Layouter::default();
    layouter
        .update(module.to_ctx())
        .map_err(|e| format!("layout: {e}"))?;
    let Some((_, ty)) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(wgsl_struct))
    else {
        return Err(format!("no struct {wgsl_struct} in the shader"));
    };
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        return Err(format!("{wgsl_struct} is not a struct"));
    };
    let mut problems = Vec::new();
    if *span as usize != rust_size {
        problems.push(format!("size: WGSL {span}, Rust {rust_size}"));
    }
    if members.len() != fields.len() {
        problems.push(format!(
            "member count: WGSL {}, Rust {}",
            members.len(),
            fields.len()
        ));
    }
    for (m, f) in members.iter().zip(fields) {
        let name = m.name.as_deref().unwrap_or("?");
        let size = layouter[m.ty].size as usize;
        if name != f.name || m.offset as usize != f.offset || size != f.size {
            problems.push(format!(
                "WGSL {name} @{} ({size} B) vs Rust {} @{} ({} B)",
                m.offset, f.name, f.offset, f.size
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{wgsl_struct}: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "struct P { a: u32, b: f32, c: vec2<u32>, }\n\
                       @group(0) @binding(0) var<uniform> p: P;\n\
                       @compute @workgroup_size(1) fn main() { _ = p.a; }";

    #[repr(C)]
    struct Good {
        a: u32,
        b: f32,
        c: [u32; 2],
    }

    #[repr(C)]
    struct Swapped {
        b: f32,
        a: u32,
        c: [u32; 2],
    }

    #[repr(C)]
    struct Short {
        a: u32,
        b: f32,
    }

    #[test]
    fn matching_struct_passes() {
        let fields = crate::params_layout!(Good, a, b, c);
        assert_eq!(
            check_params_layout(SRC, "P", size_of::<Good>(), &fields),
            Ok(())
        );
    }

    #[test]
    fn mismatches_are_reported() {
        let fields = crate::params_layout!(Swapped, b, a, c);
        let err = check_params_layout(SRC, "P", size_of::<Swapped>(), &fields).unwrap_err();
        assert!(err.contains("WGSL a @0"), "{err}");
        let fields = crate::params_layout!(Short, a, b);
        let err = check_params_layout(SRC, "P", size_of::<Short>(), &fields).unwrap_err();
        assert!(
            err.contains("size: WGSL 16, Rust 8") && err.contains("member count"),
            "{err}"
        );
        assert!(check_params_layout(SRC, "Q", 16, &fields).is_err());
    }

    #[test]
    fn validation_rejects_bad_wgsl_and_missing_capabilities() {
        assert!(validate_wgsl("ok", SRC).is_ok());
        let bad = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }";
        assert!(matches!(
            validate_wgsl("bad", bad),
            Err(Error::Shader { .. })
        ));
        let f16 = "enable f16;\n@compute @workgroup_size(1) fn main() { let x = 1.0h; _ = x; }";
        assert!(validate_wgsl("f16", f16).is_ok());
        assert!(validate_wgsl_with("f16", f16, PORTABLE_CAPABILITIES).is_err());
    }
}
