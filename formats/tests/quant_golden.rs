#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every quant type against ggml's own output (tests/golden, written by
//! formats/scripts/make_goldens.py through llama-cpp-python's libggml-base):
//! dequantization bit for bit, quantization byte for byte, and the round-trip
//! limits of ggml's tests/test-quantize-fns.cpp with its metric and data.

use std::collections::BTreeSet;
use std::path::PathBuf;

use seldon_formats::GgmlType;
use seldon_formats::quant::{self, tolerance};
use serde_json::Value;

/// The types the golden contract covers, in llama.cpp's spelling.
const TYPES: [GgmlType; 17] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// ggml has no `to_float` for these, so their dequant files do not exist.
const NO_GGML_TO_FLOAT: [GgmlType; 1] = [GgmlType::Q8_1];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn manifest() -> Value {
    let path = golden_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run formats/scripts/make_goldens.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn entry(manifest: &Value, ty: GgmlType) -> &Value {
    manifest["types"]
        .get(ty.name())
        .unwrap_or_else(|| panic!("manifest has no entry for {ty}"))
}

fn has_file(manifest: &Value, ty: GgmlType, name: &str) -> bool {
    entry(manifest, ty)["files"].get(name).is_some()
}

fn read_bytes(ty: GgmlType, name: &str) -> Vec<u8> {
    let path = golden_dir().join(ty.name()).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(ty: GgmlType, name: &str) -> Vec<f32> {
    let bytes = read_bytes(ty, name);
    assert_eq!(bytes.len() % 4, 0, "{ty}/{name}");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Index and both values of the first element whose bits differ.
fn first_bit_difference(ours: &[f32], ggml: &[f32]) -> Option<(usize, f32, f32)> {
    ours.iter()
        .zip(ggml)
        .enumerate()
        .find(|(_, (a, b))| a.to_bits() != b.to_bits())
        .map(|(i, (a, b))| (i, *a, *b))
}

#[test]
fn manifest_covers_every_type_with_ggml_sizes() {
    let m = manifest();
    assert_eq!(m["n"], tolerance::TEST_SIZE);
    assert_eq!(m["ggml"]["llama_cpp_python"], "0.3.36");
    for ty in TYPES {
        assert!(quant::supports(ty), "{ty}");
        let e = entry(&m, ty);
        assert_eq!(e["block_size"], ty.block_size(), "{ty}");
        assert_eq!(e["type_size"], ty.type_size(), "{ty}");
        let missing_dequant = !has_file(&m, ty, "dequant.f32");
        assert_eq!(missing_dequant, NO_GGML_TO_FLOAT.contains(&ty), "{ty}");
        for name in ["input.f32", "quant.bin"] {
            assert!(has_file(&m, ty, name), "{ty}/{name}");
        }
        if !missing_dequant {
            for name in ["random.bin", "random_dequant.f32"] {
                assert!(has_file(&m, ty, name), "{ty}/{name}");
            }
        }
    }
}

#[test]
fn dequantize_matches_ggml_bit_for_bit() {
    let m = manifest();
    let mut checked = BTreeSet::new();
    for ty in TYPES {
        for (bin, want) in [
            ("random.bin", "random_dequant.f32"),
            ("quant.bin", "dequant.f32"),
        ] {
            if !has_file(&m, ty, want) {
                continue;
            }
            let src = read_bytes(ty, bin);
            let ggml = read_f32(ty, want);
            let ours = quant::dequantize_to_vec(ty, &src).unwrap();
            assert_eq!(ours.len(), ggml.len(), "{ty}/{bin}");
            if let Some((i, a, b)) = first_bit_difference(&ours, &ggml) {
                panic!(
                    "{ty}/{bin}: element {i} is {a:e} ({:#010x}), ggml {b:e} ({:#010x})",
                    a.to_bits(),
                    b.to_bits()
                );
            }
            checked.insert((ty, bin));
        }
    }
    // Both files for every type but those ggml cannot dequantize.
    assert_eq!(checked.len(), 2 * (TYPES.len() - NO_GGML_TO_FLOAT.len()));
}

#[test]
fn quantize_matches_ggml_byte_for_byte() {
    for ty in TYPES {
        let x = read_f32(ty, "input.f32");
        let ggml = read_bytes(ty, "quant.bin");
        let ours = quant::quantize_to_vec(ty, &x).unwrap();
        assert_eq!(ours.len(), ggml.len(), "{ty}");
        if let Some(i) = ours.iter().zip(&ggml).position(|(a, b)| a != b) {
            let size = ty.type_size() as usize;
            panic!(
                "{ty}: byte {i} (block {}, offset {}) is {:#04x}, ggml wrote {:#04x}",
                i / size,
                i % size,
                ours[i],
                ggml[i]
            );
        }
    }
}

#[test]
fn input_is_test_quantize_fns_data() {
    let ours = tolerance::generate_data(0.0, tolerance::TEST_SIZE);
    for ty in TYPES {
        let file = read_f32(ty, "input.f32");
        assert_eq!(first_bit_difference(&ours, &file), None, "{ty}");
        assert_eq!(file.len(), ours.len());
    }
}

#[test]
fn round_trip_errors_are_within_test_quantize_fns_limits() {
    let m = manifest();
    let x = tolerance::generate_data(0.0, tolerance::TEST_SIZE);
    for ty in TYPES {
        let limit = tolerance::max_total_error(ty);
        // The script records the vendored test's limit; ours must be the same.
        if let Some(ggml_limit) = entry(&m, ty)["ggml_max_total_error"].as_f64() {
            assert_eq!(limit, ggml_limit as f32, "{ty}");
        }
        let q = quant::quantize_to_vec(ty, &x).unwrap();
        let y = quant::dequantize_to_vec(ty, &q).unwrap();
        let total = tolerance::array_rmse(&y, &x);
        assert!(total < limit, "{ty}: total error {total} >= {limit}");
        if has_file(&m, ty, "dequant.f32") {
            let ggml = read_f32(ty, "dequant.f32");
            let reference = tolerance::array_rmse(&y, &ggml);
            let max = tolerance::MAX_QUANTIZATION_REFERENCE_ERROR;
            assert!(
                reference < max,
                "{ty}: reference error {reference} >= {max}"
            );
            if let Some(ggml_total) = entry(&m, ty)["ggml_total_rmse"].as_f64() {
                // The same metric on ggml's own round trip, as the script computed it.
                assert_eq!(tolerance::array_rmse(&ggml, &x), ggml_total as f32, "{ty}");
            }
        }
    }
}

#[test]
fn block_structs_have_ggml_type_sizes() {
    use quant::*;
    let sizes = [
        (GgmlType::F32, size_of::<f32>()),
        (GgmlType::F16, size_of::<half::f16>()),
        (GgmlType::BF16, size_of::<half::bf16>()),
        (GgmlType::Q4_0, size_of::<BlockQ4_0>()),
        (GgmlType::Q4_1, size_of::<BlockQ4_1>()),
        (GgmlType::Q5_0, size_of::<BlockQ5_0>()),
        (GgmlType::Q5_1, size_of::<BlockQ5_1>()),
        (GgmlType::Q8_0, size_of::<BlockQ8_0>()),
        (GgmlType::Q8_1, size_of::<BlockQ8_1>()),
        (GgmlType::Q2_K, size_of::<BlockQ2K>()),
        (GgmlType::Q3_K, size_of::<BlockQ3K>()),
        (GgmlType::Q4_K, size_of::<BlockQ4K>()),
        (GgmlType::Q5_K, size_of::<BlockQ5K>()),
        (GgmlType::Q6_K, size_of::<BlockQ6K>()),
        (GgmlType::Q8_K, size_of::<BlockQ8K>()),
        (GgmlType::TQ1_0, size_of::<BlockTQ1_0>()),
        (GgmlType::TQ2_0, size_of::<BlockTQ2_0>()),
    ];
    assert_eq!(sizes.map(|(t, _)| t), TYPES);
    for (ty, size) in sizes {
        assert_eq!(size as u64, ty.type_size(), "{ty}");
    }
}
