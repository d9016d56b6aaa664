//! Turning generated token bytes into text pieces: UTF-8 characters that span
//! tokens are joined before they are emitted, and text that could be the
//! start of a stop string is held back until it is known not to be one.

/// Joins token bytes into UTF-8 text, keeping an incomplete character at the
/// end until the next bytes complete it. Invalid bytes become U+FFFD.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Joiner {
    pending: Vec<u8>,
}

impl Utf8Joiner {
    /// Adds `bytes` and returns the text that is complete so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is valid UTF-8 by construction.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // An incomplete character at the end: wait for more.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(n..).unwrap_or(&[]);
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Whatever is left (an incomplete character), replaced by U+FFFD.
    pub(crate) fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// Finds stop strings in streamed text and holds back a tail that could
/// still grow into one.
#[derive(Debug, Default, Clone)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What [`StopMatcher::push`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matched {
    /// Text that is safe to emit now.
    pub(crate) emit: String,
    /// The index of the stop string that ended the text, if one did; the stop
    /// string and everything after it are dropped.
    pub(crate) stop: Option<usize>,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub(crate) fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.to_vec(),
            held: String::new(),
        }
    }

    /// Adds `text`; returns what may be emitted and whether a stop string ended it.
    pub(crate) fn push(&mut self, text: &str) -> Matched {
        self.held.push_str(text);
        let first = self
            .stops
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|at| (at, i)))
            .min();
        if let Some((at, i)) = first {
            let emit = self.held[..at].to_owned();
            self.held.clear();
            return Matched {
                emit,
                stop: Some(i),
            };
        }
        let keep = self.longest_prefix_tail();
        let split = self.held.len() - keep;
        let emit = self.held[..split].to_owned();
        self.held.drain(..split);
        Matched { emit, stop: None }
    }

    /// The held text, once generation ended without a stop string.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The length of the longest tail of the held text that is a proper
    /// prefix of some stop string.
    fn longest_prefix_tail(&self) -> usize {
        let h = self.held.as_str();
        (1..=h.len())
            .rev()
            .filter(|&n| h.is_char_boundary(h.len() - n))
            .find(|&n| {
                let tail = &h[h.len() - n..];
                self.stops
                    .iter()
                    .any(|s| s.len() > n && s.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_characters_split_across_tokens_are_joined() {
        let mut j = Utf8Joiner::default();
        let e = "é".as_bytes();
        assert_eq!(j.push(b"a"), "a");
        assert_eq!(j.push(&e[..1]), "");
        assert_eq!(j.push(&e[1..]), "é");
        assert_eq!(j.push(&[0xff, b'b']), "\u{fffd}b");
        assert_eq!(j.push(&[0xe2, 0x82]), "");
        assert_eq!(j.finish(), "\u{fffd}");
    }

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out.push_str(&r.emit);
            if r.stop.is_some() {
                return (out, r.stop);
            }
        }
        out.push_str(&m.finish());
        (out, None)
    }

    #[test]
    fn stop_strings_split_across_pieces_are_found_and_not_emitted() {
        assert_eq!(
            run(&["END"], &["ab", "cE", "N", "Dxyz"]),
            ("abc".into(), Some(0))
        );
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), Some(0)));
        // The earliest match wins, whichever stop string it is.
        assert_eq!(run(&["yz", "x"], &["wxyz"]), ("w".into(), Some(1)));
        // A false start is released once it cannot match any more.
        let stops = vec!["END".to_string()];
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("aE").emit, "a");
        assert_eq!(m.push("N").emit, "");
        assert_eq!(m.push("d").emit, "ENd");
        // Without a match, the held tail comes out at the end.
        assert_eq!(run(&["END"], &["abE", "N"]), ("abEN".into(), None));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), None));
        assert_eq!(run(&["é!"], &["aé"]), ("aé".into(), None));
    }
}
