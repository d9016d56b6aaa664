//! The `seldon-conformance` binary: exit statuses (0 pass, 1 threshold missed
//! or bad input, 2 usage), `--json`, and each subcommand end to end on the
//! committed tiny models (CPU backend, so these tests need no GPU).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use seldon_conformance::case::References;
use seldon_conformance::kld::file::KldWriter;
use seldon_conformance::npy::{NpyArray, NpyData, to_bytes};
use seldon_conformance::run::{Backend, Engine};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seldon-conformance"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "seldon-conformance-cli-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn case(id: &str) -> PathBuf {
    References::committed_dir().join(id).join("case.json")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&run(&[])), 2);
    assert_eq!(code(&run(&["check"])), 2);
    assert_eq!(code(&run(&["frobnicate"])), 2);
    assert_eq!(code(&run(&["kld", "--base", "x"])), 2);
    assert_eq!(
        code(&run(&["kld", "--base", "x", "-m", "a", "--other", "b"])),
        2
    );
    assert_eq!(code(&run(&["make-reference", "-m", "a", "--out", "b"])), 2);
    assert_eq!(
        code(&run(&[
            "make-reference",
            "-m",
            "a",
            "--text-file",
            "t",
            "--tokens-file",
            "t",
            "--out",
            "b"
        ])),
        2
    );
    assert_eq!(code(&run(&["table", "--frobnicate"])), 2);
    assert_eq!(
        code(&run(&["check", "--reference", "x", "--json", "-q"])),
        2
    );
    assert_eq!(code(&run(&["--help"])), 0);
    assert_eq!(code(&run(&["table", "--help"])), 0);
}

#[test]
fn check_passes_a_committed_case_and_reports_json() {
    let c = case("tiny/qwen3-Q5_0");
    let o = run(&["check", "--reference", s(&c), "--cpu", "--json"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pass"], true);
    assert_eq!(v["id"], "tiny/qwen3-Q5_0");
    assert_eq!(v["tokenization"]["exact"], true);
    assert!(v["metrics"]["kl"]["mean"].as_f64().unwrap() < 0.01);
    assert_eq!(v["worst_positions"].as_array().unwrap().len(), 5);
    let text = run(&["check", "--reference", s(&c), "--cpu"]);
    assert_eq!(code(&text), 0);
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(
        t.contains("worst positions") && t.contains("f64 reference"),
        "{t}"
    );
}

/// A copy of a committed F32 case whose reference logits are moved by 0.01
/// at one position: seldon is then 0.01 away, past the 1e-3 limit.
#[test]
fn check_fails_with_status_1_when_a_threshold_is_missed() {
    let src = case("tiny/llama-F32");
    let dir = temp_dir("perturbed");
    let mut case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&src).unwrap()).unwrap();
    let logits_path = References::committed_dir().join(case["logits"]["file"].as_str().unwrap());
    let a = NpyArray::read(&logits_path).unwrap();
    let shape = a.shape.clone();
    let mut v = a.into_f32().unwrap();
    v[3 * shape[1] + 7] += 0.01;
    std::fs::write(
        dir.join("logits.npy"),
        to_bytes(&shape, &NpyData::F32(v)).unwrap(),
    )
    .unwrap();
    case["logits"]["file"] = "logits.npy".into();
    case["model"] = src
        .parent()
        .unwrap()
        .join("model.gguf")
        .to_str()
        .unwrap()
        .into();
    case["model_in"] = "path".into();
    let out = dir.join("case.json");
    std::fs::write(&out, serde_json::to_vec(&case).unwrap()).unwrap();
    let o = run(&["check", "--reference", s(&out), "--cpu"]);
    assert_eq!(code(&o), 1);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("FAIL max_abs_logit_diff"), "{t}");
}

#[test]
fn bad_input_exits_1_with_a_json_error() {
    let dir = temp_dir("bad");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, b"{not json").unwrap();
    let o = run(&["check", "--reference", s(&junk), "--cpu", "--json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("junk.json"));
    let o = run(&["kld", "--base", s(&junk), "--other", s(&junk)]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("20-byte header"));
    std::fs::write(&junk, [b'x'; 64]).unwrap();
    let o = run(&["kld", "--base", s(&junk), "--other", s(&junk)]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("magic"));
}

/// A base file made from seldon's own CPU logits: `kld --other` against
/// itself and `kld -m` on the same model both give KLD ~0.
#[test]
fn kld_against_a_base_file() {
    let model = References::committed_dir().join("tiny/llama-Q8_0/model.gguf");
    let (n_ctx, n_chunk) = (16usize, 2usize);
    let mut runner = Engine::new(Backend::Cpu)
        .unwrap()
        .load(&model, n_ctx)
        .unwrap();
    let n_vocab = runner.n_vocab();
    let tok = runner.tokenizer().unwrap();
    let text =
        "The weights are random, but the numbers that come out are the same, again and again.";
    let mut tokens = tok.encode(text, false, false).unwrap();
    assert!(tokens.len() >= n_ctx * n_chunk);
    tokens.truncate(n_ctx * n_chunk);
    let path = temp_dir("kld").join("base.kld");
    let mut w = KldWriter::create(&path, n_ctx, n_vocab, &tokens).unwrap();
    for chunk in tokens.chunks(n_ctx) {
        // As llama-perplexity evaluates: BOS in place of the first token.
        let mut t = chunk.to_vec();
        t[0] = tok.bos().unwrap();
        w.write_chunk(&runner.logits_all(&t).unwrap()).unwrap();
    }
    w.finish().unwrap();

    let o = run(&["kld", "--base", s(&path), "--other", s(&path), "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["kld"]["value"], 0.0);
    assert_eq!(v["summary"]["same_top_p"]["value"], 1.0);
    assert_eq!(v["summary"]["count"], 2 * 7);

    let o = run(&["kld", "--base", s(&path), "-m", s(&model), "--cpu"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{t}{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.contains("Same top p: 100.000"), "{t}");
    let mean: f64 = t
        .lines()
        .find_map(|l| l.strip_prefix("Mean    KLD:"))
        .and_then(|r| r.split('±').next())
        .map(|x| x.trim().parse().unwrap())
        .unwrap();
    // Only the file's 16/65535-step quantization separates them.
    assert!(mean < 1e-5, "{t}");
}

#[test]
fn make_reference_says_how_to_install_llama_cpp_python() {
    let dir = temp_dir("mkref-missing");
    let text = dir.join("t.txt");
    std::fs::write(&text, "hello").unwrap();
    let model = References::committed_dir().join("tiny/qwen3-Q5_0/model.gguf");
    let o = bin()
        .args([
            "make-reference",
            "-m",
            s(&model),
            "--text-file",
            s(&text),
            "--out",
            s(&dir.join("c.json")),
        ])
        .env("SELDON_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("pip install llama-cpp-python==0.3.36") && e.contains("SELDON_PYTHON"),
        "{e}"
    );
    // A missing model is named before Python is even looked for.
    let o = bin()
        .args([
            "make-reference",
            "-m",
            "/nonexistent/model.gguf",
            "--text-file",
            s(&text),
            "--out",
            s(&dir.join("c.json")),
        ])
        .env("SELDON_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("model file /nonexistent/model.gguf does not exist"),
        "{e}"
    );
}

/// The whole round trip, with the reference venv when this checkout has one
/// (scripts/python-env.sh makes it): llama.cpp writes a reference, seldon
/// checks against it and passes.
#[test]
fn make_reference_then_check_with_the_reference_venv() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-ref/bin/python");
    if !venv.is_file() {
        println!(
            "no {}: round trip not run (scripts/python-env.sh makes it)",
            venv.display()
        );
        return;
    }
    let dir = temp_dir("mkref");
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, "1 300 301 302 40 41 42 7 8 9 250 251").unwrap();
    let model = References::committed_dir().join("tiny/qwen2-Q4_K_M/model.gguf");
    let out = dir.join("ref.json");
    let o = bin()
        .args([
            "make-reference",
            "-m",
            s(&model),
            "--tokens-file",
            s(&tokens),
            "--out",
            s(&out),
            "--json",
        ])
        .env("SELDON_PYTHON", &venv)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(dir.join("ref.logits.npy").is_file());
    let o = run(&["check", "--reference", s(&out), "--cpu", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n_tokens"], 12);
    assert_eq!(v["tokenization"], serde_json::Value::Null);
    assert_eq!(code(&o), 0, "{v}");
}

/// A references directory holding one committed case (the copy keeps the
/// layout: manifest.json at the root, the case under tiny/).
fn one_case_references(name: &str) -> PathBuf {
    let root = temp_dir(name).join("refs");
    let id = "tiny/qwen3-Q5_0";
    let src = References::committed_dir().join(id);
    let dst = root.join(id);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["case.json", "logits.npy", "model.gguf"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let manifest = serde_json::json!({
        "llama_cpp_commit": "0c1e5709",
        "llama_cpp_python": "0.3.36",
        "format_version": 1,
        "files": [{"path": format!("{id}/case.json"), "bytes": 0, "sha256": ""}],
    });
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    root
}

#[test]
fn table_rewrites_the_readme_region_and_reports_json() {
    let refs = one_case_references("table");
    let readme = refs.parent().unwrap().join("README.md");
    std::fs::write(
        &readme,
        "# x\n\nbefore\n<!-- conformance:begin -->\nold table\n<!-- conformance:end -->\nafter\n",
    )
    .unwrap();
    let o = run(&[
        "table",
        "--references",
        s(&refs),
        "--cpu",
        "--readme",
        s(&readme),
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("| tiny random | qwen3 | Q5_0 |") && md.contains("| pass |"),
        "{md}"
    );
    let doc = std::fs::read_to_string(&readme).unwrap();
    assert!(doc.starts_with("# x\n\nbefore\n<!-- conformance:begin -->\n"));
    assert!(doc.ends_with("\n<!-- conformance:end -->\nafter\n"));
    assert!(
        !doc.contains("old table") && doc.contains(md.trim_end()),
        "{doc}"
    );

    let o = run(&["table", "--references", s(&refs), "--cpu", "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pass"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    assert_eq!(v["rows"][0]["positions"], 36);
    assert!(v["rows"][0]["f64_reference"]["mean_kl"].as_f64().unwrap() > 0.0);

    // A README without the markers is bad input: status 1, file untouched.
    std::fs::write(&readme, "no markers\n").unwrap();
    let o = run(&[
        "table",
        "--references",
        s(&refs),
        "--cpu",
        "--readme",
        s(&readme),
    ]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("conformance:begin"));
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), "no markers\n");
}

#[test]
fn missing_files_exit_1_with_the_path_named() {
    let o = run(&["check", "--reference", "/nonexistent/case.json", "--cpu"]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/case.json"));
    let o = run(&["kld", "--base", "/nonexistent/base.kld", "--other", "/x"]);
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/base.kld"));
    let o = run(&[
        "table",
        "--references",
        "/nonexistent/refs",
        "--cpu",
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("manifest.json"));
}
