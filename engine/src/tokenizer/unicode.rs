//! Code point classification and GPT-2's byte-to-unicode mapping, as llama.cpp's
//! `unicode.cpp` defines them.

use super::unicode_data::CATEGORY_RANGES;

/// Flags of one code point: llama.cpp's `unicode_cpt_flags` category bits plus its
/// whitespace bit. The value 0 means "no code point" (a position past the end of a
/// word), which the splitters test as llama.cpp tests `flags.as_uint()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Flags(u16);

pub(super) const UNDEFINED: u8 = 0x01;
pub(super) const NUMBER: u8 = 0x02;
pub(super) const LETTER: u8 = 0x04;
pub(super) const PUNCTUATION: u8 = 0x20;
const WHITESPACE: u16 = 0x100;

impl Flags {
    /// Flags of a position outside the current word.
    pub(super) const NONE: Flags = Flags(0);

    pub(super) fn of(cpt: char) -> Flags {
        let key = u32::from(cpt);
        // Entries pack start << 8 | flags; the last entry starting at or before cpt wins.
        let idx = CATEGORY_RANGES.partition_point(|&e| (e >> 8) <= key);
        let category = match idx.checked_sub(1).and_then(|i| CATEGORY_RANGES.get(i)) {
            Some(&e) => (e & 0xff) as u8,
            None => UNDEFINED,
        };
        let ws = if is_whitespace(cpt) { WHITESPACE } else { 0 };
        Flags(u16::from(category) | ws)
    }

    /// The one category bit (llama.cpp's `category_flag()`).
    pub(super) fn category(self) -> u8 {
        (self.0 & 0xff) as u8
    }
    pub(super) fn is_some(self) -> bool {
        self.0 != 0
    }
    pub(super) fn is_letter(self) -> bool {
        self.0 & u16::from(LETTER) != 0
    }
    pub(super) fn is_number(self) -> bool {
        self.0 & u16::from(NUMBER) != 0
    }
    pub(super) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE != 0
    }
    /// Neither whitespace, letter nor number, but a code point: `[^\s\p{L}\p{N}]`.
    pub(super) fn is_other(self) -> bool {
        self.is_some() && !self.is_whitespace() && !self.is_letter() && !self.is_number()
    }
}

/// Unicode's White_Space property: llama.cpp's `unicode_set_whitespace`.
pub(super) fn is_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{09}'..='\u{0D}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other
/// 68 bytes to U+0100.. in byte order, so every byte is one visible character.
pub(super) fn byte_to_char(b: u8) -> char {
    if is_self_mapped(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !is_self_mapped(x)).count() as u32;
    char::from_u32(0x100 + rank).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn is_self_mapped(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The table form of [`byte_to_char`] plus its inverse.
#[derive(Debug, Clone)]
pub(super) struct ByteMap {
    to_char: [char; 256],
}

impl ByteMap {
    pub(super) fn new() -> ByteMap {
        let mut to_char = ['\0'; 256];
        for (b, slot) in (0u8..=255).zip(to_char.iter_mut()) {
            *slot = byte_to_char(b);
        }
        ByteMap { to_char }
    }

    pub(super) fn encode(&self, b: u8) -> char {
        self.to_char[usize::from(b)]
    }

    /// Inverse of [`ByteMap::encode`]; None for characters GPT-2 never produces.
    pub(super) fn decode(&self, c: char) -> Option<u8> {
        match u32::from(c) {
            x @ 0..=0xFF => {
                let b = x as u8;
                is_self_mapped(b).then_some(b)
            }
            x @ 0x100..=0x143 => {
                let rank = (x - 0x100) as usize;
                (0u8..=255).filter(|&b| !is_self_mapped(b)).nth(rank)
            }
            _ => None,
        }
    }
}

/// C's `isspace` in the "C" locale, which llama.cpp uses to strip around special tokens.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips_and_matches_gpt2() {
        let map = ByteMap::new();
        assert_eq!(map.encode(b' '), 'Ġ');
        assert_eq!(map.encode(b'\n'), 'Ċ');
        assert_eq!(map.encode(b'a'), 'a');
        assert_eq!(map.encode(0xAD), '\u{143}');
        for b in 0u8..=255 {
            assert_eq!(map.decode(map.encode(b)), Some(b));
        }
        assert_eq!(map.decode('\u{144}'), None);
        assert_eq!(map.decode('\u{AD}'), None);
    }

    #[test]
    fn categories_follow_unicode_15_1() {
        assert_eq!(Flags::of('a').category(), LETTER);
        assert_eq!(Flags::of('7').category(), NUMBER);
        assert_eq!(Flags::of('!').category(), PUNCTUATION);
        assert_eq!(Flags::of('$').category(), 0x40);
        assert_eq!(Flags::of('\u{301}').category(), 0x10);
        assert_eq!(Flags::of('\u{0}').category(), 0x80);
        assert_eq!(Flags::of(' ').category(), 0x08);
        // U+2FFC joined Unicode in 15.1 (So); U+10D40 only in 16.0.
        assert_eq!(Flags::of('\u{2FFC}').category(), 0x40);
        assert_eq!(Flags::of('\u{10D40}').category(), UNDEFINED);
        assert_eq!(Flags::of('\u{10FFFF}').category(), UNDEFINED);
        assert!(is_whitespace('\u{3000}') && !is_whitespace('\u{200B}'));
    }
}
