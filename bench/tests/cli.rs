//! The seldon-bench binary on the test adapter: exit codes, the JSON fields
//! the bench issue's tables read, and saving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seldon-bench"))
        .args(args)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seldon-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(bench(&["kernels", "--runs", "5"]).status.code(), Some(2));
    assert_eq!(bench(&["kernels", "--bogus"]).status.code(), Some(2));
    assert_eq!(bench(&["nonsense"]).status.code(), Some(2));
    let none = bench(&["kernels", "--filter", "no-such-kernel"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no kernel case matches"));
}

#[test]
fn devices_lists_the_adapters() {
    let list = json(&bench(&["devices", "--json"]));
    let list = list.as_array().unwrap();
    assert!(!list.is_empty());
    for a in list {
        assert!(a["name"].is_string() && a["backend"].is_string(), "{a}");
    }
}

#[test]
fn kernels_json_has_the_issue_fields_and_is_saved() {
    let dir = scratch_dir("save");
    let out = bench(&[
        "kernels",
        "--quick",
        "--filter",
        "rms_norm/F32/rows4x576",
        "-p",
        "4",
        "--json",
        "-q",
        "--save",
        "--save-dir",
        dir.to_str().unwrap(),
    ]);
    let records = json(&out);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    let (copy, norm) = (&records[0], &records[1]);
    assert_eq!(copy["kernel"], "copy");
    assert_eq!(copy["ceiling_ratio"], 1.0);
    assert_eq!(norm["kernel"], "rms_norm");
    assert_eq!(norm["type"], "F32");
    assert_eq!(norm["shape"], "rows4x576");
    for field in [
        "median_us",
        "gbps",
        "gflops",
        "ceiling_gbps",
        "ceiling_ratio",
    ] {
        let v = norm[field].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{field} = {v}");
    }
    let ratio = norm["gbps"].as_f64().unwrap() / copy["gbps"].as_f64().unwrap();
    assert!((norm["ceiling_ratio"].as_f64().unwrap() - ratio).abs() < 1e-9);
    assert_eq!(norm["runs"], 20);
    assert!(norm["adapter"].as_str().unwrap().contains(" ("));
    assert!(norm["commit"].is_string() && norm["date"].is_string());

    let saved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let name = saved[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("kernels-") && name.ends_with(".json"),
        "{name}"
    );
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert_eq!(on_disk.as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn markdown_and_csv_outputs() {
    let args = [
        "kernels",
        "--quick",
        "--filter",
        "rms_norm/F32/rows4x576",
        "-p",
        "4",
        "-q",
    ];
    let md = bench(&[&args[..], &["-o", "md"]].concat());
    assert!(md.status.success());
    let md = String::from_utf8_lossy(&md.stdout).into_owned();
    assert!(md.contains("| kernel | type | shape |") && md.contains("| rms_norm | F32 |"));
    let csv = bench(&[&args[..], &["-o", "csv"]].concat());
    assert!(csv.status.success());
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("kernel,type,shape,"));
    assert!(lines[2].starts_with("rms_norm,F32,rows4x576,4,"));
}
