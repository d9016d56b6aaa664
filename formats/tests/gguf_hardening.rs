//! Header and key/value rules: bad bytes built in code, each with the exact
//! error variant (field, offset, value, limit) it must produce. Tensor rules
//! are in gguf_hardening_tensors.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gguf_common;

use gguf_common::{Raw, ty};
use seldon_formats::gguf::{
    GgufError, GgufFile, MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_KEY_LEN, MAX_STRING_LEN, ValueType,
};

/// Header length: magic, version, tensor count, kv count.
const HDR: u64 = 24;

fn err(bytes: Vec<u8>) -> GgufError {
    GgufFile::from_bytes(bytes).unwrap_err()
}

#[test]
fn empty_file() {
    assert!(matches!(err(vec![]), GgufError::Empty));
}

#[test]
fn bad_magic() {
    let mut r = Raw::header(3, 0, 0);
    r.0[3] = b'G';
    match err(r.build()) {
        GgufError::BadMagic { found } => assert_eq!(&found, b"GGUG"),
        e => panic!("{e}"),
    }
}

#[test]
fn shorter_than_magic_is_truncated() {
    match err(b"GGU".to_vec()) {
        GgufError::Truncated {
            field,
            offset: 0,
            needed: 4,
            available: 3,
        } => {
            assert_eq!(field, "magic");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn unsupported_versions() {
    for (v, hint) in [
        (0u32, ""),
        (1, "v1"),
        (4, ""),
        (u32::MAX, ""),
        (3u32.swap_bytes(), "big-endian"),
        (2u32.swap_bytes(), "big-endian"),
    ] {
        let e = err(Raw::header(v, 0, 0).build());
        let msg = e.to_string();
        match e {
            GgufError::UnsupportedVersion { version, .. } => assert_eq!(version, v),
            e => panic!("version {v}: {e}"),
        }
        assert!(
            msg.contains(&v.to_string()) && msg.contains("offset 4"),
            "{msg}"
        );
        assert!(msg.contains(hint), "{msg}");
        if hint.is_empty() {
            assert!(!msg.contains("big-endian"), "{msg}");
        }
    }
}

#[test]
fn counts_too_large_for_the_bytes_left() {
    match err(Raw::header(3, 0, 1 << 40).build()) {
        GgufError::CountTooLarge {
            field: "kv_count",
            offset: 16,
            count,
            max: 0,
            available: 0,
        } => {
            assert_eq!(count, 1 << 40);
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 2, 0);
    r.zeros(40);
    match err(r.build()) {
        GgufError::CountTooLarge {
            field: "tensor_count",
            offset: 8,
            count: 2,
            max: 1,
            available: 40,
        } => {}
        e => panic!("{e}"),
    }
    // Fits the bytes after the header, but not once a key/value used them.
    let mut r = Raw::header(3, 1, 1);
    r.kv_str("k", &[b'x'; 40]);
    match err(r.build()) {
        GgufError::CountTooLarge {
            field: "tensor_count",
            count: 1,
            max: 0,
            ..
        } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn key_and_value_strings_over_the_cap() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(MAX_KEY_LEN + 1).zeros(16);
    match err(r.build()) {
        GgufError::StringTooLong {
            field,
            offset: HDR,
            len,
            max: MAX_KEY_LEN,
        } => {
            assert_eq!(len, MAX_KEY_LEN + 1);
            assert!(field.contains("key"), "{field}");
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k")
        .u32(ty::STRING)
        .u64(MAX_STRING_LEN + 1)
        .zeros(16);
    match err(r.build()) {
        GgufError::StringTooLong {
            field,
            offset,
            len,
            max: MAX_STRING_LEN,
        } => {
            assert_eq!(
                (field.as_str(), offset, len),
                ("k", HDR + 13, MAX_STRING_LEN + 1)
            );
        }
        e => panic!("{e}"),
    }
}

#[test]
fn strings_past_the_end() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(100).bytes(b"0123456789");
    match err(r.build()) {
        GgufError::StringPastEnd {
            offset: HDR,
            len: 100,
            available: 10,
            ..
        } => {}
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::STRING).u64(1000).zeros(20);
    match err(r.build()) {
        GgufError::StringPastEnd {
            field,
            len: 1000,
            available: 20,
            ..
        } => assert_eq!(field, "k"),
        e => panic!("{e}"),
    }
}

#[test]
fn invalid_utf8_in_keys_values_and_tensor_names() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"ab\xffc").u32(ty::U8).u8(0);
    match err(r.build()) {
        GgufError::InvalidUtf8 {
            offset,
            bad_offset,
            byte: 0xff,
            ..
        } => {
            assert_eq!((offset, bad_offset), (HDR + 8, HDR + 10));
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::STRING).str(b"\xc3(");
    match err(r.build()) {
        GgufError::InvalidUtf8 {
            field,
            bad_offset,
            byte: 0xc3,
            ..
        } => {
            assert_eq!((field.as_str(), bad_offset), ("k", HDR + 13 + 8));
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 1, 0);
    r.tensor(b"w\x80", &[1], 0, 0).pad(32).zeros(32);
    assert!(
        matches!(err(r.build()), GgufError::InvalidUtf8 { bad_offset, .. } if bad_offset == HDR + 9)
    );
}

#[test]
fn arrays_over_the_cap_or_past_the_end() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k")
        .u32(ty::ARRAY)
        .u32(ty::U8)
        .u64(MAX_ARRAY_LEN + 1);
    match err(r.build()) {
        GgufError::ArrayTooLong {
            field,
            offset,
            count,
            max: MAX_ARRAY_LEN,
        } => {
            assert_eq!(
                (field.as_str(), offset, count),
                ("k", HDR + 17, MAX_ARRAY_LEN + 1)
            );
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::ARRAY).u32(ty::U32).u64(1000).zeros(10);
    match err(r.build()) {
        GgufError::ArrayPastEnd {
            count: 1000,
            elem_type: ValueType::U32,
            min_elem_size: 4,
            available: 10,
            ..
        } => {}
        e => panic!("{e}"),
    }
    // Each nested array takes at least 12 bytes even when empty.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k")
        .u32(ty::ARRAY)
        .u32(ty::ARRAY)
        .u64(MAX_ARRAY_LEN)
        .zeros(64);
    assert!(matches!(
        err(r.build()),
        GgufError::ArrayPastEnd {
            min_elem_size: 12,
            ..
        }
    ));
    // Strings take at least their 8-byte length.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::ARRAY).u32(ty::STRING).u64(9).zeros(64);
    assert!(matches!(
        err(r.build()),
        GgufError::ArrayPastEnd {
            min_elem_size: 8,
            count: 9,
            ..
        }
    ));
}

#[test]
fn unknown_value_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).zeros(8);
    match err(r.build()) {
        GgufError::UnknownValueType {
            field,
            offset,
            value: 13,
            max: 12,
        } => {
            assert_eq!((field.as_str(), offset), ("k", HDR + 9));
        }
        e => panic!("{e}"),
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::ARRAY).u32(99).u64(0);
    assert!(
        matches!(err(r.build()), GgufError::UnknownValueType { value: 99, offset, .. } if offset == HDR + 13)
    );
}

/// A key/value whose value is `depth` nested arrays, the innermost empty.
fn nested(depth: usize) -> Vec<u8> {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::ARRAY);
    for _ in 1..depth {
        r.u32(ty::ARRAY).u64(1);
    }
    r.u32(ty::U8).u64(0);
    r.build()
}

#[test]
fn array_nesting_deeper_than_the_cap() {
    let ok = GgufFile::from_bytes(nested(MAX_ARRAY_DEPTH)).unwrap();
    let mut v = ok.get("k").unwrap();
    for _ in 1..MAX_ARRAY_DEPTH {
        v = &v.as_array().unwrap().items[0];
    }
    assert!(v.as_array().unwrap().is_empty());
    match err(nested(MAX_ARRAY_DEPTH + 1)) {
        GgufError::NestingTooDeep {
            depth,
            max: MAX_ARRAY_DEPTH,
            offset,
            ..
        } => {
            assert_eq!(depth, MAX_ARRAY_DEPTH + 1);
            assert_eq!(offset, HDR + 13 + 12 * MAX_ARRAY_DEPTH as u64);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn bool_must_be_zero_or_one() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(ty::BOOL).u8(2);
    assert!(
        matches!(err(r.build()), GgufError::InvalidBool { value: 2, offset, .. } if offset == HDR + 13)
    );
}

#[test]
fn duplicate_key() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a.b", 1).kv_u32("a.b", 2);
    match err(r.build()) {
        GgufError::DuplicateKey {
            key,
            offset,
            first_offset: HDR,
        } => {
            assert_eq!((key.as_str(), offset), ("a.b", HDR + 19));
        }
        e => panic!("{e}"),
    }
}

fn with_alignment(value: &mut Raw) -> Vec<u8> {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").bytes(&value.0);
    r.build()
}

#[test]
fn bad_alignment() {
    let at = HDR + 8 + 17 + 4;
    let mut v = Raw(vec![]);
    v.u32(ty::U64).u64(64);
    assert!(
        matches!(err(with_alignment(&mut v)), GgufError::AlignmentWrongType { offset, found: ValueType::U64 } if offset == at)
    );
    let mut v = Raw(vec![]);
    v.u32(ty::U32).u32(0);
    assert!(
        matches!(err(with_alignment(&mut v)), GgufError::AlignmentZero { offset } if offset == at)
    );
    let mut v = Raw(vec![]);
    v.u32(ty::U32).u32(48);
    assert!(matches!(
        err(with_alignment(&mut v)),
        GgufError::AlignmentNotPowerOfTwo { value: 48, .. }
    ));
    let mut v = Raw(vec![]);
    v.u32(ty::U32).u32(2 << 20);
    assert!(
        matches!(err(with_alignment(&mut v)), GgufError::AlignmentTooLarge { value, max, .. } if value == 2 << 20 && max == 1 << 20)
    );
    let mut v = Raw(vec![]);
    v.u32(ty::U32).u32(1 << 20);
    let f = GgufFile::from_bytes(with_alignment(&mut v)).unwrap();
    assert_eq!(f.alignment(), 1 << 20);
}

#[test]
fn messages_name_field_offset_value_and_limit() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"tokenizer.ggml.tokens")
        .u32(ty::ARRAY)
        .u32(ty::STRING)
        .u64(MAX_ARRAY_LEN + 5);
    let msg = err(r.build()).to_string();
    for part in [
        "tokenizer.ggml.tokens",
        "offset 61",
        &(MAX_ARRAY_LEN + 5).to_string(),
        &MAX_ARRAY_LEN.to_string(),
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}
