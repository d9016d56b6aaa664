use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::file::*;
use super::stats::*;
use super::*;

/// Deterministic pseudo-random logits in [-8, 8).
fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 16.0 - 8.0
        })
        .collect()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seldon-conformance-kld-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes a base file for `tokens` (whole chunks of `n_ctx`) from `all`, the
/// logits of every position of every chunk.
fn write(path: &Path, n_ctx: usize, n_vocab: usize, tokens: &[u32], all: &[f32]) {
    let mut w = KldWriter::create(path, n_ctx, n_vocab, tokens).unwrap();
    for chunk in all.chunks(n_ctx * n_vocab) {
        w.write_chunk(chunk).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn nearest_int_rounds_half_to_even_like_llama_cpp() {
    let mut row = vec![0u16; row_u16s(3)];
    // max 2, min max-16 clamps nothing: range 0..2 over 65535 steps.
    quantize_row(&[0.0, 1.0, 2.0], &mut row);
    assert_eq!(&row[4..7], &[0, 32768, 65535]);
    assert_eq!(row_u16s(3), 8);
    assert_eq!(row_u16s(4), 8);
    assert_eq!(scored_per_chunk(512), 255);
    assert_eq!(scored_per_chunk(3), 1);
}

#[test]
fn round_trip_and_layout() {
    let (n_ctx, n_vocab, n_chunk) = (8, 5, 2);
    let tokens: Vec<u32> = (0..n_ctx * n_chunk)
        .map(|i| (i * 3 % n_vocab) as u32)
        .collect();
    let all = logits(n_ctx * n_chunk * n_vocab, 1);
    let path = temp("roundtrip.bin");
    write(&path, n_ctx, n_vocab, &tokens, &all);
    let bytes = std::fs::read(&path).unwrap();
    // 20 header bytes, the tokens, then 2 chunks x 3 rows x 10 u16.
    assert_eq!(bytes.len(), 20 + 16 * 4 + 2 * 3 * 10 * 2);
    assert_eq!(&bytes[..8], b"_logits_");
    let mut r = KldReader::open(&path).unwrap();
    assert_eq!(r.header().tokens, tokens);
    assert_eq!(
        (r.header().n_ctx, r.header().n_vocab, r.header().n_chunk),
        (8, 5, 2)
    );
    let mut chunks = 0;
    while let Some(chunk) = r.next_chunk().unwrap() {
        assert_eq!(chunk.len(), 3);
        for j in 0..chunk.len() {
            let p = first_scored(n_ctx) + j;
            let row = &all[(chunks * n_ctx + p) * n_vocab..][..n_vocab];
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let lse = max + row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln();
            let q = chunk.row(j);
            for (i, &x) in row.iter().enumerate() {
                // Within half a step of the true log-probability (16/65535/2),
                // for logits above the clamp at max - 16.
                if x > max - 16.0 {
                    assert!(
                        (q.log_prob(i) - (x - lse)).abs() < 2e-4,
                        "{} vs {}",
                        q.log_prob(i),
                        x - lse
                    );
                }
            }
        }
        chunks += 1;
    }
    assert_eq!(chunks, 2);
}

#[test]
fn a_file_against_itself_is_kld_zero_and_same_top_100() {
    let (n_ctx, n_vocab) = (32, 7);
    let tokens: Vec<u32> = (0..n_ctx * 4).map(|i| (i * 5 % n_vocab) as u32).collect();
    let path = temp("self.bin");
    write(
        &path,
        n_ctx,
        n_vocab,
        &tokens,
        &logits(tokens.len() * n_vocab, 2),
    );
    let r = compare_files(&path, &path).unwrap();
    let s = r.summary.as_ref().unwrap();
    assert_eq!(s.count, 4 * 15);
    assert_eq!(s.kld.value, 0.0);
    assert_eq!(s.same_top_p.value, 1.0);
    assert_eq!(s.rms_p_diff.value, 0.0);
    assert_eq!(s.ln_ppl_ratio.value, 0.0);
    assert_eq!(r.chunks.len(), 4);
    assert!(r.pass);
    let text = r.to_text();
    assert!(
        text.contains("Mean    KLD:   0.000000 ±   0.000000"),
        "{text}"
    );
    assert!(text.contains("Same top p: 100.000 ± 0.000 %"), "{text}");
    assert!(text.contains("99.9%   KLD:"), "{text}");
}

#[test]
fn different_files_give_the_kl_of_their_distributions() {
    let (n_ctx, n_vocab) = (64, 9);
    let tokens: Vec<u32> = (0..n_ctx * 2).map(|i| (i * 7 % n_vocab) as u32).collect();
    let a_logits = logits(tokens.len() * n_vocab, 3);
    let b_logits: Vec<f32> = a_logits
        .iter()
        .zip(logits(a_logits.len(), 4))
        .map(|(a, n)| a + 0.05 * n)
        .collect();
    let (pa, pb) = (temp("a.bin"), temp("b.bin"));
    write(&pa, n_ctx, n_vocab, &tokens, &a_logits);
    write(&pb, n_ctx, n_vocab, &tokens, &b_logits);
    let s = compare_files(&pa, &pb).unwrap().summary.unwrap();
    // The same mean computed directly in f64 from the logits.
    let mut want = 0.0;
    let mut n = 0;
    for c in 0..2 {
        for p in first_scored(n_ctx)..n_ctx - 1 {
            let at = (c * n_ctx + p) * n_vocab;
            let ls = |r: &[f32]| {
                let m = r.iter().map(|&x| f64::from(x)).fold(f64::MIN, f64::max);
                let lse = m + r
                    .iter()
                    .map(|&x| (f64::from(x) - m).exp())
                    .sum::<f64>()
                    .ln();
                r.iter().map(|&x| f64::from(x) - lse).collect::<Vec<_>>()
            };
            let (lp, lq) = (
                ls(&a_logits[at..at + n_vocab]),
                ls(&b_logits[at..at + n_vocab]),
            );
            want += lp
                .iter()
                .zip(&lq)
                .map(|(p, q)| p.exp() * (p - q))
                .sum::<f64>();
            n += 1;
        }
    }
    want /= f64::from(n);
    assert_eq!(s.count, n as usize);
    assert!(s.kld.value > 1e-4, "{}", s.kld.value);
    assert!(
        (s.kld.value - want).abs() < 1e-4 * want.max(1.0) + 2e-5,
        "{} vs {want}",
        s.kld.value
    );
}

#[test]
fn logits_against_their_own_base_give_the_hand_computed_kl() {
    // n_ctx 3 scores position 1 only. Base distribution (1/4, 3/4), ours
    // (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.130812.
    let mut w = KldWriter::new(Vec::new(), 3, 2, &[0, 1, 1], Path::new("mem")).unwrap();
    w.write_chunk(&[9.0, 9.0, 0.0, 3f32.ln(), 9.0, 9.0])
        .unwrap();
    let bytes = w.finish().unwrap();
    let len = bytes.len() as u64;
    let mut r = KldReader::new(Cursor::new(bytes), Some(len), Path::new("mem")).unwrap();
    let chunk = r.next_chunk().unwrap().unwrap();
    let mut acc = KldAccumulator::default();
    acc.add(chunk.row(0), Ours::Logits(&[5.0, 5.0]), 1);
    let s = acc.summary().unwrap();
    assert!(
        (s.kld.value - 0.130_812_035_941_137).abs() < 1e-5,
        "{}",
        s.kld.value
    );
    // Top: base says token 1, ours ties and picks 0.
    assert_eq!(s.same_top_p.value, 0.0);
    // Δp of the next token (1): 1/2 - 3/4.
    assert!((s.p_diff.value + 0.25).abs() < 1e-4, "{}", s.p_diff.value);
}

#[test]
fn malformed_files_are_rejected() {
    let mut w = KldWriter::new(Vec::new(), 4, 3, &[0, 1, 2, 0], Path::new("mem")).unwrap();
    w.write_chunk(&logits(12, 5)).unwrap();
    let good = w.finish().unwrap();
    let parse = |b: &[u8]| {
        let mut r = KldReader::new(
            Cursor::new(b.to_vec()),
            Some(b.len() as u64),
            Path::new("mem"),
        )?;
        while r.next_chunk()?.is_some() {}
        Ok::<_, ConformanceError>(())
    };
    parse(&good).unwrap();
    let patch = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("magic", patch(0, b"_logitz_")),
        ("n_ctx 1", patch(8, &1u32.to_le_bytes())),
        ("n_ctx huge", patch(8, &u32::MAX.to_le_bytes())),
        ("negative n_vocab", patch(12, &(-3i32).to_le_bytes())),
        ("zero n_vocab", patch(12, &0i32.to_le_bytes())),
        ("more chunks", patch(16, &2i32.to_le_bytes())),
        ("token out of range", patch(20, &3i32.to_le_bytes())),
        ("negative token", patch(20, &(-1i32).to_le_bytes())),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("trailing", [good.clone(), vec![0]].concat()),
    ];
    for (name, b) in cases {
        assert!(
            matches!(parse(&b), Err(ConformanceError::KldFile(_))),
            "{name} was accepted"
        );
    }
    // Without a known length, truncation is found while streaming.
    let short = good[..good.len() - 2].to_vec();
    let mut r = KldReader::new(Cursor::new(short), None, Path::new("mem")).unwrap();
    assert!(r.next_chunk().is_err());
}

#[test]
fn writer_refuses_bad_input() {
    let mem = Path::new("mem");
    assert!(KldWriter::new(Vec::new(), 4, 3, &[0, 1, 2], mem).is_err());
    assert!(KldWriter::new(Vec::new(), 1, 3, &[0], mem).is_err());
    assert!(KldWriter::new(Vec::new(), 2, 3, &[0, 3], mem).is_err());
    let mut w = KldWriter::new(Vec::new(), 2, 3, &[0, 1], mem).unwrap();
    assert!(w.write_chunk(&[0.0; 5]).is_err());
    w.write_chunk(&[0.0; 6]).unwrap();
    assert!(w.write_chunk(&[0.0; 6]).is_err());
    let w = KldWriter::new(Vec::new(), 2, 3, &[0, 1], mem).unwrap();
    assert!(w.finish().is_err());
}

#[test]
fn files_from_different_tokens_are_not_compared() {
    let (pa, pb) = (temp("ta.bin"), temp("tb.bin"));
    write(&pa, 4, 3, &[0, 1, 2, 0], &logits(12, 6));
    write(&pb, 4, 3, &[0, 1, 2, 1], &logits(12, 6));
    assert!(matches!(
        compare_files(&pa, &pb),
        Err(ConformanceError::KldFile(_))
    ));
}
