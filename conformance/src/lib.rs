//! seldon-conformance: comparison of seldon's outputs with llama.cpp's.
//!
//! - [`case`]: the committed reference format (cases, manifest, tokenizer
//!   corpora) and [`npy`] arrays;
//! - [`metrics`]: KL divergence, top-1 agreement, probability and logit
//!   differences, greedy and tokenization comparisons;
//! - [`thresholds`]: the one table of limits, with where each number comes from;
//! - [`run`] and [`check`]: a case run through seldon-engine and judged;
//! - [`dequant`]: dequantization checks on the committed models' tensors;
//! - [`kld`]: llama-perplexity's KL-divergence file and statistics;
//! - [`make_reference`]: new references from llama.cpp through Python;
//! - [`table`]: the README conformance table.

pub mod case;
pub mod check;
pub mod dequant;
pub mod error;
pub mod kld;
pub mod make_reference;
pub mod metrics;
pub mod npy;
pub mod run;
pub mod table;
pub mod thresholds;

pub use error::{ConformanceError, Result};
