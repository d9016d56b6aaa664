//! A bounds-checked little-endian reader over the file bytes.

use super::GgufError;

/// Reads fields in order, tracking the absolute offset so that every error
/// can say where it happened.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The next `n` bytes, or a `Truncated` error naming `field`.
    pub(crate) fn take(
        &mut self,
        n: u64,
        field: &dyn Fn() -> String,
    ) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if n > available {
            return Err(GgufError::Truncated {
                field: field(),
                offset: self.offset(),
                needed: n,
                available,
            });
        }
        // n <= remaining, which is a usize, so the cast and the add are exact.
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &dyn Fn() -> String) -> Result<u16, GgufError> {
        self.array(field).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A GGUF string body of `len` bytes (the length was read and checked by
    /// the caller), validated as UTF-8.
    pub(crate) fn utf8(
        &mut self,
        len: u64,
        field: &dyn Fn() -> String,
    ) -> Result<&'a str, GgufError> {
        let start = self.offset();
        let raw = self.take(len, field)?;
        std::str::from_utf8(raw).map_err(|e| {
            let at = e.valid_up_to();
            GgufError::InvalidUtf8 {
                field: field(),
                offset: start,
                bad_offset: start + at as u64,
                byte: raw.get(at).copied().unwrap_or(0),
            }
        })
    }
}
