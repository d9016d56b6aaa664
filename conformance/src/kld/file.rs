//! The file `llama-perplexity --kl-divergence-base FILE` writes and
//! `llama-perplexity --kl-divergence` reads (tools/perplexity/perplexity.cpp
//! in llama.cpp 0c1e5709), all little-endian:
//!
//! ```text
//! "_logits_"                    8 bytes
//! n_ctx                         u32   tokens per chunk
//! n_vocab                       i32
//! n_chunk                       i32
//! tokens                        i32 x n_ctx * n_chunk
//! per chunk, per position p in n_ctx/2 .. n_ctx-2 (n_ctx - 1 - n_ctx/2 rows):
//!   scale, min_log_prob         f32, f32 (the first four u16 of the row)
//!   q                           u16 x n_vocab, then one u16 of padding if n_vocab is odd
//! ```
//!
//! A row stores log-probabilities `scale * q + min_log_prob`. Logits more than
//! 16 below the maximum are clamped to the minimum (q = 0), and `scale` spreads
//! the remaining range over 65535 steps. Row `j` of a chunk holds the
//! distribution at position `n_ctx/2 + j`, which predicts the chunk's token
//! `n_ctx/2 + j + 1`. Only the second half of each chunk is scored, so every
//! scored position has at least `n_ctx/2` tokens of context.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{ConformanceError, Result};

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"_logits_";
const HEADER_BYTES: u64 = 8 + 4 + 4 + 4;

fn bad(m: impl Into<String>) -> ConformanceError {
    ConformanceError::KldFile(m.into())
}

/// `u16`s per stored row: two f32 and `n_vocab` rounded up to even.
pub fn row_u16s(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Scored positions per chunk of `n_ctx` tokens.
pub fn scored_per_chunk(n_ctx: usize) -> usize {
    n_ctx.saturating_sub(1 + n_ctx / 2)
}

/// The first scored position of a chunk.
pub fn first_scored(n_ctx: usize) -> usize {
    n_ctx / 2
}

/// The header and the evaluation tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KldHeader {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Chunks.
    pub n_chunk: usize,
    /// `n_ctx * n_chunk` token ids, chunk after chunk.
    pub tokens: Vec<u32>,
}

impl KldHeader {
    /// The tokens of chunk `c`.
    pub fn chunk_tokens(&self, c: usize) -> &[u32] {
        let start = (c * self.n_ctx).min(self.tokens.len());
        let end = (start + self.n_ctx).min(self.tokens.len());
        &self.tokens[start..end]
    }

    /// Bytes of the whole file.
    pub fn file_bytes(&self) -> Option<u64> {
        let tokens = (self.n_ctx as u64)
            .checked_mul(self.n_chunk as u64)?
            .checked_mul(4)?;
        let rows = (self.n_chunk as u64).checked_mul(scored_per_chunk(self.n_ctx) as u64)?;
        let data = rows
            .checked_mul(row_u16s(self.n_vocab) as u64)?
            .checked_mul(2)?;
        HEADER_BYTES.checked_add(tokens)?.checked_add(data)
    }
}

/// One stored row: quantized log-probabilities.
#[derive(Debug, Clone, Copy)]
pub struct QuantRow<'a> {
    /// Log-probability per step of `q`.
    pub scale: f32,
    /// The log-probability `q = 0` stands for.
    pub min_log_prob: f32,
    /// `n_vocab` steps.
    pub q: &'a [u16],
}

impl QuantRow<'_> {
    /// The stored log-probability of token `i`, as llama.cpp computes it.
    pub fn log_prob(&self, i: usize) -> f32 {
        self.scale * f32::from(self.q[i]) + self.min_log_prob
    }
}

/// One chunk's rows.
#[derive(Debug, Clone)]
pub struct KldChunk {
    n_vocab: usize,
    data: Vec<u16>,
}

impl KldChunk {
    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        self.data.len() / row_u16s(self.n_vocab)
    }

    /// Whether there are no rows (`n_ctx` < 2).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `j`.
    pub fn row(&self, j: usize) -> QuantRow<'_> {
        let nv = row_u16s(self.n_vocab);
        let r = &self.data[j * nv..(j + 1) * nv];
        let f = |a: u16, b: u16| {
            let [a0, a1] = a.to_le_bytes();
            let [b0, b1] = b.to_le_bytes();
            f32::from_le_bytes([a0, a1, b0, b1])
        };
        QuantRow {
            scale: f(r[0], r[1]),
            min_log_prob: f(r[2], r[3]),
            q: &r[4..4 + self.n_vocab],
        }
    }
}

/// Streams a base file chunk by chunk: real files hold hundreds of chunks
/// of 25 MB each.
#[derive(Debug)]
pub struct KldReader<R> {
    header: KldHeader,
    reader: R,
    next_chunk: usize,
    source: PathBuf,
}

impl KldReader<BufReader<File>> {
    /// Opens `path` and checks its size against its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ConformanceError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| ConformanceError::io(path, e))?
            .len();
        Self::new(BufReader::new(file), Some(len), path)
    }
}

impl<R: Read> KldReader<R> {
    /// Reads the header from `reader`. With `len`, the stream's total length,
    /// the header is checked to describe exactly that many bytes before
    /// anything is allocated.
    pub fn new(mut reader: R, len: Option<u64>, source: &Path) -> Result<Self> {
        let mut head = [0u8; HEADER_BYTES as usize];
        reader
            .read_exact(&mut head)
            .map_err(|_| bad("shorter than its 20-byte header"))?;
        if &head[..8] != MAGIC {
            return Err(bad(
                "no \"_logits_\" magic: not a llama-perplexity --kl-divergence-base file",
            ));
        }
        let word = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        let n_ctx = u32::from_le_bytes(word(8));
        let n_vocab = i32::from_le_bytes(word(12));
        let n_chunk = i32::from_le_bytes(word(16));
        if n_ctx < 2 {
            return Err(bad(format!("n_ctx {n_ctx} scores no positions")));
        }
        let (Ok(n_vocab), Ok(n_chunk)) = (usize::try_from(n_vocab), usize::try_from(n_chunk))
        else {
            return Err(bad(format!(
                "negative n_vocab ({n_vocab}) or n_chunk ({n_chunk})"
            )));
        };
        if n_vocab == 0 {
            return Err(bad("n_vocab is 0"));
        }
        let n_ctx = n_ctx as usize;
        let n_tokens = n_ctx
            .checked_mul(n_chunk)
            .ok_or_else(|| bad("n_ctx * n_chunk overflows"))?;
        let mut header = KldHeader {
            n_ctx,
            n_vocab,
            n_chunk,
            tokens: Vec::new(),
        };
        let want = header
            .file_bytes()
            .ok_or_else(|| bad("the header describes a file too large to address"))?;
        if let Some(len) = len
            && len != want
        {
            return Err(bad(format!(
                "n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk} make {want} bytes, the file has {len}"
            )));
        }
        let mut raw = Vec::new();
        reader
            .by_ref()
            .take(n_tokens as u64 * 4)
            .read_to_end(&mut raw)
            .map_err(|e| ConformanceError::io(source, e))?;
        if raw.len() != n_tokens * 4 {
            return Err(bad("truncated in the token list"));
        }
        header.tokens = raw
            .chunks_exact(4)
            .map(|c| {
                let t = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                u32::try_from(t)
                    .ok()
                    .filter(|&t| (t as usize) < n_vocab)
                    .ok_or_else(|| bad(format!("token {t} outside the vocabulary of {n_vocab}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            header,
            reader,
            next_chunk: 0,
            source: source.to_path_buf(),
        })
    }

    /// The header and tokens.
    pub fn header(&self) -> &KldHeader {
        &self.header
    }

    /// The next chunk's rows, or `None` after the last.
    pub fn next_chunk(&mut self) -> Result<Option<KldChunk>> {
        if self.next_chunk == self.header.n_chunk {
            return Ok(None);
        }
        let n = scored_per_chunk(self.header.n_ctx) * row_u16s(self.header.n_vocab);
        let mut raw = Vec::new();
        self.reader
            .by_ref()
            .take(n as u64 * 2)
            .read_to_end(&mut raw)
            .map_err(|e| ConformanceError::io(&self.source, e))?;
        if raw.len() != n * 2 {
            return Err(bad(format!("truncated in chunk {}", self.next_chunk)));
        }
        self.next_chunk += 1;
        let data = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(Some(KldChunk {
            n_vocab: self.header.n_vocab,
            data,
        }))
    }
}

/// llama.cpp's `nearest_int`: round to nearest, ties to even, through the
/// f32 magic-number trick (valid for |x| < 2^22).
fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes one row of logits into `out` (`row_u16s(n_vocab)` values) as
/// llama-perplexity's `log_softmax(n_vocab, logits, log_prob, tok)` does.
pub fn quantize_row(logits: &[f32], out: &mut [u16]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = logits
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min)
        .max(max - 16.0);
    let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_sum_exp = sum_exp.ln() as f32;
    let min_log_prob = min - max - log_sum_exp;
    let scale = (max - min) / 65535.0;
    let put = |out: &mut [u16], at: usize, v: f32| {
        let [a, b, c, d] = v.to_le_bytes();
        out[at] = u16::from_le_bytes([a, b]);
        out[at + 1] = u16::from_le_bytes([c, d]);
    };
    put(out, 0, scale);
    put(out, 2, min_log_prob);
    let q = &mut out[4..];
    q.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (d, &l) in q.iter_mut().zip(logits) {
            // Truncation to u16 as the C assignment does.
            *d = if l > min {
                nearest_int(inv * (l - min)) as u16
            } else {
                0
            };
        }
    }
}

/// Writes a base file, chunk by chunk.
#[derive(Debug)]
pub struct KldWriter<W: Write> {
    out: W,
    n_ctx: usize,
    n_vocab: usize,
    chunks_left: usize,
    path: PathBuf,
}

impl KldWriter<BufWriter<File>> {
    /// Creates `path` for `tokens.len() / n_ctx` chunks and writes the header.
    pub fn create(path: &Path, n_ctx: usize, n_vocab: usize, tokens: &[u32]) -> Result<Self> {
        let file = File::create(path).map_err(|e| ConformanceError::io(path, e))?;
        Self::new(BufWriter::new(file), n_ctx, n_vocab, tokens, path)
    }
}

impl<W: Write> KldWriter<W> {
    /// Writes the header to `out`; `tokens` must be whole chunks.
    pub fn new(
        mut out: W,
        n_ctx: usize,
        n_vocab: usize,
        tokens: &[u32],
        path: &Path,
    ) -> Result<Self> {
        if n_ctx < 2 || !tokens.len().is_multiple_of(n_ctx) || tokens.is_empty() {
            return Err(bad(format!(
                "{} tokens are not whole chunks of {n_ctx} (n_ctx >= 2)",
                tokens.len()
            )));
        }
        let n_chunk = tokens.len() / n_ctx;
        let as_i32 = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| bad(format!("{what} {v} overflows i32")))
        };
        let mut head = Vec::with_capacity(HEADER_BYTES as usize + tokens.len() * 4);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(
            &u32::try_from(n_ctx)
                .map_err(|_| bad("n_ctx overflows u32"))?
                .to_le_bytes(),
        );
        head.extend_from_slice(&as_i32(n_vocab, "n_vocab")?.to_le_bytes());
        head.extend_from_slice(&as_i32(n_chunk, "n_chunk")?.to_le_bytes());
        for &t in tokens {
            if t as usize >= n_vocab {
                return Err(bad(format!(
                    "token {t} outside the vocabulary of {n_vocab}"
                )));
            }
            head.extend_from_slice(&as_i32(t as usize, "token")?.to_le_bytes());
        }
        out.write_all(&head)
            .map_err(|e| ConformanceError::io(path, e))?;
        Ok(Self {
            out,
            n_ctx,
            n_vocab,
            chunks_left: n_chunk,
            path: path.to_path_buf(),
        })
    }

    /// Writes one chunk from its logits at every position, `[n_ctx][n_vocab]`
    /// (only the scored half is stored).
    pub fn write_chunk(&mut self, logits: &[f32]) -> Result<()> {
        if self.chunks_left == 0 {
            return Err(bad("more chunks than the header announced"));
        }
        if logits.len() != self.n_ctx * self.n_vocab {
            return Err(bad(format!(
                "{} logits for a chunk of {} x {}",
                logits.len(),
                self.n_ctx,
                self.n_vocab
            )));
        }
        let nv = row_u16s(self.n_vocab);
        let first = first_scored(self.n_ctx);
        let mut row = vec![0u16; nv];
        let mut bytes = Vec::with_capacity(scored_per_chunk(self.n_ctx) * nv * 2);
        for p in first..first + scored_per_chunk(self.n_ctx) {
            quantize_row(&logits[p * self.n_vocab..(p + 1) * self.n_vocab], &mut row);
            row.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        }
        self.out
            .write_all(&bytes)
            .map_err(|e| ConformanceError::io(&self.path, e))?;
        self.chunks_left -= 1;
        Ok(())
    }

    /// Flushes; every announced chunk must have been written.
    pub fn finish(mut self) -> Result<W> {
        if self.chunks_left != 0 {
            return Err(bad(format!(
                "{} chunks were never written",
                self.chunks_left
            )));
        }
        self.out
            .flush()
            .map_err(|e| ConformanceError::io(&self.path, e))?;
        Ok(self.out)
    }
}
