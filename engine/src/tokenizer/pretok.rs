//! BPE pre-tokenization: splitting text into words before merges, as llama.cpp's
//! `unicode_regex_split` does for each `tokenizer.ggml.pre`.
//!
//! llama.cpp runs a list of regexes, each one splitting the pieces the previous ones
//! produced. It does not run the GPT-2, Llama-3 and Qwen2 regexes as regexes but
//! through hand-written scanners whose results differ from a regex engine's in
//! corner cases (a lone trailing space, `\s+(?!\S)` at a piece boundary). The
//! remaining regexes go through `std::regex` over a "collapsed" text in which every
//! non-ASCII code point stands for its category. Both are reproduced here: the
//! scanners step for step, the `std::regex` ones as the character-class matchers
//! they amount to. No regex engine is needed.

use super::unicode::{self, Flags, NUMBER, PUNCTUATION};

/// One splitting pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Splitter {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// Llama 3: `(?i:'s|'t|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Qwen2: as Llama 3 with `\p{N}` (single digits) instead of `\p{N}{1,3}`.
    Qwen2,
    /// `\p{N}`: every number code point on its own.
    Number,
    /// `\p{N}+`: runs of number code points.
    NumberRun,
    /// `[\p{P}\$\+<=>\^~\|]+`: runs of punctuation and those ASCII symbols.
    PunctRun,
    /// `[0-9][0-9][0-9]`: groups of three ASCII digits.
    Digits3,
}

/// What a `tokenizer.ggml.pre` name selects (llama.cpp's `llama_vocab::impl::load`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PreConfig {
    pub(super) splitters: &'static [Splitter],
    /// Post-process decoded text (`clean_up_tokenization_spaces`).
    pub(super) clean_spaces: bool,
    /// Emit a word that is itself a token without running merges.
    pub(super) ignore_merges: bool,
    /// Default for `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    pub(super) add_bos: bool,
}

const DEFAULT: &[Splitter] = &[
    Splitter::PunctRun,
    Splitter::Gpt2,
    Splitter::NumberRun,
    Splitter::Digits3,
];
const FALCON: &[Splitter] = &[Splitter::PunctRun, Splitter::Gpt2, Splitter::Digits3];
const GPT2: &[Splitter] = &[Splitter::Gpt2];
const LLAMA3: &[Splitter] = &[Splitter::Llama3];
const QWEN2: &[Splitter] = &[Splitter::Qwen2];
const STARCODER: &[Splitter] = &[Splitter::Number, Splitter::Gpt2];

/// The pre-tokenizer names seldon supports, with llama.cpp's settings for each.
/// Names whose regexes need a general regex engine (deepseek, gpt-4o, ...) are absent.
pub(super) fn pre_config(name: &str) -> Option<PreConfig> {
    let cfg = |splitters, clean_spaces| PreConfig {
        splitters,
        clean_spaces,
        ignore_merges: false,
        add_bos: false,
    };
    Some(match name {
        "" | "default" => cfg(DEFAULT, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreConfig {
            ignore_merges: true,
            add_bos: true,
            ..cfg(LLAMA3, true)
        },
        "dbrx" | "smaug-bpe" => cfg(LLAMA3, true),
        "falcon" => cfg(FALCON, true),
        "gpt-2" | "phi-2" | "gigachat" | "a.x-4.0" | "mellum" | "mpt" | "olmo" | "jais"
        | "exaone4" => cfg(GPT2, true),
        "trillion" | "granite-docling" => cfg(GPT2, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            cfg(STARCODER, true)
        }
        "smollm" | "command-r" => cfg(STARCODER, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
        | "grok-2" => cfg(QWEN2, false),
        "stablelm2" | "megrez" => cfg(QWEN2, true),
        _ => return None,
    })
}

/// Splits `text` into words and, for byte-level BPE, maps each word's bytes
/// through GPT-2's byte-to-unicode table.
pub(super) fn split(text: &str, splitters: &[Splitter], bytes: &unicode::ByteMap) -> Vec<String> {
    let cpts: Vec<char> = text.chars().collect();
    let mut offsets = vec![cpts.len()];
    for &s in splitters {
        offsets = match s {
            Splitter::Gpt2 => split_gpt2(&cpts, &offsets),
            Splitter::Llama3 => split_llama3(&cpts, &offsets, 3),
            Splitter::Qwen2 => split_llama3(&cpts, &offsets, 1),
            Splitter::Number => split_class(&cpts, &offsets, is_collapsed_number, false),
            Splitter::NumberRun => split_class(&cpts, &offsets, is_collapsed_number, true),
            Splitter::PunctRun => split_class(&cpts, &offsets, is_collapsed_punct, true),
            Splitter::Digits3 => split_digits3(&cpts, &offsets),
        };
    }
    let mut words = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for len in offsets {
        let end = start + len;
        let mut word = String::new();
        let mut buf = [0u8; 4];
        for &c in cpts.get(start..end).unwrap_or_default() {
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                word.push(bytes.encode(b));
            }
        }
        words.push(word);
        start = end;
    }
    words
}

/// One piece of the text being split further, with llama.cpp's accessors: positions
/// outside the piece read as "no code point".
struct Piece<'a> {
    cpts: &'a [char],
    ini: usize,
    end: usize,
    /// Where the last emitted word ended.
    prev: usize,
}

impl Piece<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        if (self.ini..self.end).contains(&pos) {
            self.cpts.get(pos).copied()
        } else {
            None
        }
    }
    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map_or(Flags::NONE, Flags::of)
    }
    fn cut(&mut self, end: usize, out: &mut Vec<usize>) {
        if end > self.prev {
            out.push(end - self.prev);
        }
        self.prev = end;
    }
    fn whitespace_run(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.flags(pos + n).is_whitespace() {
            n += 1;
        }
        n
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (case-insensitive when `fold`): its length.
    fn contraction(&self, pos: usize, fold: bool) -> Option<usize> {
        if self.cpt(pos) != Some('\'') || pos + 1 >= self.end {
            return None;
        }
        let at = |p| {
            self.cpt(p)
                .map(|c: char| if fold { c.to_ascii_lowercase() } else { c })
        };
        let next = at(pos + 1)?;
        if matches!(next, 's' | 't' | 'm' | 'd') {
            return Some(2);
        }
        if pos + 2 < self.end {
            let pair = (next, at(pos + 2)?);
            if matches!(pair, ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return Some(3);
            }
        }
        None
    }
}

/// Runs `scan` over every piece of `offsets`; `scan` emits words through `Piece::cut`.
fn each_piece(
    cpts: &[char],
    offsets: &[usize],
    mut scan: impl FnMut(&mut Piece<'_>, &mut Vec<usize>),
) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &len in offsets {
        let mut piece = Piece {
            cpts,
            ini: start,
            end: start + len,
            prev: start,
        };
        scan(&mut piece, &mut out);
        start += len;
    }
    out
}

fn split_gpt2(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    each_piece(cpts, offsets, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            if let Some(n) = p.contraction(pos, false) {
                pos += n;
                p.cut(pos, out);
                continue;
            }
            let space = p.cpt(pos) == Some(' ');
            let mut f2 = if space {
                p.flags(pos + 1)
            } else {
                p.flags(pos)
            };
            // ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+` share one shape.
            let class: Option<fn(Flags) -> bool> = if f2.is_letter() {
                Some(Flags::is_letter)
            } else if f2.is_number() {
                Some(Flags::is_number)
            } else if f2.is_other() {
                Some(Flags::is_other)
            } else {
                None
            };
            if let Some(class) = class {
                pos += usize::from(space);
                while class(f2) {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                p.cut(pos, out);
                continue;
            }
            let n = p.whitespace_run(pos);
            if n > 1 && p.cpt(pos + n).is_some() {
                // `\s+(?!\S)`: leave the last space to the word that follows.
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            p.cut(pos, out);
        }
    })
}

/// Llama 3 (`digits` = 3) and Qwen2 (`digits` = 1).
fn split_llama3(cpts: &[char], offsets: &[usize], digits: usize) -> Vec<usize> {
    each_piece(cpts, offsets, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            if let Some(n) = p.contraction(pos, true) {
                pos += n;
                p.cut(pos, out);
                continue;
            }
            let c = p.cpt(pos);
            let flags = p.flags(pos);
            let newline = matches!(c, Some('\r' | '\n'));
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if !(newline || flags.is_number())
                && (flags.is_letter() || p.flags(pos + 1).is_letter())
            {
                pos += 1;
                while p.flags(pos).is_letter() {
                    pos += 1;
                }
                p.cut(pos, out);
                continue;
            }
            // `\p{N}{1,digits}`, repeated over the whole run of numbers.
            if flags.is_number() {
                let mut ini = pos;
                while p.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= digits {
                        p.cut(pos, out);
                        ini = pos;
                    }
                }
                p.cut(pos, out);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. llama.cpp tests the first code point's
            // flags (not the one after the space) for "is a code point" here.
            let space = c == Some(' ');
            let mut f2 = if space { p.flags(pos + 1) } else { flags };
            if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && flags.is_some() {
                pos += usize::from(space);
                while f2.is_other() {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                while matches!(p.cpt(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                p.cut(pos, out);
                continue;
            }
            let mut n = 0;
            let mut after_newline = None;
            while p.flags(pos + n).is_whitespace() {
                if matches!(p.cpt(pos + n), Some('\r' | '\n')) {
                    after_newline = Some(pos + n + 1);
                }
                n += 1;
            }
            if let Some(end) = after_newline {
                // `\s*[\r\n]+`
                pos = end;
            } else if n > 1 && p.cpt(pos + n).is_some() {
                // `\s+(?!\S)`
                pos += n - 1;
            } else if n > 0 {
                pos += n;
            } else {
                pos += 1;
            }
            p.cut(pos, out);
        }
    })
}

/// llama.cpp's collapsed text: ASCII stays, other code points become one byte per
/// category (whitespace 0x0B, N 0xD1, L 0xD2, P 0xD3, M 0xD4, S 0xD5, else 0xD0).
/// The classes below are the collapsed regexes' bracket expressions over those bytes.
fn collapsed_category(c: char) -> Option<u8> {
    if c.is_ascii() {
        return None;
    }
    if unicode::is_whitespace(c) {
        return Some(0);
    }
    Some(Flags::of(c).category())
}

/// `[\xD1\x30-\x39]` (what `\p{N}` collapses to).
fn is_collapsed_number(c: char) -> bool {
    match collapsed_category(c) {
        None => c.is_ascii_digit(),
        Some(cat) => cat == NUMBER,
    }
}

/// `[\xD3 !-# %-* ,-/ :-; ?-@ \[-\] _ { } $ + < = > ^ ~ |]`.
fn is_collapsed_punct(c: char) -> bool {
    match collapsed_category(c) {
        None => matches!(
            c,
            '!'..='#' | '%'..='*' | ','..='/' | ':' | ';' | '?' | '@' | '['..=']' | '_' | '{' | '}'
                | '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|'
        ),
        Some(cat) => cat == PUNCTUATION,
    }
}

/// `std::regex_iterator` over one class (`run`: `class+`, else `class`): matches
/// and the gaps between them each become a word.
fn split_class(cpts: &[char], offsets: &[usize], class: fn(char) -> bool, run: bool) -> Vec<usize> {
    each_piece(cpts, offsets, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            if !p.cpt(pos).is_some_and(class) {
                pos += 1;
                continue;
            }
            p.cut(pos, out);
            pos += 1;
            while run && p.cpt(pos).is_some_and(class) {
                pos += 1;
            }
            p.cut(pos, out);
        }
        p.cut(p.end, out);
    })
}

/// `[0-9][0-9][0-9]`, leftmost and non-overlapping.
fn split_digits3(cpts: &[char], offsets: &[usize]) -> Vec<usize> {
    each_piece(cpts, offsets, |p, out| {
        let digit = |p: &Piece<'_>, pos| p.cpt(pos).is_some_and(|c: char| c.is_ascii_digit());
        let mut pos = p.ini;
        while pos < p.end {
            if digit(p, pos) && digit(p, pos + 1) && digit(p, pos + 2) {
                p.cut(pos, out);
                pos += 3;
                p.cut(pos, out);
            } else {
                pos += 1;
            }
        }
        p.cut(p.end, out);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str, splitters: &[Splitter]) -> Vec<String> {
        let cpts: Vec<char> = text.chars().collect();
        let mut offsets = vec![cpts.len()];
        for &s in splitters {
            offsets = match s {
                Splitter::Gpt2 => split_gpt2(&cpts, &offsets),
                Splitter::Llama3 => split_llama3(&cpts, &offsets, 3),
                Splitter::Qwen2 => split_llama3(&cpts, &offsets, 1),
                Splitter::Number => split_class(&cpts, &offsets, is_collapsed_number, false),
                Splitter::NumberRun => split_class(&cpts, &offsets, is_collapsed_number, true),
                Splitter::PunctRun => split_class(&cpts, &offsets, is_collapsed_punct, true),
                Splitter::Digits3 => split_digits3(&cpts, &offsets),
            };
        }
        let mut out = Vec::new();
        let mut start = 0;
        for len in offsets {
            out.push(cpts[start..start + len].iter().collect());
            start += len;
        }
        out
    }

    #[test]
    fn gpt2_splits_like_the_regex() {
        assert_eq!(
            words("Hello world's  end 123!!", GPT2),
            ["Hello", " world", "'s", " ", " end", " 123", "!!"]
        );
        assert_eq!(words("a   ", GPT2), ["a", "   "]);
        assert_eq!(words("\n\n b", GPT2), ["\n\n", " b"]);
    }

    #[test]
    fn llama3_groups_digits_and_newlines() {
        assert_eq!(words("1234567", LLAMA3), ["123", "456", "7"]);
        assert_eq!(words("x \n\n y", LLAMA3), ["x", " \n\n", " y"]);
        assert_eq!(words("I'M ok", LLAMA3), ["I", "'M", " ok"]);
        assert_eq!(words("1234567", QWEN2), ["1", "2", "3", "4", "5", "6", "7"]);
        assert_eq!(words("((\n\nx", QWEN2), ["((\n\n", "x"]);
    }

    #[test]
    fn class_splitters_emit_gaps_and_matches() {
        assert_eq!(
            words("ab12c3", &[Splitter::Number]),
            ["ab", "1", "2", "c", "3"]
        );
        assert_eq!(
            words("ab12c3", &[Splitter::NumberRun]),
            ["ab", "12", "c", "3"]
        );
        assert_eq!(
            words("a1234567b", &[Splitter::Digits3]),
            ["a", "123", "456", "7b"]
        );
        assert_eq!(words("x(.)`y", &[Splitter::PunctRun]), ["x", "(.)", "`y"]);
        assert_eq!(words("٣x", &[Splitter::Number]), ["٣", "x"]);
    }

    #[test]
    fn supported_names_resolve() {
        for name in [
            "default",
            "gpt-2",
            "llama-bpe",
            "qwen2",
            "smollm",
            "falcon",
            "",
        ] {
            assert!(pre_config(name).is_some(), "{name}");
        }
        assert!(pre_config("deepseek-llm").is_none());
        assert!(pre_config("smollm").is_some_and(|c| !c.clean_spaces));
    }
}
