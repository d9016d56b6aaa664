//! Mutated valid files (bit flips, overwritten fields, inserted and deleted
//! bytes, truncation) never make the reader panic, and whatever it accepts is
//! internally consistent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use seldon_formats::GgmlType;
use seldon_formats::gguf::{Array, GgufFile, GgufWriter, Value, ValueType};

/// Valid files that between them use every value type, nested arrays, a
/// non-default alignment, both versions and several tensor types.
fn base_files() -> Vec<Vec<u8>> {
    let mut a = GgufWriter::new();
    a.add_metadata("general.architecture", "llama".into())
        .unwrap();
    a.add_metadata("general.alignment", Value::U32(64)).unwrap();
    a.add_metadata("llama.block_count", Value::U32(2)).unwrap();
    a.add_metadata("llama.rope.freq_base", Value::F32(1e4))
        .unwrap();
    let tokens = ["<s>", "</s>", "a", "ab", "Ġthe", "é"]
        .map(Value::from)
        .to_vec();
    a.add_metadata(
        "tokenizer.ggml.tokens",
        Array::new(ValueType::String, tokens).into(),
    )
    .unwrap();
    let scores = (0..6).map(|i| Value::F32(i as f32)).collect();
    a.add_metadata(
        "tokenizer.ggml.scores",
        Array::new(ValueType::F32, scores).into(),
    )
    .unwrap();
    a.add_tensor("token_embd.weight", GgmlType::Q8_0, &[32, 6], vec![1; 204])
        .unwrap();
    a.add_tensor(
        "blk.0.ffn_down.weight",
        GgmlType::Q4_K,
        &[256, 2],
        vec![2; 288],
    )
    .unwrap();
    a.add_tensor("output_norm.weight", GgmlType::F32, &[32], vec![3; 128])
        .unwrap();

    let mut b = GgufWriter::with_version(2).unwrap();
    let scalars = [
        Value::U8(1),
        Value::I8(-1),
        Value::U16(2),
        Value::I16(-2),
        Value::U32(3),
        Value::I32(-3),
        Value::F32(f32::NAN),
        Value::Bool(true),
        Value::U64(4),
        Value::I64(-4),
        Value::F64(0.5),
        Value::from(""),
    ];
    for (i, v) in scalars.into_iter().enumerate() {
        b.add_metadata(format!("s.{i}"), v).unwrap();
    }
    let inner = Array::new(ValueType::I16, vec![Value::I16(7), Value::I16(8)]);
    let nested = Array::new(ValueType::Array, vec![inner.clone().into(), inner.into()]);
    b.add_metadata(
        "n",
        Array::new(ValueType::Array, vec![nested.into()]).into(),
    )
    .unwrap();
    b.add_tensor("t", GgmlType::TQ2_0, &[256], vec![4; 66])
        .unwrap();
    b.add_tensor("u", GgmlType::F16, &[3, 2, 2, 2], vec![5; 48])
        .unwrap();

    vec![a.to_bytes(), b.to_bytes(), GgufWriter::new().to_bytes()]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    /// Overwrites 8 bytes with a value that stresses counts and offsets.
    SetU64(usize, u64),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        0u64,
        1,
        31,
        32,
        63,
        64,
        255,
        256,
        u32::MAX as u64,
        1 << 32,
        1 << 40,
        i64::MAX as u64,
        1 << 63,
        u64::MAX,
        u64::MAX - 31,
    ]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, v)| Mutation::SetByte(p, v)),
        (any::<usize>(), prop_oneof![interesting, any::<u64>()])
            .prop_map(|(p, v)| Mutation::SetU64(p, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::FlipBit(p, b) => {
            if let Some(x) = bytes.get_mut(p % len) {
                *x ^= 1 << b;
            }
        }
        Mutation::SetByte(p, v) => {
            if let Some(x) = bytes.get_mut(p % len) {
                *x = *v;
            }
        }
        Mutation::SetU64(p, v) => {
            for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                if let Some(x) = bytes.get_mut(p % len + i) {
                    *x = b;
                }
            }
        }
        Mutation::Insert(p, b) => {
            let at = p % (bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Delete(p, n) => {
            let at = p % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Truncate(n) => bytes.truncate(n % len),
    }
}

/// Everything an accepted file promises must hold.
fn check_consistent(f: &GgufFile) {
    let file_len = f.bytes().len() as u64;
    assert!(matches!(f.version(), 2 | 3));
    assert!(f.alignment().is_power_of_two());
    assert!(f.data_offset() <= file_len);
    for (k, v) in f.metadata() {
        assert!(f.get(k).is_some());
        if let Value::Array(a) = v {
            assert!(a.items.iter().all(|i| i.value_type() == a.elem_type));
        }
    }
    for t in f.tensors() {
        assert!(!t.name.is_empty() && t.name.len() < 64);
        assert!((1..=4).contains(&t.dims.len()) && t.dims.iter().all(|&d| d > 0));
        assert_eq!(t.n_elements, t.dims.iter().product::<u64>());
        assert_eq!(Some(t.n_bytes), t.ty.bytes_for(t.n_elements));
        assert!(t.offset.is_multiple_of(f.alignment()));
        assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
        assert!(t.absolute_offset(f) + t.n_bytes <= file_len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_files_never_panic(
        base in 0usize..3,
        mutations in prop::collection::vec(arb_mutation(), 1..6),
    ) {
        let mut bytes = base_files().swap_remove(base);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(f) = GgufFile::from_bytes(bytes) {
            check_consistent(&f);
        }
    }
}

#[test]
fn base_files_are_valid() {
    for bytes in base_files() {
        check_consistent(&GgufFile::from_bytes(bytes).unwrap());
    }
}
