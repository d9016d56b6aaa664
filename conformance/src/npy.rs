//! NumPy `.npy` files: the reader for the committed references (f32, i32 and
//! i64, C order, little-endian) and a writer for test fixtures.
//!
//! The header is a Python dict literal. Only the exact shape numpy writes is
//! accepted (`descr`, `fortran_order`, `shape`, nothing else), and every size
//! is checked against the bytes present before anything is allocated, so a
//! hostile file costs at most its own length.

use std::path::Path;

use crate::error::{ConformanceError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// A header longer than this is not one numpy wrote for a plain array.
const MAX_HEADER: usize = 1 << 16;
/// More dimensions than any reference needs; bounds the shape parse.
const MAX_DIMS: usize = 8;

/// The element types the references use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`.
    F32,
    /// `<i4`.
    I32,
    /// `<i8`.
    I64,
}

impl Dtype {
    fn from_descr(descr: &str) -> Option<Self> {
        match descr {
            "<f4" => Some(Self::F32),
            "<i4" => Some(Self::I32),
            "<i8" => Some(Self::I64),
            _ => None,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Self::F32 => "<f4",
            Self::I32 => "<i4",
            Self::I64 => "<i8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::I64 => 8,
        }
    }
}

/// The elements of an array, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// float32 elements.
    F32(Vec<f32>),
    /// int32 elements.
    I32(Vec<i32>),
    /// int64 elements.
    I64(Vec<i64>),
}

/// A parsed `.npy` array.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: NpyData,
}

impl NpyArray {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ConformanceError::io(path, e))?;
        Self::parse(&bytes).map_err(|e| match e {
            ConformanceError::Npy(m) => ConformanceError::Npy(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses a whole `.npy` file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |m: &str| ConformanceError::Npy(m.to_string());
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a .npy file (bad magic)"))?;
        let [major, _minor, rest @ ..] = rest else {
            return Err(bad("truncated before the version"));
        };
        let (header_len, rest) = match major {
            1 => match rest {
                [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
                _ => return Err(bad("truncated before the header length")),
            },
            2 | 3 => match rest {
                [a, b, c, d, rest @ ..] => {
                    let n = u32::from_le_bytes([*a, *b, *c, *d]);
                    (usize::try_from(n).unwrap_or(usize::MAX), rest)
                }
                _ => return Err(bad("truncated before the header length")),
            },
            v => return Err(ConformanceError::Npy(format!("unsupported version {v}"))),
        };
        if header_len > MAX_HEADER || header_len > rest.len() {
            return Err(ConformanceError::Npy(format!(
                "header of {header_len} bytes does not fit the file ({} bytes left)",
                rest.len()
            )));
        }
        let (header, data) = rest.split_at(header_len);
        let header = std::str::from_utf8(header)
            .map_err(|_| bad("header is not UTF-8 (or latin-1 text)"))?;
        let Header {
            dtype,
            fortran_order,
            shape,
        } = parse_header(header)?;
        if fortran_order {
            return Err(bad("Fortran-order arrays are not supported"));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad("shape overflows"))?;
        let want = count
            .checked_mul(dtype.size())
            .ok_or_else(|| bad("shape overflows"))?;
        if data.len() != want {
            return Err(ConformanceError::Npy(format!(
                "shape {shape:?} of {} needs {want} data bytes, the file has {}",
                dtype.descr(),
                data.len()
            )));
        }
        let data = match dtype {
            Dtype::F32 => NpyData::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I32 => NpyData::I32(
                data.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I64 => NpyData::I64(
                data.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
        };
        Ok(Self { shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self.data {
            NpyData::F32(_) => Dtype::F32,
            NpyData::I32(_) => Dtype::I32,
            NpyData::I64(_) => Dtype::I64,
        }
    }

    /// The float32 elements, or an error naming the actual type.
    pub fn into_f32(self) -> Result<Vec<f32>> {
        match self.data {
            NpyData::F32(v) => Ok(v),
            _ => Err(ConformanceError::Npy(format!(
                "expected float32, found {}",
                self.dtype().descr()
            ))),
        }
    }

    /// The integer elements widened to i64 (float arrays are an error).
    pub fn into_i64(self) -> Result<Vec<i64>> {
        match self.data {
            NpyData::I32(v) => Ok(v.into_iter().map(i64::from).collect()),
            NpyData::I64(v) => Ok(v),
            NpyData::F32(_) => Err(ConformanceError::Npy(
                "expected an integer array, found float32".into(),
            )),
        }
    }

    /// Checks that the shape is `want`, naming `what` otherwise.
    pub fn expect_shape(&self, what: &str, want: &[usize]) -> Result<()> {
        if self.shape == want {
            Ok(())
        } else {
            Err(ConformanceError::Invalid(format!(
                "{what}: shape {:?}, expected {want:?}",
                self.shape
            )))
        }
    }
}

struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
/// (any key order, optional trailing comma and padding).
fn parse_header(text: &str) -> Result<Header> {
    let mut p = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    let mut dtype = None;
    let mut fortran_order = None;
    let mut shape = None;
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        match key.as_str() {
            "descr" if dtype.is_none() => {
                let d = p.string()?;
                dtype = Some(Dtype::from_descr(&d).ok_or_else(|| {
                    ConformanceError::Npy(format!(
                        "unsupported dtype {d:?} (expected <f4, <i4 or <i8)"
                    ))
                })?);
            }
            "fortran_order" if fortran_order.is_none() => fortran_order = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            other => {
                return Err(ConformanceError::Npy(format!(
                    "unexpected or repeated header key {other:?}"
                )));
            }
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    if !p.s[p.i..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ConformanceError::Npy("text after the header dict".into()));
    }
    let missing = |k: &str| ConformanceError::Npy(format!("header has no {k:?}"));
    Ok(Header {
        dtype: dtype.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn err(&self, what: &str) -> ConformanceError {
        ConformanceError::Npy(format!("header: {what} at byte {}", self.i))
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", char::from(b))))
        }
    }

    /// A quoted string without escapes (numpy never writes any in these keys).
    fn string(&mut self) -> Result<String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(self.err("expected a quoted string")),
        };
        self.i += 1;
        let start = self.i;
        while let Some(&b) = self.s.get(self.i) {
            if b == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(text);
            }
            if b == b'\\' {
                return Err(self.err("escape in a string"));
            }
            self.i += 1;
        }
        Err(self.err("unterminated string"))
    }

    fn boolean(&mut self) -> Result<bool> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(self.err("expected True or False"))
    }

    /// `()`, `(n,)` or `(a, b, ...)` of non-negative integers.
    fn tuple(&mut self) -> Result<Vec<usize>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                break;
            }
            if dims.len() == MAX_DIMS {
                return Err(self.err("too many dimensions"));
            }
            dims.push(self.integer()?);
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }

    fn integer(&mut self) -> Result<usize> {
        let start = self.i;
        let mut v: usize = 0;
        while let Some(&b) = self.s.get(self.i) {
            if !b.is_ascii_digit() {
                break;
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(b - b'0')))
                .ok_or_else(|| self.err("dimension overflows"))?;
            self.i += 1;
        }
        // numpy writes `3` for a dimension, never `3L` (Python 2) or a sign.
        if self.i == start {
            return Err(self.err("expected a dimension"));
        }
        Ok(v)
    }
}

/// A format-1.0 `.npy` file of `data` with `shape` (C order, little-endian).
///
/// The header is padded so the data starts at a multiple of 64 bytes, as
/// numpy does.
pub fn to_bytes(shape: &[usize], data: &NpyData) -> Result<Vec<u8>> {
    let (dtype, n) = match data {
        NpyData::F32(v) => (Dtype::F32, v.len()),
        NpyData::I32(v) => (Dtype::I32, v.len()),
        NpyData::I64(v) => (Dtype::I64, v.len()),
    };
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(n) {
        return Err(ConformanceError::Npy(format!(
            "shape {shape:?} does not hold {n} elements"
        )));
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        dtype.descr()
    );
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| ConformanceError::Npy("header too long for format 1.0".into()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + n * dtype.size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match data {
        NpyData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
