//! seldon-conformance: comparison of seldon's outputs with llama.cpp's.
