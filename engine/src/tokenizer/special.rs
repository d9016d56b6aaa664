//! Matching special tokens in raw text before tokenization (llama.cpp's
//! `tokenizer_st_partition`).

use super::unicode::is_c_space;
use super::vocab::TokenAttr;

/// A stretch of the input: text still to tokenize, or a matched special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Splits `text` at every occurrence of each special token, longest tokens first.
/// Control and unknown tokens are matched only with `parse_special`; user-defined
/// tokens always are.
pub(super) fn partition<'a>(
    text: &'a str,
    specials: &[u32],
    texts: &[String],
    attrs: &[TokenAttr],
    parse_special: bool,
) -> Vec<Fragment<'a>> {
    let mut fragments = Vec::new();
    if text.is_empty() {
        return fragments;
    }
    fragments.push(Fragment::Text(text));
    for &id in specials {
        let attr = attrs.get(id as usize).copied().unwrap_or_default();
        if !parse_special && attr.has(TokenAttr::CONTROL | TokenAttr::UNKNOWN) {
            continue;
        }
        let Some(needle) = texts.get(id as usize).filter(|t| !t.is_empty()) else {
            continue;
        };
        let mut next = Vec::with_capacity(fragments.len());
        for f in fragments {
            match f {
                Fragment::Text(s) => split_on(s, needle, id, attr, &mut next),
                token => next.push(token),
            }
        }
        fragments = next;
    }
    fragments
}

/// Every leftmost non-overlapping occurrence of `needle` in `s` becomes a token;
/// with LSTRIP/RSTRIP the whitespace before/after it is dropped.
fn split_on<'a>(s: &'a str, needle: &str, id: u32, attr: TokenAttr, out: &mut Vec<Fragment<'a>>) {
    let b = s.as_bytes();
    let mut cur = 0;
    while let Some(m) = s
        .get(cur..)
        .and_then(|rest| rest.find(needle))
        .map(|r| cur + r)
    {
        let mut left_end = m;
        if attr.has(TokenAttr::LSTRIP) {
            while left_end > cur && b.get(left_end - 1).is_some_and(|&c| is_c_space(c)) {
                left_end -= 1;
            }
        }
        if let Some(left) = s.get(cur..left_end).filter(|l| !l.is_empty()) {
            out.push(Fragment::Text(left));
        }
        out.push(Fragment::Token(id));
        cur = m + needle.len();
        if attr.has(TokenAttr::RSTRIP) {
            while b.get(cur).is_some_and(|&c| is_c_space(c)) {
                cur += 1;
            }
        }
    }
    if let Some(rest) = s.get(cur..).filter(|r| !r.is_empty()) {
        out.push(Fragment::Text(rest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fragment::{Text, Token};

    #[test]
    fn splits_longest_first_and_respects_parse_special() {
        let texts: Vec<String> = ["<s>", "<|im_start|>", "[PAD]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let attrs = [
            TokenAttr(TokenAttr::CONTROL),
            TokenAttr(TokenAttr::CONTROL),
            TokenAttr(TokenAttr::USER_DEFINED),
        ];
        let specials = [1, 0, 2];
        let text = "<|im_start|>a<s>[PAD]b<s>";
        assert_eq!(
            partition(text, &specials, &texts, &attrs, true),
            [Token(1), Text("a"), Token(0), Token(2), Text("b"), Token(0)]
        );
        assert_eq!(
            partition(text, &specials, &texts, &attrs, false),
            [Text("<|im_start|>a<s>"), Token(2), Text("b<s>")]
        );
        assert!(partition("", &specials, &texts, &attrs, true).is_empty());
    }

    #[test]
    fn strips_whitespace_around_lstrip_rstrip_tokens() {
        let texts = vec!["<m>".to_string()];
        let attrs = [TokenAttr(
            TokenAttr::CONTROL | TokenAttr::LSTRIP | TokenAttr::RSTRIP,
        )];
        assert_eq!(
            partition("a \t<m>\n b", &[0], &texts, &attrs, true),
            [Text("a"), Token(0), Text("b")]
        );
        assert_eq!(partition(" <m> ", &[0], &texts, &attrs, true), [Token(0)]);
    }
}
