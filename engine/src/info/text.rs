//! The human-readable `seldon info` report.

use std::fmt::Write;

use super::{FileFormat, ModelInfo};

/// Longer strings (licences, long descriptions) are cut in the text report;
/// `--json` has them whole.
const MAX_VALUE_CHARS: usize = 72;

/// `1234567` -> `"1,234,567"`: byte counts of models are hard to read otherwise.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with two decimals ("93.81 MiB").
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// A metadata value on one line: strings unquoted and cut, the rest as JSON.
fn one_line(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() > MAX_VALUE_CHARS {
        let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}... ({} chars)", s.chars().count())
    } else {
        s
    }
}

fn shape(dims: &[u64]) -> String {
    let inner: Vec<String> = dims.iter().map(u64::to_string).collect();
    format!("[{}]", inner.join(", "))
}

impl ModelInfo {
    /// The text report: summary, metadata, tensor table and totals by type.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the results are ignored on purpose.
        let _ = self.write_summary(&mut out);
        let _ = self.write_tensors(&mut out);
        out
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "file:          {}", self.path)?;
        let format = match (self.format, self.version) {
            (FileFormat::Gguf, Some(v)) => format!("GGUF v{v}"),
            (FileFormat::Gguf, None) => "GGUF".to_string(),
            (FileFormat::Safetensors, _) => "safetensors".to_string(),
        };
        writeln!(
            out,
            "format:        {format}, {} bytes ({}), tensor data at offset {}",
            grouped(self.file_bytes),
            human_bytes(self.file_bytes),
            self.data_offset
        )?;
        writeln!(
            out,
            "architecture:  {}",
            self.architecture.as_deref().unwrap_or("(none)")
        )?;
        if let Some((_, name)) = self.metadata.iter().find(|(k, _)| k == "general.name") {
            writeln!(out, "name:          {}", one_line(name))?;
        }

        if !self.hyperparameters.0.is_empty() {
            writeln!(out, "\nhyperparameters:")?;
            for (k, v) in &self.hyperparameters.0 {
                writeln!(out, "  {k:<40} {}", one_line(v))?;
            }
        }

        if let Some(tok) = &self.tokenizer {
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
            writeln!(out, "\ntokenizer:")?;
            writeln!(
                out,
                "  model {}, pre-tokenizer {}, vocab size {}, merges {}",
                tok.model.as_deref().unwrap_or("-"),
                tok.pre.as_deref().unwrap_or("-"),
                opt(tok.vocab_size),
                opt(tok.merges)
            )?;
            let ids: Vec<String> = tok
                .special_ids
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(out, "  special ids: {}", ids.join(" "))?;
            let flag = |b: Option<bool>| b.map_or("-".to_string(), |b| b.to_string());
            writeln!(
                out,
                "  add_bos {}, add_eos {}",
                flag(tok.add_bos),
                flag(tok.add_eos)
            )?;
        }
        if self.format == FileFormat::Gguf {
            let template = if self.chat_template {
                "present"
            } else {
                "absent"
            };
            writeln!(out, "chat template: {template}")?;
        }

        // Whatever the sections above did not show (general.*, quantization, ...).
        let arch_prefix = self.architecture.as_ref().map(|a| format!("{a}."));
        let rest: Vec<_> = self
            .metadata
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("tokenizer.")
                    && !arch_prefix.as_ref().is_some_and(|p| k.starts_with(p))
            })
            .collect();
        if !rest.is_empty() {
            writeln!(out, "\nmetadata:")?;
            for (k, v) in rest {
                writeln!(out, "  {k:<40} {}", one_line(v))?;
            }
        }
        Ok(())
    }

    fn write_tensors(&self, out: &mut String) -> std::fmt::Result {
        let name_w = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(out, "\ntensors: {}", self.tensors.len())?;
        writeln!(
            out,
            "  {:<name_w$}  {:<7}  {:<22}  {:>14}",
            "name", "type", "shape (ggml order)", "bytes"
        )?;
        for t in &self.tensors {
            writeln!(
                out,
                "  {:<name_w$}  {:<7}  {:<22}  {:>14}",
                t.name,
                t.ty,
                shape(&t.shape),
                grouped(t.bytes)
            )?;
        }
        writeln!(out, "\ntotals by type:")?;
        writeln!(
            out,
            "  {:<7}  {:>6}  {:>16}  {:>11}  {:>14}",
            "type", "count", "bytes", "", "elements"
        )?;
        let total_label = "total".to_string();
        let rows = self
            .totals_by_type
            .iter()
            .chain([(&total_label, &self.totals)]);
        for (ty, t) in rows {
            writeln!(
                out,
                "  {:<7}  {:>6}  {:>16}  {:>11}  {:>14}",
                ty,
                t.count,
                grouped(t.bytes),
                human_bytes(t.bytes),
                grouped(t.elements)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(98_362_432), "98,362,432");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(98_362_432), "93.81 MiB");
    }

    #[test]
    fn long_values_are_cut_to_one_line() {
        let long = serde_json::Value::String("a\nb".repeat(50));
        let line = one_line(&long);
        assert!(!line.contains('\n'));
        assert!(line.ends_with("(150 chars)"), "{line}");
    }
}
