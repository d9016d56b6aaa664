//! The committed reference format (conformance/references/README.md): each
//! case's `case.json`, its logits (`.npy`), the tokenizer corpora and
//! `manifest.json`, read with serde and checked against each other.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ConformanceError, Result};
use crate::npy::NpyArray;

/// Where a case's `model` path points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelIn {
    /// Relative to the references root (the directory of `manifest.json`).
    Root,
    /// A file name inside `$SELDON_MODELS` (default `~/.cache/seldon/models`).
    ModelsDir,
    /// A path as given (references made by `seldon-conformance make-reference`),
    /// absolute or relative to the case file's directory.
    Path,
}

/// The arguments `llama_tokenize` was called with.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Prompt {
    /// The text.
    pub text: String,
    /// BOS/EOS added where the model's metadata says so.
    pub add_special: bool,
    /// Control tokens written in the text become their ids.
    pub parse_special: bool,
}

/// A LoRA adapter applied to a case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AdapterRef {
    /// The adapter GGUF, resolved like a `root` model.
    pub path: String,
    /// The user scale given to `llama_set_adapters_lora`.
    pub scale: f32,
}

/// llama.cpp's greedy continuation after the prompt.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Greedy {
    /// The tokens (lowest id among tied logits; does not stop at EOS).
    pub tokens: Vec<u32>,
    /// Each step's top-1 minus top-2 logit.
    pub margins: Vec<f64>,
    /// The smallest margin.
    pub min_margin: f64,
}

/// How far llama.cpp is from the float64 reference forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Distances {
    /// The largest |logit difference|.
    pub max_abs_logit_diff: f64,
    /// Mean KL(llama.cpp || f64) per position, in nats.
    pub mean_kl: f64,
    /// The largest per-position KL.
    pub max_kl: f64,
    /// Fraction of positions with the same most likely token.
    pub top1_agreement: f64,
}

/// A stored array: its file and what it must hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ArrayRef {
    /// The `.npy` file (see [`Case::resolve`]).
    pub file: String,
    /// numpy's dtype name (`float32`, `int32`).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
}

/// The compact form of a case's logits (SmolLM2 cases).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TopKRef {
    /// int32 `[n, k]` token ids, highest logit first.
    pub topk_ids: ArrayRef,
    /// float32 `[n, k]` log-probabilities.
    pub topk_logprobs: ArrayRef,
    /// float32 `[n]` log-sum-exp of each row.
    pub lse: ArrayRef,
    /// Entries per row.
    pub k: usize,
}

/// One reference case (`case.json`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Case {
    /// The case id.
    pub name: String,
    /// `tiny`, `lora`, `smollm2`, or `custom` for `make-reference` output.
    pub kind: String,
    /// `general.architecture`.
    pub arch: String,
    /// llama.cpp's ftype name (`Q4_K_M`, `TQ1_0`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
    /// The model file (see `model_in`).
    pub model: String,
    /// Where `model` points.
    pub model_in: ModelIn,
    /// The model file's sha256.
    pub model_sha256: String,
    /// How many tensors of each ggml type the model has.
    #[serde(default)]
    pub tensor_types: BTreeMap<String, u64>,
    /// Width of a logits row.
    pub n_vocab: usize,
    /// The prompt the tokens come from, when there was one.
    #[serde(default)]
    pub prompt: Option<Prompt>,
    /// The sequence the logits belong to.
    pub tokens: Vec<u32>,
    /// `tokens.len()`.
    pub n_tokens: usize,
    /// LoRA adapters applied.
    #[serde(default)]
    pub adapters: Vec<AdapterRef>,
    /// llama.cpp's greedy continuation.
    pub greedy: Greedy,
    /// llama.cpp's distance from the float64 reference, when it was computed.
    #[serde(default)]
    pub f64_reference: Option<Distances>,
    /// The llama.cpp context settings.
    #[serde(default)]
    pub settings: serde_json::Value,
    /// Full logits, `float32 [n_tokens, n_vocab]`.
    #[serde(default)]
    pub logits: Option<ArrayRef>,
    /// Top-k log-probabilities instead of full logits.
    #[serde(default)]
    pub topk: Option<TopKRef>,
}

/// A case's reference logits, loaded and checked against the case.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceData {
    /// `[n_tokens][n_vocab]`.
    Full(Vec<f32>),
    /// The top-k rows.
    TopK {
        /// `[n_tokens][k]`.
        ids: Vec<u32>,
        /// `[n_tokens][k]`.
        logprobs: Vec<f32>,
        /// `[n_tokens]`.
        lse: Vec<f32>,
        /// Entries per row.
        k: usize,
    },
}

impl ReferenceData {
    /// The borrowed form [`crate::metrics::compare`] takes.
    pub fn as_ref_logits(&self) -> crate::metrics::RefLogits<'_> {
        match self {
            Self::Full(v) => crate::metrics::RefLogits::Full(v),
            Self::TopK {
                ids,
                logprobs,
                lse,
                k,
            } => crate::metrics::RefLogits::TopK {
                ids,
                logprobs,
                lse,
                k: *k,
            },
        }
    }
}

/// Reads and parses a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| ConformanceError::io(path, e))?;
    serde_json::from_slice(&text).map_err(|source| ConformanceError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// The models directory: `$SELDON_MODELS`, else `~/.cache/seldon/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SELDON_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/seldon/models")
}

/// A case file and the root its paths are relative to.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The parsed `case.json`.
    pub case: Case,
    /// The `case.json` file.
    pub path: PathBuf,
    /// The references root: the nearest ancestor holding `manifest.json`, or
    /// the case file's directory.
    pub root: PathBuf,
}

impl LoadedCase {
    /// Reads `path` and checks that the case agrees with itself.
    pub fn open(path: &Path) -> Result<Self> {
        let case: Case = read_json(path)?;
        case.validate()?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let root = dir
            .ancestors()
            .find(|d| d.join("manifest.json").is_file())
            .map_or_else(|| dir.clone(), Path::to_path_buf);
        Ok(Self {
            case,
            path: path.to_path_buf(),
            root,
        })
    }

    /// The case id as the summary tables name it: its directory relative to
    /// the references root (`tiny/llama-Q8_0`), else its `name`.
    pub fn id(&self) -> String {
        self.path
            .parent()
            .and_then(|d| d.strip_prefix(&self.root).ok())
            .map(|d| d.to_string_lossy().replace('\\', "/"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.case.name.clone())
    }

    /// A file the case names: relative to the case file's directory when it
    /// exists there (standalone references), else to the references root.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        let rel = Path::new(rel);
        if rel.is_absolute() {
            return rel.to_path_buf();
        }
        let local = self.path.parent().unwrap_or(Path::new(".")).join(rel);
        if local.exists() {
            local
        } else {
            self.root.join(rel)
        }
    }

    /// The model file the case runs.
    pub fn model_path(&self) -> PathBuf {
        match self.case.model_in {
            ModelIn::Root | ModelIn::Path => self.resolve(&self.case.model),
            ModelIn::ModelsDir => models_dir().join(&self.case.model),
        }
    }

    /// Loads the reference logits and checks their shapes against the case.
    pub fn load_reference(&self) -> Result<ReferenceData> {
        let c = &self.case;
        let n = c.n_tokens;
        match (&c.logits, &c.topk) {
            (Some(l), None) => {
                let a = self.load_array(l, "float32", &[n, c.n_vocab])?;
                Ok(ReferenceData::Full(a.into_f32()?))
            }
            (None, Some(t)) => {
                let k = t.k;
                if k == 0 || k > c.n_vocab {
                    return Err(self.invalid(format!("top-k of {k} for {} tokens", c.n_vocab)));
                }
                let ids = self.load_array(&t.topk_ids, "int32", &[n, k])?.into_i64()?;
                let ids = ids
                    .into_iter()
                    .map(|id| {
                        u32::try_from(id)
                            .ok()
                            .filter(|&v| (v as usize) < c.n_vocab)
                            .ok_or_else(|| {
                                self.invalid(format!("top-k id {id} outside the vocabulary"))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let logprobs = self
                    .load_array(&t.topk_logprobs, "float32", &[n, k])?
                    .into_f32()?;
                let lse = self.load_array(&t.lse, "float32", &[n])?.into_f32()?;
                Ok(ReferenceData::TopK {
                    ids,
                    logprobs,
                    lse,
                    k,
                })
            }
            _ => Err(self.invalid("needs exactly one of `logits` and `topk`".into())),
        }
    }

    fn load_array(&self, r: &ArrayRef, dtype: &str, shape: &[usize]) -> Result<NpyArray> {
        if r.dtype != dtype || r.shape != shape {
            return Err(self.invalid(format!(
                "{}: declared {} {:?}, expected {dtype} {shape:?}",
                r.file, r.dtype, r.shape
            )));
        }
        let a = NpyArray::read(&self.resolve(&r.file))?;
        a.expect_shape(&r.file, shape)?;
        Ok(a)
    }

    fn invalid(&self, what: String) -> ConformanceError {
        ConformanceError::Invalid(format!("{}: {what}", self.path.display()))
    }
}

impl Case {
    /// Checks the fields that must agree: token count, vocabulary, greedy
    /// margins.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(ConformanceError::Invalid(format!(
                "case {}: {m}",
                self.name
            )))
        };
        if self.tokens.len() != self.n_tokens || self.n_tokens == 0 {
            return bad(format!(
                "{} tokens, n_tokens {}",
                self.tokens.len(),
                self.n_tokens
            ));
        }
        if self.n_vocab == 0 {
            return bad("n_vocab is 0".into());
        }
        if let Some(t) = self
            .tokens
            .iter()
            .chain(&self.greedy.tokens)
            .find(|&&t| t as usize >= self.n_vocab)
        {
            return bad(format!(
                "token {t} outside the vocabulary of {}",
                self.n_vocab
            ));
        }
        if self.greedy.tokens.len() != self.greedy.margins.len() {
            return bad("greedy tokens and margins differ in length".into());
        }
        Ok(())
    }
}

/// One file in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ManifestFile {
    /// Relative to the references root.
    pub path: String,
    /// Size.
    pub bytes: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// `manifest.json`: versions and every generated file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    /// The llama.cpp commit the references come from.
    pub llama_cpp_commit: String,
    /// The llama-cpp-python version.
    pub llama_cpp_python: String,
    /// The ggml version.
    #[serde(default)]
    pub ggml_version: String,
    /// The reference format version.
    pub format_version: u32,
    /// Every generated file.
    pub files: Vec<ManifestFile>,
}

/// A tokenizer corpus case (`tokenizer/*.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenizerCase {
    /// The text.
    pub text: String,
    /// As [`Prompt::add_special`].
    pub add_special: bool,
    /// As [`Prompt::parse_special`].
    pub parse_special: bool,
    /// llama.cpp's token ids.
    pub tokens: Vec<u32>,
}

/// A tokenizer corpus: one vocabulary and llama.cpp's tokenizations.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenizerFile {
    /// The model whose vocabulary this is.
    pub model: String,
    /// Where `model` points.
    pub model_in: ModelIn,
    /// The vocabulary size.
    pub n_vocab: usize,
    /// The texts.
    pub cases: Vec<TokenizerCase>,
}

/// A references directory: `manifest.json` and everything it lists.
#[derive(Debug, Clone)]
pub struct References {
    /// The directory holding `manifest.json`.
    pub root: PathBuf,
    /// The parsed manifest.
    pub manifest: Manifest,
}

/// The format version this crate reads.
pub const FORMAT_VERSION: u32 = 1;

impl References {
    /// The committed references, `conformance/references/` of this checkout.
    pub fn committed_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("references")
    }

    /// The extended suite, `<models dir>/conformance-extended/`.
    pub fn extended_dir() -> PathBuf {
        models_dir().join("conformance-extended")
    }

    /// Reads `root/manifest.json`.
    pub fn open(root: &Path) -> Result<Self> {
        let manifest: Manifest = read_json(&root.join("manifest.json"))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(ConformanceError::Invalid(format!(
                "{}: format_version {}, this build reads {FORMAT_VERSION}",
                root.display(),
                manifest.format_version
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            manifest,
        })
    }

    /// Every `case.json` the manifest lists, in manifest (path) order.
    pub fn case_files(&self) -> Vec<PathBuf> {
        self.listed(|p| p.ends_with("/case.json"))
    }

    /// Every tokenizer corpus the manifest lists.
    pub fn tokenizer_files(&self) -> Vec<PathBuf> {
        self.listed(|p| p.starts_with("tokenizer/") && p.ends_with(".json"))
    }

    /// Every model file (`.gguf`) the manifest lists.
    pub fn model_files(&self) -> Vec<PathBuf> {
        self.listed(|p| p.ends_with("/model.gguf"))
    }

    fn listed(&self, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        self.manifest
            .files
            .iter()
            .filter(|f| keep(&f.path))
            .map(|f| self.root.join(&f.path))
            .collect()
    }

    /// Resolves a tokenizer corpus's model path.
    pub fn tokenizer_model(&self, t: &TokenizerFile) -> PathBuf {
        match t.model_in {
            ModelIn::Root | ModelIn::Path => self.root.join(&t.model),
            ModelIn::ModelsDir => models_dir().join(&t.model),
        }
    }
}
