//! Running seldon-engine on a token sequence: every position's logits and a
//! greedy continuation, on the GPU (the test adapter) or on the CPU
//! reference forward pass.

use std::path::Path;
use std::sync::Arc;

use seldon_engine::model::{CpuModel, Forward, GpuSession, Logits, Model, SessionOptions};
use seldon_engine::tokenizer::Tokenizer;
use seldon_kernels::kv_cache::KvType;
use seldon_kernels::{Gpu, GpuOptions};

use crate::error::{ConformanceError, Result};
use crate::metrics::argmax;

/// Tokens per forward call: long sequences go through in pieces of this many,
/// the way llama.cpp splits a batch into micro-batches.
pub const MAX_BATCH: usize = 256;

/// Which forward pass runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The GPU plan, on the adapter `SELDON_DEVICE` picks (the test adapter).
    Gpu,
    /// The CPU reference forward pass (f32 activations).
    Cpu,
}

impl Backend {
    /// `gpu` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        }
    }
}

/// A backend, with its GPU context once made.
#[derive(Debug, Clone)]
pub struct Engine {
    backend: Backend,
    gpu: Option<Arc<Gpu>>,
}

impl Engine {
    /// An engine on `backend`; for the GPU this creates the device.
    pub fn new(backend: Backend) -> Result<Self> {
        let gpu = match backend {
            Backend::Gpu => Some(Arc::new(Gpu::new(GpuOptions::default())?)),
            Backend::Cpu => None,
        };
        Ok(Self { backend, gpu })
    }

    /// A GPU engine on an existing device.
    pub fn with_gpu(gpu: Arc<Gpu>) -> Self {
        Self {
            backend: Backend::Gpu,
            gpu: Some(gpu),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The GPU device, for the GPU backend.
    pub fn gpu(&self) -> Option<&Arc<Gpu>> {
        self.gpu.as_ref()
    }

    /// Loads the model at `path` with a context of `n_ctx` positions and an
    /// F32 KV cache (the references' llama.cpp settings).
    pub fn load(&self, path: &Path, n_ctx: usize) -> Result<Runner> {
        let model = Arc::new(Model::open(path)?);
        self.load_model(model, n_ctx)
    }

    /// As [`Engine::load`], for a model already open.
    pub fn load_model(&self, model: Arc<Model>, n_ctx: usize) -> Result<Runner> {
        let forward: Box<dyn Forward> = match &self.gpu {
            Some(gpu) => {
                let options = SessionOptions {
                    n_ctx,
                    kv_type_k: KvType::F32,
                    kv_type_v: KvType::F32,
                    max_batch: MAX_BATCH.min(n_ctx),
                };
                Box::new(GpuSession::load(Arc::clone(gpu), &model, options)?)
            }
            None => Box::new(CpuModel::new(Arc::clone(&model), n_ctx)?),
        };
        Ok(Runner { model, forward })
    }
}

/// A loaded model with the KV cache of one sequence.
pub struct Runner {
    model: Arc<Model>,
    forward: Box<dyn Forward>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("backend", &self.forward.backend())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Logits row width.
    pub fn n_vocab(&self) -> usize {
        self.model.config().n_vocab
    }

    /// The backend's own name (the GPU adapter's, or `cpu`).
    pub fn backend_name(&self) -> String {
        self.forward.backend()
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        Ok(Tokenizer::from_gguf(self.model.file())?)
    }

    /// Runs `tokens` from position 0 (the cache is rewound) and returns the
    /// logits of every position, `[tokens.len()][n_vocab]`.
    pub fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let n_vocab = self.n_vocab();
        let mut out = Vec::with_capacity(tokens.len() * n_vocab);
        for (i, piece) in tokens.chunks(MAX_BATCH).enumerate() {
            let logits = self.forward.forward(piece, i * MAX_BATCH, Logits::All)?;
            if logits.len() != piece.len() * n_vocab {
                return Err(ConformanceError::Invalid(format!(
                    "the engine returned {} logits for {} tokens of {n_vocab}",
                    logits.len(),
                    piece.len()
                )));
            }
            out.extend_from_slice(&logits);
        }
        Ok(out)
    }

    /// Continues greedily for `n` tokens after a sequence of `n_past` tokens
    /// whose last logits row is `last`, one token per forward call, as
    /// llama.cpp's reference run does. Ties go to the lowest id.
    pub fn greedy(&mut self, last: &[f32], n_past: usize, n: usize) -> Result<Vec<u32>> {
        self.greedy_run(last, n_past, n, None)
    }

    /// As [`Runner::greedy`] for `reference.len()` tokens, but stops after the
    /// first token that differs from `reference`: past it the two runs
    /// continue different texts and nothing more is learned (on a software
    /// GPU each step costs tens of milliseconds).
    pub fn greedy_against(
        &mut self,
        last: &[f32],
        n_past: usize,
        reference: &[u32],
    ) -> Result<Vec<u32>> {
        self.greedy_run(last, n_past, reference.len(), Some(reference))
    }

    fn greedy_run(
        &mut self,
        last: &[f32],
        n_past: usize,
        n: usize,
        reference: Option<&[u32]>,
    ) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(n);
        let mut next = argmax(last) as u32;
        for step in 0..n {
            out.push(next);
            let diverged = reference.is_some_and(|r| r.get(step) != Some(&next));
            if diverged || step + 1 == n {
                break;
            }
            let logits = self.forward.forward(&[next], n_past + step, Logits::Last)?;
            next = argmax(&logits) as u32;
        }
        Ok(out)
    }
}
