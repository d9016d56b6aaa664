//! `make-reference`: a reference case made by llama.cpp through
//! llama-cpp-python, by `conformance/scripts/make_reference.py` (which reuses
//! the committed references' generator code).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{ConformanceError, Result};

/// The environment variable naming the Python interpreter (default `python3`).
pub const PYTHON_ENV: &str = "SELDON_PYTHON";

/// The pinned versions the committed references were made with.
pub const PINS: &str = "llama-cpp-python==0.3.36 gguf==0.19.0 numpy==2.4.6";

/// Where the reference comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A text, tokenized by llama.cpp with BOS as the model adds it.
    TextFile(PathBuf),
    /// Token ids: a JSON list, or ids separated by whitespace or commas.
    TokensFile(PathBuf),
}

/// The interpreter: `$SELDON_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// The entry script, in this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make_reference.py")
}

fn install_hint(python: &str) -> String {
    format!(
        "install llama.cpp's Python bindings for it (this compiles llama.cpp, ~5 minutes on 2 cores):\n    \
         CMAKE_ARGS=-DGGML_NATIVE=OFF {python} -m pip install {PINS}\n\
         or use the project's pinned reference venv:\n    \
         SELDON_PYTHON=$(scripts/python-env.sh | tail -n1) seldon-conformance make-reference ..."
    )
}

/// Checks that `python` runs and imports llama_cpp, gguf and numpy.
pub fn check_python(python: &str) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", "import llama_cpp, gguf, numpy"])
        .output()
        .map_err(|e| {
            ConformanceError::Python(format!(
                "cannot run {python} ({e}); set {PYTHON_ENV} to a Python 3 interpreter and {}",
                install_hint(python)
            ))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(ConformanceError::Python(format!(
            "{python} cannot import llama_cpp, gguf and numpy ({last}); {}",
            install_hint(python)
        )));
    }
    Ok(())
}

/// Runs the script; returns the case file written (its logits lie beside it
/// as `<stem>.logits.npy`).
pub fn make_reference(
    model: &Path,
    source: &Source,
    out: &Path,
    f64_reference: bool,
) -> Result<PathBuf> {
    let input = match source {
        Source::TextFile(f) | Source::TokensFile(f) => f,
    };
    for (what, path) in [("model", model), ("input", input.as_path())] {
        if !path.is_file() {
            return Err(ConformanceError::Invalid(format!(
                "{what} file {} does not exist",
                path.display()
            )));
        }
    }
    let python = python();
    check_python(&python)?;
    let script = script();
    if !script.is_file() {
        return Err(ConformanceError::Python(format!(
            "{} is missing: make-reference runs from a seldon checkout",
            script.display()
        )));
    }
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out);
    match source {
        Source::TextFile(f) => cmd.arg("--text-file").arg(f),
        Source::TokensFile(f) => cmd.arg("--tokens-file").arg(f),
    };
    if f64_reference {
        cmd.arg("--f64-reference");
    }
    let res = cmd
        .output()
        .map_err(|e| ConformanceError::Python(format!("cannot run {python}: {e}")))?;
    if !res.status.success() {
        // The last line of a traceback says what went wrong; the rest is noise.
        let err = String::from_utf8_lossy(&res.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message")
            .trim();
        return Err(ConformanceError::Python(format!(
            "llama.cpp could not make the reference ({} {}, {}): {last}",
            python,
            script.display(),
            res.status
        )));
    }
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_says_how_to_install() {
        let e = check_python("/nonexistent/python-for-seldon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SELDON_PYTHON"), "{e}");
        assert!(e.contains("pip install llama-cpp-python==0.3.36"), "{e}");
        assert!(script().is_file());
    }
}
