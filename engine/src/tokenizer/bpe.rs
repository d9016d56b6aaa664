//! Byte-level BPE over one pre-tokenized word (llama.cpp's `llm_tokenizer_bpe_session`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Merge ranks keyed by `"left right"`: both halves are byte-encoded text, which never
/// contains a space, so the join is unambiguous.
#[derive(Debug, Clone, Default)]
pub(super) struct Ranks(HashMap<String, u32>);

impl Ranks {
    /// Parses `tokenizer.ggml.merges` the way llama.cpp does: split at the first space
    /// after position 0; the first occurrence of a pair keeps its rank.
    pub(super) fn new(merges: &[String]) -> Ranks {
        let mut map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Ok(rank) = u32::try_from(rank) else { break };
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (Some(first), Some(second)) = (m.get(..pos), m.get(pos + 1..)) else {
                continue;
            };
            // A half with a space or an empty half can never equal a symbol.
            if first.contains(' ') || second.contains(' ') || second.is_empty() {
                continue;
            }
            map.entry(format!("{first} {second}")).or_insert(rank);
        }
        Ranks(map)
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.0.get(key.as_str()).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; the heap pops the lowest rank, then the leftmost symbol.
/// The lengths recorded at push time detect candidates that later merges made stale
/// (llama.cpp compares the joined text; symbols only grow, so lengths suffice).
type Candidate = Reverse<(u32, usize, usize, usize, usize)>;

/// Appends the tokens of one byte-encoded `word` to `out`.
pub(super) fn tokenize_word(
    word: &str,
    ranks: &Ranks,
    token_to_id: &HashMap<String, u32>,
    ignore_merges: bool,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges && let Some(&id) = token_to_id.get(word) {
        out.push(id);
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
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

    let text = |s: &Symbol| word.get(s.start..s.start + s.len).unwrap_or("");
    let mut key = String::new();
    let mut heap: BinaryHeap<Candidate> = BinaryHeap::new();
    let mut push = |heap: &mut BinaryHeap<Candidate>, symbols: &[Symbol], l: usize, r: usize| {
        let (Some(ls), Some(rs)) = (symbols.get(l), symbols.get(r)) else {
            return;
        };
        if let Some(rank) = ranks.rank(&mut key, text(ls), text(rs)) {
            heap.push(Reverse((rank, l, r, ls.len, rs.len)));
        }
    };
    for i in 1..symbols.len() {
        push(&mut heap, &symbols, i - 1, i);
    }

    while let Some(Reverse((_, l, r, llen, rlen))) = heap.pop() {
        let (Some(&ls), Some(&rs)) = (symbols.get(l), symbols.get(r)) else {
            continue;
        };
        if ls.len == 0 || rs.len == 0 || ls.len != llen || rs.len != rlen {
            continue;
        }
        // Merge the right symbol into the left one and unlink it.
        let merged_next = rs.next;
        if let Some(s) = symbols.get_mut(l) {
            s.len += rs.len;
            s.next = merged_next;
        }
        if let Some(s) = symbols.get_mut(r) {
            s.len = 0;
        }
        if let Some(n) = merged_next.and_then(|n| symbols.get_mut(n)) {
            n.prev = Some(l);
        }
        if let Some(p) = ls.prev {
            push(&mut heap, &symbols, p, l);
        }
        if let Some(n) = merged_next {
            push(&mut heap, &symbols, l, n);
        }
    }

    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = text(s);
        if let Some(&id) = token_to_id.get(piece) {
            out.push(id);
            continue;
        }
        // llama.cpp looks each byte of the encoded text up as a one-byte string; only
        // ASCII bytes can be (valid UTF-8) tokens, the others are dropped.
        for b in piece.bytes().filter(u8::is_ascii) {
            let mut one = [0u8; 4];
            if let Some(&id) = token_to_id.get(char::from(b).encode_utf8(&mut one) as &str) {
                out.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[&str]) -> HashMap<String, u32> {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect()
    }

    #[test]
    fn merges_apply_by_rank_then_position() {
        let merges: Vec<String> = ["a b", "b c", "ab c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let ranks = Ranks::new(&merges);
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc"]);
        let mut out = Vec::new();
        tokenize_word("abc", &ranks, &v, false, &mut out);
        assert_eq!(out, [5]);
        out.clear();
        tokenize_word("bcab", &ranks, &v, false, &mut out);
        assert_eq!(out, [4, 3]);
        out.clear();
        // Equal ranks: the leftmost pair merges first.
        tokenize_word("abab", &ranks, &v, false, &mut out);
        assert_eq!(out, [3, 3]);
    }

    #[test]
    fn unknown_symbols_fall_back_to_ascii_bytes() {
        let ranks = Ranks::new(&[]);
        let v = vocab(&["x"]);
        let mut out = Vec::new();
        tokenize_word("xĠyx", &ranks, &v, false, &mut out);
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn ignore_merges_takes_whole_word_tokens() {
        let ranks = Ranks::new(&["a b".to_string()]);
        let v = vocab(&["a", "b", "ab", "abb"]);
        let mut out = Vec::new();
        tokenize_word("abb", &ranks, &v, true, &mut out);
        assert_eq!(out, [3]);
        out.clear();
        tokenize_word("abb", &ranks, &v, false, &mut out);
        assert_eq!(out, [2, 1]);
        assert_eq!(
            Ranks::new(&["a b".into(), "a b".into(), "nospace".into()]).len(),
            1
        );
    }
}
