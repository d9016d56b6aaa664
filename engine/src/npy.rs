//! A writer of NumPy `.npy` files (format 1.0, little-endian `<f4`, C order)
//! that streams rows, so that `[n_tokens, n_vocab]` logits never have to sit
//! in memory whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// An f32 `.npy` file being written: the header first, then the elements.
#[derive(Debug)]
pub struct NpyF32Writer<W: Write> {
    out: W,
    expected: u64,
    written: u64,
}

/// The `.npy` header for a little-endian f32 array of `shape`, padded so the
/// data starts at a multiple of 64 bytes (as numpy writes it). Fails only for
/// a shape with so many dimensions that the header passes 64 KiB.
pub fn f32_header(shape: &[usize]) -> std::io::Result<Vec<u8>> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + length (2) + dict + padding + '\n'
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let len = u16::try_from(dict.len())
        .map_err(|_| std::io::Error::other("the .npy header is too long for format 1.0"))?;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    Ok(h)
}

impl NpyF32Writer<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the header for `shape`.
    pub fn create(path: &Path, shape: &[usize]) -> std::io::Result<Self> {
        Self::new(BufWriter::new(File::create(path)?), shape)
    }
}

impl<W: Write> NpyF32Writer<W> {
    /// Writes the header for `shape` to `out`.
    pub fn new(mut out: W, shape: &[usize]) -> std::io::Result<Self> {
        out.write_all(&f32_header(shape)?)?;
        let expected = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| std::io::Error::other("the array shape overflows"))?;
        Ok(Self {
            out,
            expected,
            written: 0,
        })
    }

    /// Appends elements (in C order).
    pub fn write(&mut self, values: &[f32]) -> std::io::Result<()> {
        let n = values.len() as u64;
        if self.written + n > self.expected {
            return Err(std::io::Error::other(format!(
                "{} elements written to an array of {}",
                self.written + n,
                self.expected
            )));
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.out.write_all(&bytes)?;
        self.written += n;
        Ok(())
    }

    /// Checks that every element was written and flushes; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.written != self.expected {
            return Err(std::io::Error::other(format!(
                "{} elements written to an array of {}",
                self.written, self.expected
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_numpy_format_1_0_aligned_to_64() -> std::io::Result<()> {
        let h = f32_header(&[3, 5])?;
        assert_eq!(h.len() % 64, 0);
        let text = std::str::from_utf8(&h[10..]).unwrap_or_default();
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize, h.len() - 10);
        let one = f32_header(&[7])?;
        assert!(String::from_utf8_lossy(&one).contains("'shape': (7,)"));
        assert!(f32_header(&[1; 30_000]).is_err());
        Ok(())
    }

    #[test]
    fn elements_follow_the_header_and_counts_are_checked() -> std::io::Result<()> {
        let mut w = NpyF32Writer::new(Vec::new(), &[2, 2])?;
        w.write(&[1.0, 2.0])?;
        w.write(&[3.0, -0.5])?;
        assert!(w.write(&[0.0]).is_err());
        let bytes = w.finish()?;
        let data = &bytes[f32_header(&[2, 2])?.len()..];
        assert_eq!(data.len(), 16);
        assert_eq!(data[12..16], (-0.5f32).to_le_bytes());
        let short = NpyF32Writer::new(Vec::new(), &[2])?;
        assert!(short.finish().is_err());
        Ok(())
    }
}
