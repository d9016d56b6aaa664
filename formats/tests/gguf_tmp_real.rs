#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use seldon_formats::gguf::*;
#[test]
fn real_rewrite() {
    let p = std::path::PathBuf::from(std::env::var("HOME").unwrap())
        .join(".cache/seldon/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let f = GgufFile::open(&p).unwrap();
    let mut w = GgufWriter::with_version(f.version()).unwrap();
    for (k, v) in f.metadata() {
        w.add_metadata(k.clone(), v.clone()).unwrap();
    }
    for t in f.tensors() {
        w.add_tensor(t.name.clone(), t.ty, &t.dims, f.tensor_data(t).to_vec())
            .unwrap();
    }
    let out = w.to_bytes();
    eprintln!("orig {} ours {}", f.bytes().len(), out.len());
    let first = f.bytes().iter().zip(&out).position(|(a, b)| a != b);
    eprintln!("first diff {first:?}");
    assert!(out == f.bytes());
}
