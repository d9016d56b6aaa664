//! The model's tensors, found by llama.cpp's names and checked against the
//! hyperparameters. Matrices stay in the file (in their block format); the
//! small vectors (norms, biases, scales) are read into f32 once.

use seldon_formats::GgmlType;
use seldon_formats::gguf::{GgufFile, TensorInfo};
use seldon_formats::quant;

use super::ModelError;
use super::config::{Arch, ModelConfig};

/// A weight matrix `W` of `n_out` rows by `n_in` columns (ggml `ne = [n_in,
/// n_out]`), kept in the GGUF file in its block format: `y = W x`.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The GGUF tensor info (name, type, offset).
    pub info: TensorInfo,
    /// Inputs per row (ne0).
    pub n_in: usize,
    /// Rows (ne1).
    pub n_out: usize,
}

impl Matrix {
    /// The weight type.
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }

    /// The tensor name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        // Checked at load: n_in is a whole number of blocks.
        (self.n_in / self.ty().block_size() as usize) * self.ty().type_size() as usize
    }

    /// The raw bytes, borrowed from `file`.
    pub fn data<'f>(&self, file: &'f GgufFile) -> &'f [u8] {
        file.tensor_data(&self.info)
    }
}

/// A linear layer as llama.cpp's `build_lora_mm` applies it:
/// `(W x) * scale + bias`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// The weight matrix.
    pub w: Matrix,
    /// `<name>.bias`, `n_out` values.
    pub bias: Option<Vec<f32>>,
    /// `<name>.scale`, one value (BitNet).
    pub scale: Option<f32>,
}

/// One transformer block's tensors (`blk.N.*`).
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// `attn_norm.weight`.
    pub attn_norm: Vec<f32>,
    /// `attn_q`.
    pub wq: Linear,
    /// `attn_k`.
    pub wk: Linear,
    /// `attn_v`.
    pub wv: Linear,
    /// `attn_output`.
    pub wo: Linear,
    /// `attn_q_norm.weight` (Qwen3), `head_dim_k` values applied per head.
    pub q_norm: Option<Vec<f32>>,
    /// `attn_k_norm.weight` (Qwen3).
    pub k_norm: Option<Vec<f32>>,
    /// `attn_sub_norm.weight` (BitNet), applied to the attention output before `wo`.
    pub attn_sub_norm: Option<Vec<f32>>,
    /// `ffn_norm.weight`.
    pub ffn_norm: Vec<f32>,
    /// `ffn_gate`.
    pub gate: Linear,
    /// `ffn_up`.
    pub up: Linear,
    /// `ffn_down`.
    pub down: Linear,
    /// `ffn_sub_norm.weight` (BitNet), applied to `silu(gate) * up` before `down`.
    pub ffn_sub_norm: Option<Vec<f32>>,
}

/// All tensors of a model.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    /// `token_embd.weight`: `n_vocab` rows of `n_embd`.
    pub token_embd: Matrix,
    /// `output_norm.weight`.
    pub output_norm: Vec<f32>,
    /// `output.weight` (+ `output.bias`), or the embeddings when tied.
    pub output: Linear,
    /// Whether `output` is `token_embd` (no `output.weight` in the file).
    pub tied_output: bool,
    /// `rope_freqs.weight` (Llama 3.1): `n_rot / 2` frequency divisors.
    pub rope_freqs: Option<Vec<f32>>,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
}

impl ModelWeights {
    /// Finds and checks every tensor `config` calls for in `file`.
    pub fn from_gguf(file: &GgufFile, config: &ModelConfig) -> Result<Self, ModelError> {
        let c = config;
        let finder = Finder { file };
        if file.tensor("blk.0.attn_qkv.weight").is_some() {
            return Err(ModelError::Unsupported(
                "fused blk.N.attn_qkv.weight tensors".into(),
            ));
        }
        let token_embd = finder.matrix("token_embd.weight", c.n_embd, c.n_vocab)?;
        let output_norm = finder.vector("output_norm.weight", c.n_embd)?;
        // BitNet always reads logits through the embeddings (llama.cpp's build).
        let own_output = match c.arch {
            Arch::Bitnet => None,
            _ => finder.optional_matrix("output.weight", c.n_embd, c.n_vocab)?,
        };
        let tied_output = own_output.is_none();
        let output = Linear {
            w: own_output.unwrap_or_else(|| token_embd.clone()),
            bias: finder.optional_vector("output.bias", c.n_vocab)?,
            scale: None,
        };
        let rope_freqs = match c.arch {
            Arch::Llama => finder.optional_vector("rope_freqs.weight", c.n_rot / 2)?,
            _ => None,
        };
        let layers = (0..c.n_layer)
            .map(|i| finder.layer(i, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            token_embd,
            output_norm,
            output,
            tied_output,
            rope_freqs,
            layers,
        })
    }
}

struct Finder<'a> {
    file: &'a GgufFile,
}

impl Finder<'_> {
    fn layer(&self, i: usize, c: &ModelConfig) -> Result<LayerWeights, ModelError> {
        let n = |s: &str| format!("blk.{i}.{s}");
        let qwen3 = c.arch == Arch::Qwen3;
        let bitnet = c.arch == Arch::Bitnet;
        let per_head_norm = |s: &str| {
            if qwen3 {
                self.vector(&n(s), c.head_dim_k).map(Some)
            } else {
                Ok(None)
            }
        };
        let sub_norm = |s: &str, len: usize| {
            if bitnet {
                self.vector(&n(s), len).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(LayerWeights {
            attn_norm: self.vector(&n("attn_norm.weight"), c.n_embd)?,
            wq: self.linear(&n("attn_q"), c.n_embd, c.q_dim())?,
            wk: self.linear(&n("attn_k"), c.n_embd, c.k_dim())?,
            wv: self.linear(&n("attn_v"), c.n_embd, c.v_dim())?,
            wo: self.linear(&n("attn_output"), c.attn_out_dim(), c.n_embd)?,
            q_norm: per_head_norm("attn_q_norm.weight")?,
            k_norm: per_head_norm("attn_k_norm.weight")?,
            attn_sub_norm: sub_norm("attn_sub_norm.weight", c.attn_out_dim())?,
            ffn_norm: self.vector(&n("ffn_norm.weight"), c.n_embd)?,
            gate: self.linear(&n("ffn_gate"), c.n_embd, c.n_ff)?,
            up: self.linear(&n("ffn_up"), c.n_embd, c.n_ff)?,
            down: self.linear(&n("ffn_down"), c.n_ff, c.n_embd)?,
            ffn_sub_norm: sub_norm("ffn_sub_norm.weight", c.n_ff)?,
        })
    }

    fn linear(&self, base: &str, n_in: usize, n_out: usize) -> Result<Linear, ModelError> {
        let w = self.matrix(&format!("{base}.weight"), n_in, n_out)?;
        let bias = self.optional_vector(&format!("{base}.bias"), n_out)?;
        let scale = self
            .optional_vector(&format!("{base}.scale"), 1)?
            .and_then(|v| v.first().copied());
        Ok(Linear { w, bias, scale })
    }

    fn tensor(&self, name: &str) -> Result<&TensorInfo, ModelError> {
        self.file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    fn check_shape(info: &TensorInfo, expected: [usize; 2]) -> Result<(), ModelError> {
        let want = [expected[0] as u64, expected[1] as u64, 1, 1];
        if info.ne() != want {
            return Err(ModelError::TensorShape {
                name: info.name.clone(),
                expected: format!("{:?}", &want[..2]),
                found: format!("{:?}", info.dims),
            });
        }
        Ok(())
    }

    fn matrix(&self, name: &str, n_in: usize, n_out: usize) -> Result<Matrix, ModelError> {
        let info = self.tensor(name)?;
        Self::check_shape(info, [n_in, n_out])?;
        let ty = info.ty;
        if !quant::supports(ty) || !ty.row_fits(n_in as u64) {
            return Err(ModelError::UnsupportedType {
                name: name.to_string(),
                ty,
            });
        }
        Ok(Matrix {
            info: info.clone(),
            n_in,
            n_out,
        })
    }

    fn optional_matrix(
        &self,
        name: &str,
        n_in: usize,
        n_out: usize,
    ) -> Result<Option<Matrix>, ModelError> {
        match self.file.tensor(name) {
            None => Ok(None),
            Some(_) => self.matrix(name, n_in, n_out).map(Some),
        }
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let info = self.tensor(name)?;
        Self::check_shape(info, [len, 1])?;
        let values =
            quant::dequantize_to_vec(info.ty, self.file.tensor_data(info)).map_err(|e| {
                ModelError::Tensor {
                    name: name.to_string(),
                    reason: e.to_string(),
                }
            })?;
        if values.len() != len {
            return Err(ModelError::Tensor {
                name: name.to_string(),
                reason: format!("holds {} values, expected {len}", values.len()),
            });
        }
        Ok(values)
    }

    fn optional_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        match self.file.tensor(name) {
            None => Ok(None),
            Some(_) => self.vector(name, len).map(Some),
        }
    }
}
