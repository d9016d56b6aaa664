#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Broken safetensors files: each must give a typed error naming the file, never a panic.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::TensorView;
use seldon_formats::safetensors::{Dtype, SafetensorsError, SafetensorsFile};

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("safetensors_bad");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn good_bytes() -> Vec<u8> {
    let data = vec![0u8; 16];
    safetensors::serialize(
        vec![("w", TensorView::new(Dtype::F32, vec![2, 2], &data).unwrap())],
        Some(HashMap::new()),
    )
    .unwrap()
}

fn open_err(name: &str, bytes: &[u8]) -> SafetensorsError {
    let path = write(name, bytes);
    let err = SafetensorsFile::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(name), "error should name the file: {msg}");
    assert!(!msg.contains('\n'), "error should be one line: {msg}");
    err
}

#[test]
fn missing_file_is_io_error() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-file.safetensors");
    let err = SafetensorsFile::open(&path).unwrap_err();
    assert!(matches!(err, SafetensorsError::Io { .. }), "{err}");
}

#[test]
fn empty_and_short_files_are_truncated() {
    for (name, len) in [("empty.safetensors", 0usize), ("short.safetensors", 5)] {
        let err = open_err(name, &vec![1u8; len]);
        assert!(
            matches!(err, SafetensorsError::Truncated { len: l, .. } if l == len as u64),
            "{err}"
        );
    }
}

#[test]
fn truncated_header() {
    let good = good_bytes();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    // Cut inside the JSON header: the stored length now runs past the end.
    let err = open_err("truncated_header.safetensors", &good[..8 + header_len / 2]);
    assert!(
        matches!(err, SafetensorsError::HeaderPastEnd { header_len: h, .. } if h == header_len as u64),
        "{err}"
    );
}

#[test]
fn truncated_data() {
    let good = good_bytes();
    let err = open_err("truncated_data.safetensors", &good[..good.len() - 4]);
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
}

#[test]
fn header_length_past_end() {
    let mut bytes = good_bytes();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = open_err("huge_len.safetensors", &bytes);
    assert!(
        matches!(
            err,
            SafetensorsError::HeaderPastEnd {
                header_len: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_json() {
    let err = open_err(
        "bad_json.safetensors",
        &with_header("{\"w\": {\"dtype\": ", &[]),
    );
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
    let err = open_err("not_utf8.safetensors", &with_header("\u{0}", &[0xff, 0xfe]));
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
    let mut bytes = 2u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    let err = open_err("invalid_utf8.safetensors", &bytes);
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
}

#[test]
fn inconsistent_layouts() {
    // Byte length that does not match shape x dtype.
    let err = open_err(
        "bad_size.safetensors",
        &with_header(
            r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            &[0; 8],
        ),
    );
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
    // A gap between tensors.
    let err = open_err(
        "gap.safetensors",
        &with_header(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
            &[0; 12],
        ),
    );
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
    // A shape whose element count overflows.
    let err = open_err(
        "overflow.safetensors",
        &with_header(
            r#"{"w":{"dtype":"F32","shape":[18446744073709551615,4],"data_offsets":[0,4]}}"#,
            &[0; 4],
        ),
    );
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
    // An unknown dtype.
    let err = open_err(
        "unknown_dtype.safetensors",
        &with_header(
            r#"{"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
            &[0; 1],
        ),
    );
    assert!(matches!(err, SafetensorsError::Parse { .. }), "{err}");
}
