//! `seldon tokenize`: token ids of a text, as llama.cpp's
//! `llama_tokenize(add_special = true, parse_special)` gives them.

use std::io::Write;
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use seldon_formats::gguf::{GgufError, GgufFile};

use crate::tokenizer::{Tokenizer, TokenizerError};

/// Arguments of `seldon tokenize`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "text_file"])))]
pub struct TokenizeArgs {
    /// The model file (.gguf) whose tokenizer to use.
    #[arg(short = 'm', long = "model", value_name = "FILE")]
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// A UTF-8 file whose whole content is the text to tokenize.
    #[arg(long = "text-file", value_name = "FILE")]
    pub text_file: Option<PathBuf>,
    /// Turn control tokens written in the text (`<|im_start|>`) into their ids
    /// instead of tokenizing them as plain text.
    #[arg(long = "parse-special")]
    pub parse_special: bool,
    /// Print a JSON array instead of space-separated ids.
    #[arg(long)]
    pub json: bool,
}

/// Why `seldon tokenize` failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The model file could not be opened or parsed.
    #[error("{0}")]
    Model(#[from] GgufError),
    /// The tokenizer could not be built, or the text not encoded.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// `--text-file` could not be read.
    #[error("reading {path}: {source}")]
    TextFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--text-file` is not UTF-8.
    #[error("{path} is not valid UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[source] std::io::Error),
}

/// The ids of the text `args` names, with the model's BOS/EOS added where
/// its metadata asks for them.
pub fn tokenize(args: &TokenizeArgs) -> Result<Vec<u32>, TokenizeError> {
    let text = match (&args.text, &args.text_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|source| TokenizeError::TextFile {
                path: path.clone(),
                source,
            })?;
            String::from_utf8(bytes).map_err(|_| TokenizeError::NotUtf8 { path: path.clone() })?
        }
        // clap requires one of the two; an empty text has no ids but BOS/EOS.
        (None, None) => String::new(),
    };
    let file = GgufFile::open(&args.model)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    Ok(tokenizer.encode(&text, true, args.parse_special)?)
}

/// `ids` as `seldon tokenize` prints them: space-separated, or a JSON array;
/// with a final newline.
pub fn format_ids(ids: &[u32], json: bool) -> String {
    let body = if json {
        let items: Vec<String> = ids.iter().map(u32::to_string).collect();
        format!("[{}]", items.join(","))
    } else {
        ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
    };
    body + "\n"
}

/// Runs `seldon tokenize`, printing to `out`.
pub fn run(args: &TokenizeArgs, out: &mut impl Write) -> Result<(), TokenizeError> {
    let ids = tokenize(args)?;
    out.write_all(format_ids(&ids, args.json).as_bytes())
        .and_then(|()| out.flush())
        .map_err(TokenizeError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_llama_tokenize_lists_them() {
        assert_eq!(format_ids(&[504, 3575, 282], false), "504 3575 282\n");
        assert_eq!(format_ids(&[504, 3575, 282], true), "[504,3575,282]\n");
        assert_eq!(format_ids(&[], false), "\n");
        assert_eq!(format_ids(&[], true), "[]\n");
    }
}
