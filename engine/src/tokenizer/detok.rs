//! Token ids back to bytes: llama.cpp's `token_to_piece` and `detokenize`.

use super::unicode::ByteMap;
use super::vocab::{ModelKind, TokenAttr};

const SPECIAL: u32 = TokenAttr::UNKNOWN | TokenAttr::CONTROL;

/// The bytes a token stands for when special tokens are rendered (llama.cpp's
/// piece cache). Err for a byte token whose text is too short to hold a byte.
pub(super) fn compute_piece(
    kind: ModelKind,
    text: &str,
    attr: TokenAttr,
    bytes: &ByteMap,
) -> Result<Vec<u8>, ()> {
    if attr.has(SPECIAL | TokenAttr::USER_DEFINED) {
        return Ok(text.as_bytes().to_vec());
    }
    if attr.has(TokenAttr::NORMAL) {
        return Ok(match kind {
            ModelKind::Llama => text.replace('\u{2581}', " ").into_bytes(),
            ModelKind::Gpt2 => decode_byte_level(text, bytes),
        });
    }
    if attr.has(TokenAttr::BYTE) {
        return byte_of(text).map(|b| vec![b]);
    }
    // Unused and undefined tokens render as nothing.
    Ok(Vec::new())
}

/// GPT-2 byte-level text back to bytes. A character outside the byte map becomes
/// llama.cpp's `[UNK_BYTE_0x..<token text>]` marker.
fn decode_byte_level(text: &str, bytes: &ByteMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match bytes.decode(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// `strtol(text.substr(3, 2), 16)` truncated to a byte, as llama.cpp reads `<0xXX>`.
fn byte_of(text: &str) -> Result<u8, ()> {
    let raw = text.as_bytes();
    let digits = raw.get(3..raw.len().min(5)).ok_or(())?;
    let mut rest = digits;
    while let [b, tail @ ..] = rest
        && super::unicode::is_c_space(*b)
    {
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = rest.get(1..).unwrap_or_default();
    }
    let mut value: i64 = 0;
    for &b in rest {
        let Some(d) = char::from(b).to_digit(16) else {
            break;
        };
        value = value * 16 + i64::from(d);
    }
    if negative {
        value = -value;
    }
    Ok(value as u8)
}

/// `_try_copy`: the piece without up to `lstrip` leading spaces.
pub(super) fn strip_leading_spaces(piece: &[u8], lstrip: usize) -> &[u8] {
    let n = piece
        .iter()
        .take(lstrip)
        .take_while(|&&b| b == b' ')
        .count();
    piece.get(n..).unwrap_or_default()
}

/// llama.cpp's `clean_up_tokenization_spaces` passes, done in place exactly as its
/// C code does them (each pass reads bytes the pass itself may have moved).
pub(super) fn clean_spaces(t: &mut Vec<u8>) {
    let get = |t: &[u8], i: usize| t.get(i).copied().unwrap_or(0);
    let put = |t: &mut [u8], i: usize, x: u8| {
        if let Some(slot) = t.get_mut(i) {
            *slot = x;
        }
    };

    // " ?", " !", " .", " ," lose the space.
    let total1 = t.len();
    let mut total = usize::from(total1 > 0);
    for i in 1..total1 {
        let x = get(t, i);
        if get(t, i - 1) == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        put(t, total, x);
        total += 1;
    }

    // " ' " becomes "'".
    let total2 = total;
    total = usize::from(total2 > 0);
    let mut i = 1;
    while i < total2 {
        let x = get(t, i);
        if x == b'\'' && i + 1 < total2 && get(t, i - 1) == b' ' && get(t, i + 1) == b' ' {
            total -= 1;
            i += 1;
            put(t, i, 0);
        }
        put(t, total, x);
        total += 1;
        i += 1;
    }

    // " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
    let total3 = total;
    total = usize::from(total3 > 0);
    for i in 1..total3 {
        let x = get(t, i);
        if get(t, i - 1) == b' ' && x == b'\'' && i + 1 < total3 {
            let x1 = get(t, i + 1);
            let x2 = if i + 2 < total3 {
                Some(get(t, i + 2))
            } else {
                None
            };
            let drop = match (x1, x2) {
                (b't' | b'd', _) => false,
                (b's' | b'm', _) => true,
                (b'r' | b'v', Some(b'e')) => true,
                _ => false,
            };
            if drop {
                total -= 1;
            }
        }
        put(t, total, x);
        total += 1;
    }
    t.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(
            clean("it 's I 'm we 're they 've"),
            "it's I'm we're they've"
        );
        assert_eq!(clean("don 't I 'd we 'll"), "don 't I 'd we 'll");
        assert_eq!(clean(" ."), ".");
        assert_eq!(clean(""), "");
    }

    #[test]
    fn byte_tokens_parse_like_strtol() {
        assert_eq!(byte_of("<0x0A>"), Ok(0x0A));
        assert_eq!(byte_of("<0xff>"), Ok(0xFF));
        assert_eq!(byte_of("<0xZ>"), Ok(0));
        assert_eq!(byte_of("<0"), Err(()));
    }

    #[test]
    fn pieces_by_kind_and_attribute() {
        let bytes = ByteMap::new();
        let normal = TokenAttr(TokenAttr::NORMAL);
        let control = TokenAttr(TokenAttr::CONTROL);
        assert_eq!(
            compute_piece(ModelKind::Llama, "▁Hi▁", normal, &bytes),
            Ok(b" Hi ".to_vec())
        );
        assert_eq!(
            compute_piece(ModelKind::Gpt2, "ĠHi", normal, &bytes),
            Ok(b" Hi".to_vec())
        );
        assert_eq!(
            compute_piece(ModelKind::Gpt2, "<s>", control, &bytes),
            Ok(b"<s>".to_vec())
        );
        assert_eq!(
            compute_piece(ModelKind::Gpt2, "a€", normal, &bytes),
            Ok(b"a[UNK_BYTE_0xe282aca\xe2\x82\xac]".to_vec())
        );
        let byte = TokenAttr(TokenAttr::BYTE);
        assert_eq!(
            compute_piece(ModelKind::Llama, "<0xE2>", byte, &bytes),
            Ok(vec![0xE2])
        );
        assert_eq!(
            compute_piece(ModelKind::Llama, "x", TokenAttr(0), &bytes),
            Ok(vec![])
        );
        assert_eq!(strip_leading_spaces(b"  a", 1), b" a");
    }
}
