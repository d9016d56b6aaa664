//! GgufWriter -> GgufFile round trips: random metadata of every value type
//! (nested arrays included), random tensors of several types, versions 2 and 3,
//! in memory and through a file on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::gguf::{
    ALL_VALUE_TYPES, Array, GgufError, GgufFile, GgufWriter, MAX_ARRAY_DEPTH, Value, ValueType,
};

/// Equality that compares floats by bits, so NaN payloads must survive too.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.elem_type == y.elem_type
                && x.items.len() == y.items.len()
                && x.items.iter().zip(&y.items).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

/// Deepest nesting the random values reach; kept below the cap so that cases
/// stay small (the cap itself is tested below and in gguf_hardening).
const GEN_DEPTH: usize = 3;

fn arb_type(depth: usize) -> impl Strategy<Value = ValueType> {
    let types: Vec<ValueType> = ALL_VALUE_TYPES
        .iter()
        .copied()
        .filter(|t| depth < GEN_DEPTH || *t != ValueType::Array)
        .collect();
    prop::sample::select(types)
}

/// A value of type `t`; `depth` is how many arrays enclose it.
fn arb_value_of(t: ValueType, depth: usize) -> BoxedStrategy<Value> {
    match t {
        ValueType::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        ValueType::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        ValueType::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        ValueType::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        ValueType::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        ValueType::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        ValueType::F32 => any::<u32>()
            .prop_map(|b| Value::F32(f32::from_bits(b)))
            .boxed(),
        ValueType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueType::String => any::<String>().prop_map(Value::String).boxed(),
        ValueType::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        ValueType::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        ValueType::F64 => any::<u64>()
            .prop_map(|b| Value::F64(f64::from_bits(b)))
            .boxed(),
        ValueType::Array => arb_type(depth + 1)
            .prop_flat_map(move |et| {
                prop::collection::vec(arb_value_of(et, depth + 1), 0..6)
                    .prop_map(move |items| Value::Array(Array::new(et, items)))
            })
            .boxed(),
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_type(0).prop_flat_map(|t| arb_value_of(t, 0))
}

const TENSOR_TYPES: [GgmlType; 9] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::I8,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::TQ2_0,
];

#[derive(Debug, Clone)]
struct TensorSpec {
    ty: GgmlType,
    dims: Vec<u64>,
    data: Vec<u8>,
}

fn arb_tensor() -> impl Strategy<Value = TensorSpec> {
    (
        prop::sample::select(TENSOR_TYPES.to_vec()),
        1u64..3,
        prop::collection::vec(1u64..4, 0..4),
    )
        .prop_flat_map(|(ty, blocks, rest)| {
            let mut dims = vec![blocks * ty.block_size()];
            dims.extend(rest);
            let n: u64 = dims.iter().product();
            let len = ty.bytes_for(n).unwrap() as usize;
            prop::collection::vec(any::<u8>(), len).prop_map(move |data| TensorSpec {
                ty,
                dims: dims.clone(),
                data,
            })
        })
}

#[derive(Debug, Clone)]
struct FileSpec {
    version: u32,
    alignment: Option<u32>,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

fn arb_file() -> impl Strategy<Value = FileSpec> {
    (
        prop::sample::select(vec![2u32, 3]),
        prop::option::of(prop::sample::select(vec![1u32, 8, 32, 64, 256, 4096])),
        prop::collection::vec(("[a-z_]{1,12}", arb_value()), 0..8),
        prop::collection::vec(arb_tensor(), 0..5),
    )
        .prop_map(|(version, alignment, kvs, tensors)| FileSpec {
            version,
            alignment,
            // An index prefix keeps the random keys unique.
            metadata: kvs
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| (format!("k{i}.{k}"), v))
                .collect(),
            tensors,
        })
}

fn build(spec: &FileSpec) -> (GgufWriter, Vec<(String, Value)>) {
    let mut w = GgufWriter::with_version(spec.version).unwrap();
    let mut expected = Vec::new();
    if let Some(a) = spec.alignment {
        w.add_metadata("general.alignment", Value::U32(a)).unwrap();
        expected.push(("general.alignment".to_owned(), Value::U32(a)));
    }
    for (k, v) in &spec.metadata {
        w.add_metadata(k.clone(), v.clone()).unwrap();
        expected.push((k.clone(), v.clone()));
    }
    for (i, t) in spec.tensors.iter().enumerate() {
        w.add_tensor(
            format!("blk.{i}.ffn_down.weight"),
            t.ty,
            &t.dims,
            t.data.clone(),
        )
        .unwrap();
    }
    (w, expected)
}

fn check(spec: &FileSpec, expected: &[(String, Value)], f: &GgufFile) {
    assert_eq!(f.version(), spec.version);
    assert_eq!(f.alignment(), u64::from(spec.alignment.unwrap_or(32)));
    assert!(f.data_offset().is_multiple_of(f.alignment()));
    assert_eq!(f.metadata().len(), expected.len());
    for ((k, v), (ek, ev)) in f.metadata().iter().zip(expected) {
        assert_eq!(k, ek);
        assert!(same(v, ev), "{k}: {v:?} != {ev:?}");
        assert!(same(f.get(k).unwrap(), ev));
    }
    assert_eq!(f.tensors().len(), spec.tensors.len());
    for (i, (info, t)) in f.tensors().iter().zip(&spec.tensors).enumerate() {
        assert_eq!(info.name, format!("blk.{i}.ffn_down.weight"));
        assert_eq!((&info.dims, info.ty), (&t.dims, t.ty));
        assert_eq!(info.n_elements, t.dims.iter().product::<u64>());
        assert_eq!(info.n_bytes, t.data.len() as u64);
        assert!(info.offset.is_multiple_of(f.alignment()));
        assert_eq!(f.tensor(&info.name), Some(info));
        assert_eq!(f.tensor_data(info), t.data.as_slice());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn written_files_read_back_equal(spec in arb_file()) {
        let (w, expected) = build(&spec);
        let bytes = w.to_bytes();
        let mut streamed = Vec::new();
        w.write(&mut streamed).unwrap();
        prop_assert_eq!(&streamed, &bytes);
        prop_assert!((bytes.len() as u64).is_multiple_of(w.alignment()));
        let f = GgufFile::from_bytes(bytes).unwrap();
        check(&spec, &expected, &f);
    }
}

fn temp_path(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "seldon-gguf-{tag}-{}-{nanos}.gguf",
        std::process::id()
    ))
}

#[test]
fn open_maps_a_file_written_to_disk() {
    let spec = FileSpec {
        version: 2,
        alignment: Some(64),
        metadata: vec![
            ("general.architecture".to_owned(), Value::from("llama")),
            ("llama.context_length".to_owned(), Value::I32(8192)),
            ("llama.rope.freq_base".to_owned(), Value::F64(1e5)),
            (
                "tokenizer.ggml.add_bos_token".to_owned(),
                Value::Bool(false),
            ),
            (
                "tokenizer.ggml.tokens".to_owned(),
                Value::Array(Array::new(
                    ValueType::String,
                    vec!["<s>".into(), "Ġthe".into()],
                )),
            ),
        ],
        tensors: vec![TensorSpec {
            ty: GgmlType::Q8_0,
            dims: vec![64, 3],
            data: (0..204).map(|i| i as u8).collect(),
        }],
    };
    let (w, expected) = build(&spec);
    let path = temp_path("open");
    w.write_to_path(&path).unwrap();
    let f = GgufFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    let f = f.unwrap();
    check(&spec, &expected, &f);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.get_u32("llama.context_length"), Some(8192));
    assert_eq!(f.get_u64("llama.context_length"), Some(8192));
    assert_eq!(f.get_f32("llama.rope.freq_base"), Some(1e5));
    assert_eq!(f.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    assert_eq!(f.get_str("llama.context_length"), None);
    assert_eq!(
        f.get_array("tokenizer.ggml.tokens").unwrap().strings(),
        Some(vec!["<s>", "Ġthe"])
    );
    let t = f.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!((t.n_rows(), t.ne()), (3, [64, 3, 1, 1]));
    assert_eq!(t.absolute_offset(&f), f.data_offset());
    assert_eq!(&f.bytes()[..4], b"GGUF");
}

#[test]
fn open_reports_missing_and_empty_files() {
    let path = temp_path("missing");
    assert!(matches!(GgufFile::open(&path), Err(GgufError::Io { .. })));
    std::fs::write(&path, b"").unwrap();
    let r = GgufFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(r, Err(GgufError::Empty)));
}

#[test]
fn nesting_at_the_cap_round_trips_and_past_it_is_refused() {
    let mut v = Value::Array(Array::new(ValueType::U8, vec![Value::U8(9)]));
    for _ in 1..MAX_ARRAY_DEPTH {
        v = Value::Array(Array::new(ValueType::Array, vec![v]));
    }
    let mut w = GgufWriter::new();
    w.add_metadata("deep", v.clone()).unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert!(same(f.get("deep").unwrap(), &v));
    let deeper = Value::Array(Array::new(ValueType::Array, vec![v]));
    assert!(matches!(
        GgufWriter::new().add_metadata("deeper", deeper),
        Err(GgufError::NestingTooDeep { .. })
    ));
}
