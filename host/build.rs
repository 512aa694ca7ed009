//! Builds the first-party plugins (`plugins/*`, one crate each) for
//! `wasm32-wasip2` and generates the table `plugin::builtin` embeds, so that
//! `cargo build` alone produces a binary that runs `builtin:NAME` with no
//! files beside it.
//!
//! The plugins are built by a nested `cargo build` into a target directory
//! of their own (`<target>/wasm`): sharing the outer build's directory would
//! wait on its lock forever.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("sdk").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let plugins = first_party(&root.join("plugins"));
    for (_, dir) in &plugins {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let mut table = String::from("/// `(name, component bytes)` of every built-in plugin.\n");
    table.push_str("pub static BUILTINS: &[(&str, &[u8])] = &[\n");
    if !plugins.is_empty() {
        let target_dir = wasm_target_dir(&out_dir);
        build(root, &target_dir, &plugins);
        for (package, dir) in &plugins {
            let name = dir.file_name().expect("a crate folder").to_string_lossy();
            let wasm = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{}.wasm", package.replace('-', "_")));
            assert!(wasm.is_file(), "{} was not built", wasm.display());
            writeln!(
                table,
                "    ({name:?}, include_bytes!({:?})),",
                wasm.display().to_string()
            )
            .expect("writing to a string");
        }
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), table).expect("OUT_DIR is writable");
}

/// `(package name, folder)` of every crate under `plugins/`, by folder name.
fn first_party(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let manifest = std::fs::read_to_string(p.join("Cargo.toml")).ok()?;
            let name = manifest.lines().find_map(|l| {
                let l = l.trim();
                let rest = l.strip_prefix("name")?.trim_start().strip_prefix('=')?;
                Some(rest.trim().trim_matches('"').to_owned())
            })?;
            Some((name, p))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

/// `<target>/wasm`, found from `OUT_DIR` (`<target>/<profile>/build/<pkg>/out`).
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>/out")
        .join("wasm")
}

fn build(root: &Path, target_dir: &Path, plugins: &[(String, PathBuf)]) {
    ensure_target();
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for (package, _) in plugins {
        cmd.args(["-p", package]);
    }
    // What the outer cargo set for this build script must not leak into the
    // nested build (clippy's wrapper, the host's flags).
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the first-party plugins for {TARGET} failed (see above)"
    );
}

/// Installs the wasm target with rustup when it is missing, so that a fresh
/// machine needs no manual step.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).is_dir()) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "the {TARGET} target is missing and `rustup target add {TARGET}` failed"
    );
}
