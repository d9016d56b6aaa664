use super::*;

#[test]
fn round_trips_every_dtype() {
    for (shape, data) in [
        (
            vec![2, 3],
            NpyData::F32(vec![1.0, -2.5, 3.0, f32::MIN, 0.0, 7.25]),
        ),
        (vec![4], NpyData::I32(vec![1, -2, i32::MAX, 0])),
        (vec![1, 1, 2], NpyData::I64(vec![i64::MIN, 5])),
        (vec![0, 5], NpyData::F32(vec![])),
    ] {
        let bytes = to_bytes(&shape, &data).unwrap();
        let header_end = 10 + usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!(header_end % 64, 0);
        let a = NpyArray::parse(&bytes).unwrap();
        assert_eq!(a.shape, shape);
        assert_eq!(a.data, data);
    }
}

/// The bytes numpy 2.4 writes for `np.save(f, np.arange(3, dtype='<i4'))`.
#[test]
fn reads_a_numpy_written_file() {
    let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
    let mut header = "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }".to_string();
    header.push_str(&" ".repeat(118 - header.len() - 1));
    header.push('\n');
    bytes.extend_from_slice(header.as_bytes());
    for v in 0i32..3 {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let a = NpyArray::parse(&bytes).unwrap();
    assert_eq!(a.shape, vec![3]);
    assert_eq!(a.into_i64().unwrap(), vec![0, 1, 2]);
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn rejects_malformed_files() {
    let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
    assert!(NpyArray::parse(&with_header(ok, &[0; 4])).is_ok());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", b"\x93NUMPX\x01\x00".to_vec()),
        ("empty", vec![]),
        ("truncated length", b"\x93NUMPY\x01\x00\x10".to_vec()),
        ("header past end", b"\x93NUMPY\x01\x00\xff\x00{".to_vec()),
        ("version 9", b"\x93NUMPY\x09\x00\x00\x00".to_vec()),
        ("short data", with_header(ok, &[0; 3])),
        ("long data", with_header(ok, &[0; 5])),
        (
            "big-endian",
            with_header(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
        ),
        (
            "float64",
            with_header(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                &[0; 8],
            ),
        ),
        (
            "fortran",
            with_header(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                &[0; 4],
            ),
        ),
        (
            "overflow",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }",
                &[],
            ),
        ),
        (
            "huge dim",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999,), }",
                &[],
            ),
        ),
        (
            "missing shape",
            with_header("{'descr': '<f4', 'fortran_order': False, }", &[0; 4]),
        ),
        (
            "repeated key",
            with_header(
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
        ),
        (
            "extra key",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                &[0; 4],
            ),
        ),
        (
            "negative dim",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                &[],
            ),
        ),
        (
            "trailing text",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x",
                &[0; 4],
            ),
        ),
        ("unterminated", with_header("{'descr': '<f4", &[])),
        (
            "too many dims",
            with_header(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
                &[0; 4],
            ),
        ),
    ];
    for (name, bytes) in cases {
        assert!(
            matches!(NpyArray::parse(&bytes), Err(ConformanceError::Npy(_))),
            "{name} was accepted"
        );
    }
}

#[test]
fn type_accessors_check_the_dtype() {
    let f = NpyArray::parse(&to_bytes(&[1], &NpyData::F32(vec![1.0])).unwrap()).unwrap();
    assert!(f.clone().into_i64().is_err());
    assert!(f.expect_shape("x", &[2]).is_err());
    assert_eq!(f.into_f32().unwrap(), vec![1.0]);
    let i = NpyArray::parse(&to_bytes(&[1], &NpyData::I32(vec![3])).unwrap()).unwrap();
    assert!(i.into_f32().is_err());
    assert!(to_bytes(&[2], &NpyData::I32(vec![3])).is_err());
}
