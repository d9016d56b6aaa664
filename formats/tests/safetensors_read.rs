#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! safetensors files written by the reference `safetensors` crate, read back
//! through `SafetensorsFile`, plus files broken in the ways real downloads break.

use std::collections::HashMap;
use std::path::PathBuf;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use seldon_formats::GgmlType;
use seldon_formats::safetensors::{Dtype, SafetensorsError, SafetensorsFile};

fn tmp_path(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("safetensors_read");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = tmp_path(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A file with one tensor of each weight dtype, one integer tensor and metadata.
fn sample_file(name: &str) -> (PathBuf, Vec<f32>) {
    let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.25).collect();
    let f32_data = f32_bytes(&values);
    let f16_data: Vec<u8> = values
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16_data: Vec<u8> = values
        .iter()
        .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
        .collect();
    let i32_data: Vec<u8> = [7i32, -3].iter().flat_map(|x| x.to_le_bytes()).collect();
    let tensors = vec![
        (
            "a.weight",
            TensorView::new(Dtype::F32, vec![2, 3], &f32_data).unwrap(),
        ),
        (
            "b.weight",
            TensorView::new(Dtype::F16, vec![3, 2], &f16_data).unwrap(),
        ),
        (
            "c.weight",
            TensorView::new(Dtype::BF16, vec![6], &bf16_data).unwrap(),
        ),
        (
            "d.ids",
            TensorView::new(Dtype::I32, vec![2], &i32_data).unwrap(),
        ),
    ];
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("note".to_string(), "seldon test".to_string()),
    ]);
    let bytes = safetensors::serialize(tensors, Some(meta)).unwrap();
    (write(name, &bytes), values)
}

#[test]
fn reads_tensors_metadata_and_offsets() {
    let (path, _) = sample_file("sample.safetensors");
    let file_bytes = std::fs::read(&path).unwrap();
    let st = SafetensorsFile::open(&path).unwrap();

    let header_len = u64::from_le_bytes(file_bytes[..8].try_into().unwrap());
    assert_eq!(st.data_offset(), 8 + header_len);
    assert_eq!(st.file_len(), file_bytes.len() as u64);
    assert_eq!(st.metadata().get("format").map(String::as_str), Some("pt"));
    assert_eq!(st.metadata().len(), 2);

    let names: Vec<&str> = st.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 4);
    // File order means strictly increasing, contiguous offsets.
    let mut next = st.data_offset();
    for t in st.tensors() {
        assert_eq!(t.offset, next, "{}", t.name);
        next += t.n_bytes;
        // Zero-copy: the slice is exactly the file's bytes at the absolute offset.
        let data = st.tensor_data(t);
        assert_eq!(
            data,
            &file_bytes[t.offset as usize..(t.offset + t.n_bytes) as usize]
        );
    }
    assert_eq!(next, st.file_len());

    let a = st.tensor("a.weight").unwrap();
    assert_eq!(a.dtype, Dtype::F32);
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.ggml_dims(), vec![3, 2]);
    assert_eq!(a.n_elements(), 6);
    assert_eq!(a.n_bytes, 24);
    assert_eq!(a.ggml_type(), Some(GgmlType::F32));
    assert!(a.is_supported());
    assert_eq!(
        st.tensor("b.weight").unwrap().ggml_type(),
        Some(GgmlType::F16)
    );
    assert_eq!(
        st.tensor("c.weight").unwrap().ggml_type(),
        Some(GgmlType::BF16)
    );
    let d = st.tensor("d.ids").unwrap();
    assert_eq!(d.dtype, Dtype::I32);
    assert!(!d.is_supported());
    assert_eq!(d.ggml_type(), None);
    assert!(st.tensor("missing").is_none());
}

#[test]
fn converts_float_dtypes_to_f32() {
    let (path, values) = sample_file("convert.safetensors");
    let st = SafetensorsFile::open(&path).unwrap();
    // The sample values are exact in f16 and bf16, so all three agree bit for bit.
    assert_eq!(st.to_f32_vec("a.weight").unwrap(), values);
    assert_eq!(st.to_f32_vec("b.weight").unwrap(), values);
    assert_eq!(st.to_f32_vec("c.weight").unwrap(), values);
}

#[test]
fn rounding_dtypes_convert_like_half() {
    let values = [0.1f32, -3.3, 65504.0, 1e-6, f32::INFINITY];
    let f16_data: Vec<u8> = values
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16_data: Vec<u8> = values
        .iter()
        .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
        .collect();
    let bytes = safetensors::serialize(
        vec![
            (
                "h",
                TensorView::new(Dtype::F16, vec![5], &f16_data).unwrap(),
            ),
            (
                "b",
                TensorView::new(Dtype::BF16, vec![5], &bf16_data).unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    let st = SafetensorsFile::open(&write("rounding.safetensors", &bytes)).unwrap();
    let want_h: Vec<f32> = values.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let want_b: Vec<f32> = values.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
    assert_eq!(st.to_f32_vec("h").unwrap(), want_h);
    assert_eq!(st.to_f32_vec("b").unwrap(), want_b);
    assert!(st.metadata().is_empty());
}

#[test]
fn unsupported_dtype_and_missing_tensor_are_errors() {
    let (path, _) = sample_file("errors.safetensors");
    let st = SafetensorsFile::open(&path).unwrap();
    let err = st.to_f32_vec("d.ids").unwrap_err();
    assert!(
        matches!(
            err,
            SafetensorsError::UnsupportedDtype {
                dtype: Dtype::I32,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("d.ids"), "{err}");
    let err = st.to_f32_vec("nope").unwrap_err();
    assert!(
        matches!(err, SafetensorsError::TensorNotFound { .. }),
        "{err}"
    );
}

#[test]
fn empty_tensor_list_is_valid() {
    let bytes = safetensors::serialize(Vec::<(&str, TensorView<'_>)>::new(), None).unwrap();
    let st = SafetensorsFile::open(&write("empty_list.safetensors", &bytes)).unwrap();
    assert!(st.tensors().is_empty());
    assert_eq!(st.data_offset(), st.file_len());
}
