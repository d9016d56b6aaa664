//! The library API for apps that embed seldon: load a model once into an
//! [`Engine`], open any number of independent [`Session`]s on it (each with
//! its own KV cache), and generate text from a prompt or a chat, streamed
//! through a callback or an iterator of text pieces.
//!
//! ```no_run
//! use seldon_engine::{Engine, EngineOptions, GenerateOptions};
//!
//! let engine = Engine::load("SmolLM2-135M-Instruct.Q4_1.gguf", EngineOptions::default())?;
//! let mut session = engine.session()?;
//! let reply = session.user_turn("What is the capital of France?", &GenerateOptions::default(), |piece| {
//!     print!("{piece}");
//! })?;
//! println!("\n[{} tokens, stopped by {}]", reply.tokens.len(), reply.stop.name());
//! # Ok::<(), seldon_engine::EngineError>(())
//! ```
//!
//! A session keeps the tokens its KV cache holds. Each call evaluates only
//! what follows the longest prefix it shares with them, so a chat's second
//! turn prefills just the new messages.

mod chat;
mod stream;
mod text;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use seldon_kernels::kv_cache::KvType;
use seldon_kernels::{Gpu, GpuOptions};

use crate::chat_template::{ChatMessage, ChatTemplate, TemplateError};
use crate::generate::run::context_size;
use crate::model::{CpuModel, Forward, GpuModel, Logits, Model, ModelError, SessionOptions};
use crate::tokenizer::{Tokenizer, TokenizerError};

pub use stream::{Completion, GenerateOptions, TextStream};

/// Where a model runs.
// Made once per engine, so the size of `GpuOptions` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Device {
    /// The f32 CPU reference path (slow; the oracle the GPU is checked against).
    Cpu,
    /// A GPU through wgpu; the options pick the adapter (`SELDON_DEVICE` by default).
    Gpu(GpuOptions),
}

impl Default for Device {
    fn default() -> Self {
        Self::Gpu(GpuOptions::default())
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// CPU or GPU.
    pub device: Device,
    /// Context size (KV cache positions) of each session; 0 takes the
    /// model's training context, capped at
    /// [`DEFAULT_MAX_CTX`](crate::generate::run::DEFAULT_MAX_CTX).
    pub n_ctx: usize,
    /// Key cache element type on the GPU (the CPU path keeps f32).
    pub kv_type_k: KvType,
    /// Value cache element type on the GPU (the CPU path keeps f32).
    pub kv_type_v: KvType,
    /// Prompt tokens per forward call (at least 1).
    pub batch_size: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            device: Device::default(),
            n_ctx: 0,
            kv_type_k: KvType::F16,
            kv_type_v: KvType::F16,
            batch_size: 512,
        }
    }
}

impl EngineOptions {
    /// The defaults on the CPU reference path.
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            ..Self::default()
        }
    }
}

/// Why loading, prompting or generating failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model could not be loaded or run (this includes a prompt that does
    /// not fit the context: [`ModelError::ContextFull`]).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer could not be built or could not encode the prompt.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// The chat template is missing or failed to render.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// A handle that stops a generation between two steps (prompt micro-batches
/// or generated tokens). Clones share one flag, so it can be cancelled from
/// another thread or from inside the streaming callback.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every generation that watches this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called (since the last reset).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Clears the flag so that the token can be used again.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What sessions share: the model, its tokenizer and chat template, and the
/// backend that makes a KV cache for each session.
#[derive(Debug)]
struct Shared {
    model: Arc<Model>,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    n_ctx: usize,
    batch_size: usize,
    kv_type_k: KvType,
    kv_type_v: KvType,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Cpu,
    /// Kernels and weights, uploaded once and shared by every session.
    Gpu(Arc<GpuModel>),
}

impl Shared {
    /// A forward pass with an empty KV cache of its own: the one place that
    /// knows how a backend makes a per-sequence state.
    fn new_forward(&self) -> Result<Box<dyn Forward + Send>, ModelError> {
        match &self.backend {
            Backend::Cpu => Ok(Box::new(CpuModel::new(
                Arc::clone(&self.model),
                self.n_ctx,
            )?)),
            Backend::Gpu(gpu_model) => Ok(Box::new(gpu_model.session(SessionOptions {
                n_ctx: self.n_ctx,
                kv_type_k: self.kv_type_k,
                kv_type_v: self.kv_type_v,
                max_batch: self.batch_size.min(self.n_ctx),
            })?)),
        }
    }

    fn template(&self) -> Result<&ChatTemplate, EngineError> {
        match &self.template {
            Some(t) => Ok(t),
            // Loading it again gives the reason it failed at load time.
            None => Err(ChatTemplate::from_gguf(self.model.file())
                .err()
                .unwrap_or(TemplateError::Missing)
                .into()),
        }
    }
}

/// A loaded model that sessions run on. Cloning it is cheap and shares the
/// model; sessions are independent of each other and of the engine.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    /// Maps the GGUF model at `path` and prepares `options.device`.
    pub fn load(path: impl AsRef<Path>, options: EngineOptions) -> Result<Self, EngineError> {
        Self::from_model(Arc::new(Model::open(path.as_ref())?), options)
    }

    /// An engine over an already opened model.
    pub fn from_model(model: Arc<Model>, options: EngineOptions) -> Result<Self, EngineError> {
        if options.batch_size == 0 {
            return Err(ModelError::Invalid("the batch size must be at least 1".into()).into());
        }
        let tokenizer = Tokenizer::from_gguf(model.file())?;
        // A model without a usable template still generates; chat says why not.
        let template = ChatTemplate::from_gguf(model.file()).ok();
        let n_ctx = context_size(options.n_ctx, &model);
        let backend = match options.device {
            Device::Cpu => Backend::Cpu,
            Device::Gpu(options) => {
                let gpu = Arc::new(Gpu::new(options).map_err(ModelError::from)?);
                Backend::Gpu(GpuModel::load(gpu, &model)?)
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                model,
                tokenizer,
                template,
                n_ctx,
                batch_size: options.batch_size,
                kv_type_k: options.kv_type_k,
                kv_type_v: options.kv_type_v,
                backend,
            }),
        })
    }

    /// A new session with an empty KV cache and chat history.
    pub fn session(&self) -> Result<Session, EngineError> {
        Ok(Session {
            forward: self.shared.new_forward()?,
            shared: Arc::clone(&self.shared),
            cached: Vec::new(),
            history: Vec::new(),
            last_chat: None,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.shared.model
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// The model's chat template, if it has a usable one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.shared.template.as_ref()
    }

    /// The context size of each session.
    pub fn n_ctx(&self) -> usize {
        self.shared.n_ctx
    }
}

/// One sequence on an [`Engine`]'s model: a KV cache, the tokens it holds,
/// and a chat history for [`user_turn`](Session::user_turn).
pub struct Session {
    shared: Arc<Shared>,
    forward: Box<dyn Forward + Send>,
    /// The tokens whose keys and values the cache holds, position by position.
    cached: Vec<u32>,
    history: Vec<ChatMessage>,
    /// The last chat prompt with its reply, as text and as the tokens that
    /// were evaluated for it, so that the next turn can extend those tokens.
    last_chat: Option<chat::ChatState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.forward.backend())
            .field("cached", &self.cached.len())
            .field("history", &self.history.len())
            .finish()
    }
}

impl Session {
    /// The tokens the KV cache holds (positions `0..len`).
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// The context size.
    pub fn n_ctx(&self) -> usize {
        self.forward.n_ctx()
    }

    /// "cpu", or the GPU adapter's name.
    pub fn backend(&self) -> String {
        self.forward.backend()
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Forgets the cached tokens (the next call prefills from position 0) and
    /// the chat history.
    pub fn reset(&mut self) {
        self.cached.clear();
        self.history.clear();
        self.last_chat = None;
    }

    /// Logits at every position of `tokens`, evaluated from position 0 in
    /// micro-batches, passed to `on_rows` one micro-batch at a time as
    /// `[n][n_vocab]` (so that a long sequence never sits in memory whole).
    /// Tokens are used exactly as given (no BOS is added).
    pub fn logits_each(
        &mut self,
        tokens: &[u32],
        on_rows: &mut dyn FnMut(&[f32]) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        check_fits(tokens.len(), self.n_ctx())?;
        self.cached.clear();
        let batch = self.shared.batch_size;
        for (i, chunk) in tokens.chunks(batch).enumerate() {
            let rows = self.forward.forward(chunk, i * batch, Logits::All)?;
            self.cached.extend_from_slice(chunk);
            on_rows(&rows)?;
        }
        Ok(())
    }

    /// Logits at every position of `tokens`, `[n][n_vocab]` (see
    /// [`logits_each`](Self::logits_each)).
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        let mut all = Vec::new();
        self.logits_each(tokens, &mut |rows| {
            all.extend_from_slice(rows);
            Ok(())
        })?;
        Ok(all)
    }

    /// Evaluates `tokens` as the whole sequence, reusing the longest cached
    /// prefix; returns the last token's logits and how many tokens were run.
    fn prefill(
        &mut self,
        tokens: &[u32],
        cancel: Option<&CancelToken>,
    ) -> Result<Prefilled, EngineError> {
        check_fits(tokens.len(), self.n_ctx())?;
        let shared = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        // At least one token must run to give logits for the next one.
        let start = shared.min(tokens.len() - 1);
        self.cached.truncate(start);
        let batch = self.shared.batch_size;
        let mut logits = Vec::new();
        for chunk in tokens[start..].chunks(batch) {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Ok(Prefilled {
                    logits: None,
                    evaluated: self.cached.len() - start,
                });
            }
            let pos = self.cached.len();
            logits = self.forward.forward(chunk, pos, Logits::Last)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(Prefilled {
            logits: Some(logits),
            evaluated: tokens.len() - start,
        })
    }
}

/// The result of a prefill: the logits for the next token (`None` when it was
/// cancelled) and the tokens evaluated.
struct Prefilled {
    logits: Option<Vec<f32>>,
    evaluated: usize,
}

fn check_fits(n: usize, n_ctx: usize) -> Result<(), EngineError> {
    if n == 0 {
        return Err(ModelError::Invalid("the prompt has no tokens".into()).into());
    }
    if n > n_ctx {
        return Err(ModelError::ContextFull { needed: n, n_ctx }.into());
    }
    Ok(())
}
