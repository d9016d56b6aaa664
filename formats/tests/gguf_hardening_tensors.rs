//! Tensor-info and layout rules, truncation and empty files: bad bytes built
//! in code, each with the exact error variant it must produce.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gguf_common;

use gguf_common::Raw;
use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufError, GgufFile, GgufWriter, Value};

/// Header length: magic, version, tensor count, kv count.
const HDR: u64 = 24;

fn err(bytes: Vec<u8>) -> GgufError {
    GgufFile::from_bytes(bytes).unwrap_err()
}

fn one_tensor(name: &[u8], dims: &[u64], type_id: u32, offset: u64, data: usize) -> Vec<u8> {
    let mut r = Raw::header(3, 1, 0);
    r.tensor(name, dims, type_id, offset).pad(32).zeros(data);
    r.build()
}

#[test]
fn tensor_names() {
    assert!(matches!(
        err(one_tensor(b"", &[1], 0, 0, 32)),
        GgufError::TensorNameEmpty {
            index: 0,
            offset: HDR
        }
    ));
    match err(one_tensor(&[b'a'; 64], &[1], 0, 0, 32)) {
        GgufError::TensorNameTooLong {
            index: 0,
            offset: HDR,
            len: 64,
            max: 63,
        } => {}
        e => panic!("{e}"),
    }
    let f = GgufFile::from_bytes(one_tensor(&[b'a'; 63], &[1], 0, 0, 32)).unwrap();
    assert_eq!(f.tensors()[0].name.len(), 63);
    let mut r = Raw::header(3, 2, 0);
    r.tensor(b"w", &[8], 0, 0)
        .tensor(b"w", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    match err(r.build()) {
        GgufError::DuplicateTensorName {
            name,
            first_offset: HDR,
            offset,
        } => {
            assert_eq!((name.as_str(), offset), ("w", HDR + 33));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn dimension_rules() {
    let dims_at = HDR + 9 + 4;
    match err(one_tensor(b"w", &[1, 1, 1, 1, 1], 0, 0, 32)) {
        GgufError::BadDimCount {
            n_dims: 5,
            max: 4,
            offset,
            ..
        } => assert_eq!(offset, HDR + 9),
        e => panic!("{e}"),
    }
    assert!(matches!(
        err(one_tensor(b"w", &[], 0, 0, 32)),
        GgufError::BadDimCount { n_dims: 0, .. }
    ));
    match err(one_tensor(b"w", &[4, 0, 2], 0, 0, 32)) {
        GgufError::ZeroDimension {
            axis: 1, offset, ..
        } => assert_eq!(offset, dims_at + 8),
        e => panic!("{e}"),
    }
    for dims in [&[1u64 << 32, 1 << 32][..], &[1 << 62, 2], &[u64::MAX]] {
        match err(one_tensor(b"w", dims, 0, 0, 32)) {
            GgufError::ElementCountOverflow {
                dims: d,
                max,
                offset,
                ..
            } => {
                assert_eq!(
                    (d.as_slice(), max, offset),
                    (dims, i64::MAX as u64, dims_at)
                );
            }
            e => panic!("{dims:?}: {e}"),
        }
    }
}

#[test]
fn unknown_ggml_types() {
    for id in [4u32, 5, 31, 36, 40, u32::MAX] {
        match err(one_tensor(b"w", &[32], id, 0, 32)) {
            GgufError::UnknownGgmlType {
                id: found, offset, ..
            } => {
                assert_eq!((found, offset), (id, HDR + 9 + 4 + 8));
            }
            e => panic!("{id}: {e}"),
        }
    }
}

#[test]
fn row_not_a_whole_number_of_blocks() {
    match err(one_tensor(b"w", &[128, 2], GgmlType::Q4_K.id(), 0, 288)) {
        GgufError::RowNotBlockMultiple {
            ne0: 128,
            ty: GgmlType::Q4_K,
            block_size: 256,
            ..
        } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn byte_size_overflow() {
    match err(one_tensor(b"w", &[1 << 61], GgmlType::F64.id(), 0, 32)) {
        GgufError::ByteSizeOverflow {
            n_elements,
            ty: GgmlType::F64,
            max: u64::MAX,
            ..
        } => {
            assert_eq!(n_elements, 1 << 61);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn tensor_data_misaligned_overlapping_or_past_the_end() {
    match err(one_tensor(b"w", &[4], 0, 16, 64)) {
        GgufError::TensorMisaligned {
            value: 16,
            alignment: 32,
            offset,
            ..
        } => {
            assert_eq!(offset, HDR + 9 + 4 + 8 + 4);
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 2, 0);
    r.tensor(b"a", &[16], 0, 0)
        .tensor(b"b", &[16], 0, 32)
        .pad(32);
    let data_start = r.len();
    r.zeros(128);
    match err(r.build()) {
        GgufError::TensorOverlap {
            tensor,
            other,
            offset,
            other_end,
        } => {
            assert_eq!((tensor.as_str(), other.as_str()), ("b", "a"));
            assert_eq!((offset, other_end), (data_start + 32, data_start + 64));
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 1, 0);
    r.tensor(b"w", &[16], 0, 0).pad(32);
    let data_start = r.len();
    r.zeros(32);
    match err(r.build()) {
        GgufError::TensorPastEnd {
            offset,
            end,
            file_len,
            ..
        } => {
            assert_eq!(
                (offset, end, file_len),
                (data_start, data_start + 64, data_start + 32)
            );
        }
        e => panic!("{e}"),
    }
    let far = u64::MAX - 31;
    assert!(matches!(
        err(one_tensor(b"w", &[16], 0, far, 64)),
        GgufError::TensorPastEnd { end: u64::MAX, .. }
    ));
}

#[test]
fn out_of_order_tensors_with_gaps_are_accepted() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor(b"late", &[8], 0, 128)
        .tensor(b"early", &[8], 0, 0)
        .pad(32);
    let data_start = r.len();
    r.zeros(160);
    r.0[(data_start + 128) as usize] = 7;
    let f = GgufFile::from_bytes(r.build()).unwrap();
    assert_eq!(f.tensor_data(f.tensor("late").unwrap())[0], 7);
    assert_eq!(f.tensor("early").unwrap().absolute_offset(&f), data_start);
}

fn sample_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::from("llama"))
        .unwrap();
    w.add_metadata("llama.block_count", Value::U32(2)).unwrap();
    w.add_tensor("token_embd.weight", GgmlType::Q8_0, &[32, 2], vec![3; 68])
        .unwrap();
    w.add_tensor("output_norm.weight", GgmlType::F32, &[5], vec![1; 20])
        .unwrap();
    w.to_bytes()
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_file();
    GgufFile::from_bytes(bytes.clone()).unwrap();
    for len in 0..bytes.len() {
        // The file ends with the padding after the last tensor's data; cutting
        // into that padding leaves a valid file.
        let cut = bytes[..len].to_vec();
        let last_data_end = bytes.len() - 12;
        let r = GgufFile::from_bytes(cut);
        assert_eq!(r.is_ok(), len >= last_data_end, "length {len}");
    }
    // Cut inside the tensor count.
    match err(bytes[..12].to_vec()) {
        GgufError::Truncated {
            field,
            offset: 8,
            needed: 8,
            available: 4,
        } => {
            assert_eq!(field, "tensor_count");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn empty_but_valid_files() {
    let f = GgufFile::from_bytes(Raw::header(3, 0, 0).build()).unwrap();
    assert!(f.metadata().is_empty() && f.tensors().is_empty());
    assert_eq!((f.version(), f.alignment(), f.data_offset()), (3, 32, HDR));
    let mut r = Raw::header(2, 0, 0);
    r.pad(32);
    let f = GgufFile::from_bytes(r.build()).unwrap();
    assert_eq!((f.version(), f.data_offset()), (2, 32));
    let w = GgufWriter::new().to_bytes();
    assert_eq!(w.len(), 32);
    assert!(GgufFile::from_bytes(w).is_ok());
}
