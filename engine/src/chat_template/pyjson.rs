//! Python's `json.dumps` over minijinja values, byte for byte, because chat
//! templates print tool definitions and arguments with `tojson` and the model
//! was trained on what Python wrote: `", "` and `": "` separators, keys in
//! insertion order, non-ASCII left as is, floats in `repr` form. minijinja's
//! own `tojson` writes compact, HTML-escaped JSON instead.

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};

/// The `json.dumps` arguments HF's `tojson` passes through.
#[derive(Debug, Default, Clone)]
pub(super) struct DumpOptions {
    /// Pretty-print with this many spaces per level.
    pub indent: Option<usize>,
    /// Sort map keys.
    pub sort_keys: bool,
    /// Escape everything outside printable ASCII.
    pub ensure_ascii: bool,
    /// (item separator, key separator); Python's defaults depend on `indent`.
    pub separators: Option<(String, String)>,
}

/// Deepest nesting written; Python raises RecursionError around 1000, and a
/// bound keeps a self-referencing structure from overflowing the stack.
const MAX_DEPTH: usize = 512;

/// `json.dumps(value, **opts)`.
pub(super) fn dumps(value: &Value, opts: &DumpOptions) -> Result<String, Error> {
    let (item_sep, key_sep) = match &opts.separators {
        Some((i, k)) => (i.clone(), k.clone()),
        None if opts.indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let w = Writer {
        opts,
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    w.value(value, 0, &mut out)?;
    Ok(out)
}

struct Writer<'a> {
    opts: &'a DumpOptions,
    item_sep: String,
    key_sep: String,
}

impl Writer<'_> {
    fn value(&self, v: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(not_serializable("nesting too deep"));
        }
        match v.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => out.push_str(&number(v)),
            ValueKind::String => {
                string(v.as_str().unwrap_or_default(), self.opts.ensure_ascii, out)
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container(out, depth, '[', ']', &items, |item, out| {
                    self.value(item, depth + 1, out)
                })?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in v.try_iter()? {
                    let value = v.get_item(&key)?;
                    entries.push((key_text(&key)?, value));
                }
                if self.opts.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(out, depth, '{', '}', &entries, |(k, val), out| {
                    string(k, self.opts.ensure_ascii, out);
                    out.push_str(&self.key_sep);
                    self.value(val, depth + 1, out)
                })?;
            }
            ValueKind::Undefined => return Err(not_serializable("Undefined")),
            other => return Err(not_serializable(&format!("{other:?}"))),
        }
        Ok(())
    }

    /// Writes `[a, b]` / `{..}`, or the indented form, around `items`.
    fn container<T>(
        &self,
        out: &mut String,
        depth: usize,
        open: char,
        close: char,
        items: &[T],
        mut each: impl FnMut(&T, &mut String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(open);
        if items.is_empty() {
            out.push(close);
            return Ok(());
        }
        let newline = |out: &mut String, level: usize| {
            if let Some(n) = self.opts.indent {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', n * level));
            }
        };
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            newline(out, depth + 1);
            each(item, out)?;
        }
        newline(out, depth);
        out.push(close);
        Ok(())
    }
}

fn not_serializable(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("tojson: object of type {what} is not JSON serializable"),
    )
}

/// Python turns int, float, bool and None keys into strings; others fail.
fn key_text(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::Number => Ok(number(key)),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::None => Ok("null".to_owned()),
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: keys must be str, int, float, bool or None, not {other:?}"),
        )),
    }
}

fn number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) if f.is_nan() => "NaN".to_owned(),
        Ok(f) if f.is_infinite() => if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned(),
        Ok(f) => float_repr(f),
        Err(_) => v.to_string(),
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed
/// notation when the decimal exponent is in [-4, 16), else as `1.5e-07`.
pub(super) fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Python uses.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// A JSON string literal as Python's encoder writes it.
fn string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0, "0.0"),
            (100.0, "100.0"),
            (2.5e-7, "2.5e-07"),
            (1e300, "1e+300"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn strings_escape_as_python() {
        let mut out = String::new();
        string("a\"b\\c\nd\u{1}é😀\u{7f}", false, &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é😀\u{7f}\"");
        out.clear();
        string("é😀\u{7f}", true, &mut out);
        assert_eq!(out, "\"\\u00e9\\ud83d\\ude00\\u007f\"");
    }
}
