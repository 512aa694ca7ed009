//! Every shipped TOML validates; invalid ones fail naming file, key and value.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::BIN;

fn tomls(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            tomls(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml")
            && p.file_name().is_some_and(|n| n != "Cargo.toml")
        {
            out.push(p);
        }
    }
}

#[test]
fn every_shipped_toml_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for dir in ["config", "examples"] {
        tomls(&root.join(dir), &mut files);
    }
    assert!(files.iter().any(|f| f.ends_with("config/switchyard.toml")));
    // Validation loads plugins: the example's component must exist.
    crate::harness::stamp_example();
    for f in files {
        let out = Command::new(BIN)
            .args(["validate", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not validate: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn invalid_config_exits_64_naming_file_key_and_value() {
    let dir = std::env::temp_dir().join(format!("switchyard-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "[server]\nlisten = \"not-an-address\"\n",
            "`server.listen` = \"not-an-address\"",
        ),
        (
            "[upstreams.a]\ncommand = \"x\"\ntimout = \"1s\"\n",
            "timout",
        ),
        (
            "[upstreams.a]\ncommand = \"x\"\nenv = { K = \"${SWITCHYARD_SURELY_UNSET_VAR}\" }\n",
            "SWITCHYARD_SURELY_UNSET_VAR",
        ),
        (
            "[[routes]]\npath = \"/mcp\"\nupstreams = [\"ghost\"]\n",
            "\"ghost\"",
        ),
    ];
    for (i, (toml, needle)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(BIN)
            .args(["validate", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{toml}: {err}");
        assert!(
            err.contains(&file.display().to_string()),
            "file not named: {err}"
        );
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    // `serve` refuses the same file before binding or spawning anything.
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("bad0.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn environment_overrides_the_file() {
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switchyard.toml"))
        .env("SWITCHYARD_SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

#[test]
fn version_flag() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
