//! Arguments and bodies of `seldon` subcommands that live in the library, so
//! that the binary stays a thin dispatcher and tests can call them directly.

pub mod args;
pub mod chat;
pub mod logits;
pub mod synth;
pub mod tokenize;
