//! SentencePiece-style tokenization (llama.cpp's `llm_tokenizer_spm_session`):
//! start from single characters and repeatedly join the adjacent pair whose joined
//! text is the highest-scoring token; characters that end up in no token fall back
//! to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::TokenizerError;

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate join: highest score first, then the leftmost.
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // llama.cpp compares scores with `<`, so -0.0 and 0.0 tie (and go by position).
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// What the session needs from the vocabulary.
pub(super) struct SpmVocab<'a> {
    pub(super) token_to_id: &'a HashMap<String, u32>,
    pub(super) scores: &'a dyn Fn(u32) -> f32,
    /// llama.cpp's `byte_to_token`: `<0xXX>`, else the byte itself as a string.
    pub(super) byte_token: &'a dyn Fn(u8) -> Option<u32>,
}

/// Appends the tokens of `text` (spaces already escaped to U+2581) to `out`.
pub(super) fn tokenize(
    text: &str,
    v: &SpmVocab<'_>,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: None,
        });
        if let Some(prev) = i.checked_sub(1).and_then(|p| symbols.get_mut(p)) {
            prev.next = Some(i);
        }
    }

    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
        let (Some(ls), Some(rs)) = (symbols.get(l), symbols.get(r)) else {
            return;
        };
        let size = ls.len + rs.len;
        let Some(joined) = text.get(ls.start..ls.start + size) else {
            return;
        };
        if let Some(&id) = v.token_to_id.get(joined) {
            heap.push(Bigram {
                score: (v.scores)(id),
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..symbols.len() {
        try_add(&mut heap, &symbols, i - 1, i);
    }

    while let Some(b) = heap.pop() {
        let (Some(&ls), Some(&rs)) = (symbols.get(b.left), symbols.get(b.right)) else {
            continue;
        };
        if ls.len == 0 || rs.len == 0 || ls.len + rs.len != b.size {
            continue;
        }
        if let Some(s) = symbols.get_mut(b.left) {
            s.len += rs.len;
            s.next = rs.next;
        }
        if let Some(s) = symbols.get_mut(b.right) {
            s.len = 0;
        }
        if let Some(n) = rs.next.and_then(|n| symbols.get_mut(n)) {
            n.prev = Some(b.left);
        }
        if let Some(p) = ls.prev {
            try_add(&mut heap, &symbols, p, b.left);
        }
        if let Some(n) = rs.next {
            try_add(&mut heap, &symbols, b.left, n);
        }
    }

    // Joined symbols are tokens by construction; a symbol that is not a token is a
    // single character (llama.cpp's `rev_merge` re-segmentation never applies to it),
    // so it is spelled out in byte tokens.
    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = text.get(s.start..s.start + s.len).unwrap_or("");
        if let Some(&id) = v.token_to_id.get(piece) {
            out.push(id);
            continue;
        }
        for b in piece.bytes() {
            out.push((v.byte_token)(b).ok_or(TokenizerError::MissingByteToken(b))?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_by_score_and_falls_back_to_bytes() {
        let tokens = ["▁", "a", "b", "ab", "▁a", "<0xC3>", "<0xA9>"];
        let scores = [0.0f32, 0.0, 0.0, -1.0, -2.0, 0.0, 0.0];
        let token_to_id: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let score = |id: u32| scores[id as usize];
        let byte = |b: u8| token_to_id.get(&format!("<0x{b:02X}>")).copied();
        let v = SpmVocab {
            token_to_id: &token_to_id,
            scores: &score,
            byte_token: &byte,
        };
        let mut out = Vec::new();
        // "ab" (-1) beats "▁a" (-2); "é" is not a token and becomes two bytes.
        tokenize("▁abé", &v, &mut out).unwrap();
        assert_eq!(out, [0, 3, 5, 6]);
        out.clear();
        let err = tokenize("z", &v, &mut out).unwrap_err();
        assert!(matches!(err, TokenizerError::MissingByteToken(b'z')));
    }
}
