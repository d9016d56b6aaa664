#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Synthetic models: written, reopened with the GGUF reader, and checked
//! against the real models' shapes and llama.cpp's tensor-type choices. The
//! type counts below are what llama.cpp 0.3.36's `llama_model_quantize`
//! produced from an F32 synth file of the same shape (its output matched
//! seldon's synth files byte for byte).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use seldon_engine::chat_template::{ChatMessage, ChatTemplate};
use seldon_engine::synth::{self, FileType, SynthOptions};
use seldon_engine::tokenizer::Tokenizer;
use seldon_formats::GgmlType;
use seldon_formats::gguf::GgufFile;
use seldon_formats::quant;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seldon-synth-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn type_counts(types: impl Iterator<Item = GgmlType>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in types {
        *counts.entry(t.name().to_owned()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn opts(shape: &str, ftype: FileType, seed: u64) -> SynthOptions {
    SynthOptions {
        shape: synth::shape(shape).unwrap(),
        ftype,
        seed,
    }
}

#[test]
fn smollm2_q8_0_reopens_with_the_real_shapes() {
    let dir = temp_dir("smollm2");
    let path = dir.join("smollm2-q8_0.gguf");
    let mut calls = 0;
    synth::write(&opts("smollm2-135m", FileType::Q8_0, 7), &path, &mut |_| {
        calls += 1
    })
    .unwrap();
    assert_eq!(calls, 273, "one report per tensor and one at the end");

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.get_u32("llama.block_count"), Some(30));
    assert_eq!(f.get_u32("llama.embedding_length"), Some(576));
    assert_eq!(f.get_u32("llama.feed_forward_length"), Some(1536));
    assert_eq!(f.get_u32("llama.attention.head_count"), Some(9));
    assert_eq!(f.get_u32("llama.attention.head_count_kv"), Some(3));
    assert_eq!(f.get_u32("llama.context_length"), Some(8192));
    assert_eq!(f.get_f32("llama.rope.freq_base"), Some(100_000.0));
    assert_eq!(f.get_u32("general.file_type"), Some(7));
    assert_eq!(f.get_str("tokenizer.ggml.pre"), Some("smollm"));
    assert_eq!(f.get_array("tokenizer.ggml.tokens").unwrap().len(), 49_152);

    // 30 blocks of 9 tensors, output_norm and the tied token_embd.
    assert_eq!(f.tensors().len(), 272);
    assert!(f.tensor("output.weight").is_none());
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!((embd.ty, embd.ne()), (GgmlType::Q8_0, [576, 49_152, 1, 1]));
    let check = |name: &str, ty: GgmlType, ne: [u64; 4]| {
        let t = f.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!((t.ty, t.ne()), (ty, ne), "{name}");
    };
    check("blk.0.attn_q.weight", GgmlType::Q8_0, [576, 576, 1, 1]);
    check("blk.0.attn_k.weight", GgmlType::Q8_0, [576, 192, 1, 1]);
    check("blk.29.attn_v.weight", GgmlType::Q8_0, [576, 192, 1, 1]);
    check("blk.7.attn_output.weight", GgmlType::Q8_0, [576, 576, 1, 1]);
    check("blk.3.ffn_gate.weight", GgmlType::Q8_0, [576, 1536, 1, 1]);
    check("blk.3.ffn_up.weight", GgmlType::Q8_0, [576, 1536, 1, 1]);
    check("blk.3.ffn_down.weight", GgmlType::Q8_0, [1536, 576, 1, 1]);
    check("blk.3.ffn_norm.weight", GgmlType::F32, [576, 1, 1, 1]);
    check("output_norm.weight", GgmlType::F32, [576, 1, 1, 1]);
    assert_eq!(
        type_counts(f.tensors().iter().map(|t| t.ty)),
        counts(&[("F32", 61), ("Q8_0", 211)])
    );

    // Weights are random around their centre and of the expected spread.
    let q = quant::dequantize_to_vec(
        GgmlType::Q8_0,
        f.tensor_data(f.tensor("blk.5.ffn_up.weight").unwrap()),
    )
    .unwrap();
    let mean = q.iter().sum::<f32>() / q.len() as f32;
    let var = q.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / q.len() as f32;
    assert!(mean.abs() < 1e-3, "mean {mean}");
    assert!(
        (var * 576.0 - 1.0).abs() < 0.05,
        "variance {var} is not 1/fan_in"
    );
    let norm: &[u8] = f.tensor_data(f.tensor("blk.5.attn_norm.weight").unwrap());
    let norm: Vec<f32> = norm
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert!(norm.iter().all(|v| (0.9..=1.1).contains(v)));

    // The tokenizer and chat template load and work.
    let tok = Tokenizer::from_gguf(&f).unwrap();
    assert_eq!(tok.n_vocab(), 49_152);
    let ids = tok.encode("<|im_start|>hello world\n", true, true).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(tok.decode(&ids), "<|im_start|>hello world\n");
    let chat = ChatTemplate::from_gguf(&f).unwrap();
    let text = chat
        .render(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert!(
        text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        "{text}"
    );

    // Same seed, same bytes; another seed, other weights.
    let again = synth::build(&opts("smollm2-135m", FileType::Q8_0, 7), &mut |_| {}).unwrap();
    assert_eq!(again.to_bytes(), std::fs::read(&path).unwrap());
    let other = synth::build(&opts("smollm2-135m", FileType::Q8_0, 8), &mut |_| {}).unwrap();
    assert_ne!(other.to_bytes(), again.to_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn qwen3_0_6b_q4_k_m_has_llama_cpp_s_mix() {
    let dir = temp_dir("qwen3");
    let path = dir.join("qwen3-0.6b-q4_k_m.gguf");
    synth::write(&opts("qwen3-0.6b", FileType::Q4_K_M, 1), &path, &mut |_| {}).unwrap();

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Some("qwen3"));
    assert_eq!(f.get_u32("qwen3.block_count"), Some(28));
    assert_eq!(f.get_u32("qwen3.embedding_length"), Some(1024));
    assert_eq!(f.get_u32("qwen3.feed_forward_length"), Some(3072));
    assert_eq!(f.get_u32("qwen3.attention.head_count"), Some(16));
    assert_eq!(f.get_u32("qwen3.attention.head_count_kv"), Some(8));
    assert_eq!(f.get_u32("qwen3.attention.key_length"), Some(128));
    assert_eq!(f.get_u32("qwen3.attention.value_length"), Some(128));
    assert_eq!(
        f.get_f32("qwen3.attention.layer_norm_rms_epsilon"),
        Some(1e-6)
    );
    assert_eq!(f.get_u32("general.file_type"), Some(15));
    assert_eq!(f.get_u32("tokenizer.ggml.eos_token_id"), Some(151_645));
    assert_eq!(f.get_array("tokenizer.ggml.tokens").unwrap().len(), 151_936);

    // 28 blocks of 11 tensors (q_norm and k_norm included), output_norm, token_embd.
    assert_eq!(f.tensors().len(), 310);
    let check = |name: &str, ty: GgmlType, ne: [u64; 4]| {
        let t = f.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!((t.ty, t.ne()), (ty, ne), "{name}");
        assert_eq!(
            f.tensor_data(t).len() as u64,
            ty.bytes_for(ne.iter().product()).unwrap()
        );
    };
    // Tied embeddings take the output's Q6_K.
    check("token_embd.weight", GgmlType::Q6_K, [1024, 151_936, 1, 1]);
    check("blk.0.attn_q.weight", GgmlType::Q4_K, [1024, 2048, 1, 1]);
    check("blk.0.attn_k.weight", GgmlType::Q4_K, [1024, 1024, 1, 1]);
    check(
        "blk.0.attn_output.weight",
        GgmlType::Q4_K,
        [2048, 1024, 1, 1],
    );
    check("blk.0.attn_q_norm.weight", GgmlType::F32, [128, 1, 1, 1]);
    check("blk.0.attn_k_norm.weight", GgmlType::F32, [128, 1, 1, 1]);
    // use_more_bits: layers 0-2, 24-27 and every third from 5 get Q6_K.
    for i in 0..28u64 {
        let more = !(3..24).contains(&i) || (i - 3) % 3 == 2;
        let ty = if more { GgmlType::Q6_K } else { GgmlType::Q4_K };
        check(&format!("blk.{i}.attn_v.weight"), ty, [1024, 1024, 1, 1]);
        check(&format!("blk.{i}.ffn_down.weight"), ty, [3072, 1024, 1, 1]);
        check(
            &format!("blk.{i}.ffn_gate.weight"),
            GgmlType::Q4_K,
            [1024, 3072, 1, 1],
        );
    }
    assert_eq!(
        type_counts(f.tensors().iter().map(|t| t.ty)),
        counts(&[("F32", 113), ("Q4_K", 168), ("Q6_K", 29)])
    );
    let tok = Tokenizer::from_gguf(&f).unwrap();
    assert_eq!(tok.eos(), Some(151_645));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plans_follow_llama_cpp_type_rules() {
    let plan_counts = |shape: &str, ftype| {
        type_counts(
            synth::plan(synth::shape(shape).unwrap(), ftype)
                .iter()
                .map(|t| t.ty),
        )
    };
    // Width 576 is not a multiple of 256: k-quants fall back where rows are 576 long.
    assert_eq!(
        plan_counts("smollm2-135m", FileType::Q4_K_M),
        counts(&[
            ("F32", 61),
            ("Q4_K", 16),
            ("Q5_0", 166),
            ("Q6_K", 14),
            ("Q8_0", 15)
        ])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::Q5_K_M),
        counts(&[
            ("F32", 61),
            ("Q5_1", 166),
            ("Q5_K", 16),
            ("Q6_K", 14),
            ("Q8_0", 15)
        ])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::Q4_K_S),
        counts(&[
            ("F32", 61),
            ("Q4_K", 27),
            ("Q5_0", 176),
            ("Q5_1", 4),
            ("Q5_K", 3),
            ("Q8_0", 1)
        ])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::TQ1_0),
        counts(&[("F32", 61), ("Q4_0", 180), ("Q8_0", 1), ("TQ1_0", 30)])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::Q4_0),
        counts(&[("F32", 61), ("Q4_0", 210), ("Q8_0", 1)])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::Q6_K),
        counts(&[("F32", 61), ("Q6_K", 30), ("Q8_0", 181)])
    );
    assert_eq!(
        plan_counts("smollm2-135m", FileType::F16),
        counts(&[("F16", 211), ("F32", 61)])
    );

    // Llama 3 8B: an untied output (Q6_K); ternary files keep token_embd at Q4_K.
    let llama = synth::plan(synth::shape("llama3-8b").unwrap(), FileType::TQ2_0);
    let ty = |name: &str| llama.iter().find(|t| t.name == name).unwrap().ty;
    assert_eq!(ty("output.weight"), GgmlType::Q6_K);
    assert_eq!(ty("token_embd.weight"), GgmlType::Q4_K);
    assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::TQ2_0);
    assert_eq!(llama.len(), 32 * 9 + 3);
    let params: u64 = llama.iter().map(|t| t.n_elements()).sum();
    assert_eq!(params, 8_030_261_248, "Meta-Llama-3-8B's parameter count");

    let sizes = |shape: &str| {
        synth::plan(synth::shape(shape).unwrap(), FileType::F32)
            .iter()
            .map(|t| t.n_elements())
            .sum::<u64>()
    };
    assert_eq!(sizes("smollm2-135m"), 134_515_008);
    assert_eq!(sizes("qwen3-0.6b"), 596_049_920);
    assert_eq!(sizes("qwen3-1.7b"), 1_720_574_976);
    assert_eq!(sizes("qwen3-4b"), 4_022_468_096);

    // Every shape and file type plans a writable file: rows divide blocks.
    for shape in &synth::SHAPES {
        for ftype in FileType::ALL {
            for t in synth::plan(shape, ftype) {
                assert!(
                    t.dims[0].is_multiple_of(t.ty.block_size()),
                    "{} {ftype}: {} {}",
                    shape.name,
                    t.name,
                    t.ty
                );
            }
        }
    }
}

#[test]
fn cli_writes_a_file_and_rejects_bad_arguments() {
    let dir = temp_dir("cli");
    let out = dir.join("m.gguf");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_seldon"))
            .args(args)
            .env_remove("SELDON_LOG")
            .output()
            .unwrap()
    };
    let o = run(&[
        "synth",
        "--shape",
        "smollm2-135m",
        "--type",
        "q4_0",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("100%") && err.contains("wrote"), "{err}");
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get_u32("general.file_type"), Some(2));

    let usage = [
        vec![
            "synth", "--shape", "gpt-5", "--type", "Q8_0", "--out", "x.gguf",
        ],
        vec![
            "synth", "--shape", "qwen3-4b", "--type", "Q3_K_M", "--out", "x.gguf",
        ],
        vec!["synth", "--shape", "qwen3-4b", "--type", "Q8_0"],
    ];
    for args in usage {
        assert_eq!(run(&args).status.code(), Some(2), "{args:?}");
    }
    let o = run(&[
        "synth",
        "--shape",
        "smollm2-135m",
        "--type",
        "Q8_0",
        "--out",
        "/nonexistent/dir/m.gguf",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("seldon: error:"))
            .count(),
        1,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
