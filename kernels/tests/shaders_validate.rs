//! Every WGSL file under shaders/ parses and validates with naga, with no GPU:
//! a kernel's file with the helper the registry appends to it (`appended`),
//! a helper under common/ as part of the kernels that append it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use naga::valid::Capabilities;
use seldon_kernels::shaders::{ALL, PORTABLE_CAPABILITIES, validate_wgsl, validate_wgsl_with};

/// DESIGN.md asks for WGSL files "under ~400 lines"; this is the hard stop.
const MAX_WGSL_LINES: usize = 450;

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders")
}

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    let rel = path.strip_prefix(shaders_dir()).unwrap();
    rel.to_string_lossy().replace('\\', "/")
}

#[test]
fn every_wgsl_file_validates() {
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    assert!(
        !files.is_empty(),
        "no .wgsl files under {}",
        shaders_dir().display()
    );
    let mut failures = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let name = relative(path);
        let users: Vec<_> = ALL
            .iter()
            .filter(|s| s.path == name || s.appended.contains(&name.as_str()))
            .collect();
        if users.is_empty() {
            failures.push(format!("{name}: neither registered nor appended"));
        }
        for shader in users {
            if let Err(e) = validate_wgsl(shader.path, shader.source) {
                failures.push(e.to_string());
            }
        }
        let lines = source.lines().count();
        if lines > MAX_WGSL_LINES {
            failures.push(format!(
                "{name}: {lines} lines, above {MAX_WGSL_LINES}: split it"
            ));
        }
        if !source.trim_start().starts_with("//") {
            failures.push(format!("{name}: no header comment"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_wgsl_file_is_registered_and_vice_versa() {
    let mut files = Vec::new();
    wgsl_files(&shaders_dir(), &mut files);
    // Files under common/ are helpers, not kernels with entry points.
    let on_disk: Vec<String> = files
        .iter()
        .map(|p| relative(p))
        .filter(|p| !p.starts_with("common/"))
        .collect();
    for file in &on_disk {
        assert!(
            ALL.iter().any(|s| s.path == file.as_str()),
            "{file} is not in shaders::ALL"
        );
    }
    for shader in ALL {
        assert!(
            on_disk.iter().any(|f| f == shader.path),
            "{} is missing",
            shader.path
        );
        let mut text = shader.prefix.to_owned()
            + &std::fs::read_to_string(shaders_dir().join(shader.path)).unwrap();
        for appended in shader.appended {
            assert!(appended.starts_with("common/"), "{appended}");
            text += &std::fs::read_to_string(shaders_dir().join(appended)).unwrap();
        }
        assert_eq!(
            text, shader.source,
            "{} differs from the compiled-in copy",
            shader.path
        );
    }
    let mut names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "duplicate shader names");
}

#[test]
fn feature_flags_match_what_each_shader_uses() {
    for shader in ALL {
        let mut caps = PORTABLE_CAPABILITIES;
        if shader.needs_f16 {
            caps |= Capabilities::SHADER_FLOAT16;
        }
        if shader.needs_subgroups {
            caps |= Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER;
        }
        // A shader that validates only with more capabilities than it declares
        // would fail to compile on devices without them.
        if let Err(e) = validate_wgsl_with(shader.name, shader.source, caps) {
            panic!("{} uses a capability it does not declare: {e}", shader.name);
        }
    }
}
