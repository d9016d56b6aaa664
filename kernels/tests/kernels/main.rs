//! Every kernel against its CPU reference on the test adapter, over awkward
//! sizes, with outputs poisoned before each run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod argmax;
mod attention;
mod convert;
mod copy;
mod elementwise;
mod get_rows;
mod kv_cache;
mod rms_norm;
mod rope;
mod softmax;
mod swiglu;
